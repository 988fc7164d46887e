"""
Hunt anomalies and read the report
==================================

Run a small mock survey, with labelled anomalies hidden in it, through the
whole flow: a survey dataset, the bundled ``manga-convlstm`` encoder, anomaly
scores that say *why* each galaxy ranks where it does, a figure of the top
candidate, and the HTML page a person uses to review the candidates.

This is what ``ifsrepr demo`` does from the command line (see
:ref:`quickstart`); here each step is a Python call you can change.
"""

# %%
# A survey with hidden anomalies
# ------------------------------
# Thirty mock MaNGA galaxies drawn from the real catalogue, six of them given
# one of the anomalies the model can see in line fluxes: a broad-line AGN, an
# off-nuclear star-forming knot, or a compact "blueberry" starburst.
# ``products=["linestack"]`` writes line maps without making cubes (fast);
# with ``["cube"]`` the same flow would extract the lines from DR17 LOGCUBEs.

import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ifsrepr
from ifsrepr.dataset import extract_survey
from ifsrepr.mock import make_survey
from ifsrepr.preprocess import Preprocessor
from ifsrepr.report import galaxy_figure, latent_map, model_maps, write_report
from ifsrepr.scoring import AnomalyScorer, encode_dataset

workdir = Path(tempfile.mkdtemp(prefix="ifsrepr-hunt-"))
files = workdir / "survey-files"
truth = make_survey(
    files,
    30,
    seed=21,
    products=["linestack"],
    anomaly_rate=0.2,
    anomaly_classes=["broad_line_agn", "offnuclear_knot", "blueberry"],
)
print(sorted(path.name for path in files.iterdir())[:3], "...")


def show(figure):
    """Display a figure that `ifsrepr.report` drew without pyplot."""
    try:
        plt.figure(figure)  # matplotlib >= 3.11 adopts a figure made outside pyplot
    except ValueError:  # older matplotlib: paint it into a pyplot figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        ax = plt.figure(figsize=figure.get_size_inches()).add_axes((0, 0, 1, 1))
        ax.imshow(np.asarray(canvas.buffer_rgba()))
        ax.set_axis_off()


# %%
# A survey dataset on the model's grid
# ------------------------------------
# `ifsrepr.dataset.extract_survey` (``ifsrepr extract``) reads every file,
# takes redshifts and effective radii from the DRPall-like catalogue, puts
# every galaxy on the model grid and stores it in one HDF5 file that training
# and scoring stream from. Give it the encoder's grid, so the dataset matches
# the model.

encoder = ifsrepr.IFSEncoder.from_pretrained("manga-convlstm", device="cpu")
grid = Preprocessor(**encoder.preprocessor_.get_params())
survey = workdir / "survey.h5"
summary = extract_survey(
    [files], survey, catalog=files / "drpall-mock.fits", preprocessor=grid, progress=False
)
print(summary.n_galaxies, "galaxies;", len(summary.failures), "failed")

# %%
# Encode and score
# ----------------
# `~ifsrepr.scoring.encode_dataset` (``ifsrepr encode``) runs the network once
# over the dataset and keeps every galaxy's latent vector and its
# reconstruction errors, per galaxy, line and spaxel.
# `~ifsrepr.scoring.AnomalyScorer` (``ifsrepr score``) then ranks the galaxies
# against a reference population, here the survey itself. ``score`` is the
# mean percentile of three reconstruction measures (the whole-galaxy error,
# the worst line's excess over its typical error, the error of the worst
# 3x3-pixel patch); higher is more anomalous.

encoding = encode_dataset(encoder, survey, progress=False)
scores = AnomalyScorer().fit(encoding).score()
print(len(scores), "galaxies scored; score averages", ", ".join(scores.meta["components"]))

# %%
# The ranking, with the truth beside it. ``top_line`` is the line whose error
# most exceeds its typical value, and ``region`` where on the galaxy the
# error peaks: that is where a reviewer starts looking.

anomaly = dict(zip(truth["plateifu"], truth["anomaly"], strict=True))
scores["truth"] = [anomaly.get(name, "?") for name in scores["plateifu"]]
scores["rank", "plateifu", "score", "top_line", "region", "truth"][:10].pprint(max_width=100)

# %%
# How many of the six planted anomalies are among the first six candidates?

n_planted = int((truth["anomaly"] != "none").sum())
found = int((scores["truth"][:n_planted] != "none").sum())
print(f"{found} of the top {n_planted} candidates are planted anomalies")

# %%
# ``ifsrepr evaluate`` measures this properly (ROC-AUC, average precision,
# per anomaly class, against baselines) on larger surveys: see
# :ref:`evaluation`.
#
# Look at the top candidate
# -------------------------
# `ifsrepr.report.model_maps` gives a galaxy's normalised maps ``x``, their
# weights ``w`` and the network's reconstruction, and
# `ifsrepr.report.galaxy_figure` draws them for the lines that matter: the
# data, the reconstruction on the same scale and the residual in units of the
# noise, with the spaxel error map (its peak marked) and the error of every
# line.

top = scores[0]
((x, w, x_hat),) = model_maps(encoder, survey, [top["row"]])
show(galaxy_figure(x, w, x_hat, encoding.line_names, row=top, n_scored=len(scores)))

# %%
# The candidates in latent space
# ------------------------------
# The latent map colours every galaxy by its score and circles the top
# candidates, as on the review page.

order = {uid: i for i, uid in enumerate(encoding.uid)}
rows = [order[uid] for uid in scores["uid"]]
score_of_row = np.empty(len(encoding))
score_of_row[rows] = scores["score"]
show(
    latent_map(
        encoding.latents, score_of_row, label="score", highlight=rows[:5],
        names=list(scores["plateifu"][:5]),
    )
)  # fmt: skip

# %%
# The review page
# ---------------
# `ifsrepr.report.write_report` (``ifsrepr report``) writes one self-contained
# HTML file: the top candidates with their figures, explanations and buttons
# to mark each *interesting*, *artefact* or *normal* (kept in the browser, and
# exported as CSV), a sortable table of every galaxy, the latent map and the
# galaxies that could not be scored. Open it in any browser, straight from
# disk.

page = write_report(
    scores, workdir / "report", top=5, encoding=encoding, dataset=survey, encoder=encoder,
    title="Mock survey: anomaly candidates",
)  # fmt: skip
print(page.name, f"{page.stat().st_size / 1e6:.1f} MB")

# %%
# Everything was written to a temporary directory, removed here; to keep the
# review page, open (or copy) ``page`` before this line.

shutil.rmtree(workdir, ignore_errors=True)
plt.show()
