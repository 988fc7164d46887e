"""
Compare the ConvLSTM with PCA
=============================

How much does the bundled ConvLSTM autoencoder gain over a linear model? Fit
the ``pca`` architecture, principal components of the flattened line maps,
on a few dozen mock galaxies, and compare the two on galaxies neither has
seen: the fraction of variance each explains, line by line, and what their
reconstructions look like.

The verdict, for the bundled weights, is in the :ref:`model card
<model_card>`, measured on 299 held-out galaxies: a 128-component PCA
explains 95 % of the variance and the (undertrained) ConvLSTM 76 %. This
example shows how to make such a comparison, on a scale that runs in the
documentation build.
"""

# %%
# Galaxies to fit and to test on
# ------------------------------
# Fifty-two ordinary mock galaxies drawn from the real MaNGA catalogue with a
# seed of their own (the bundled model was trained on a survey of seed 2026),
# put on the bundled model's grid. Eight are held out for the comparison; PCA
# is fitted on the other 44.

import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ifsrepr
from ifsrepr.dataset import SurveyDataset, extract_survey
from ifsrepr.hub import resolve_pretrained
from ifsrepr.mock import make_survey
from ifsrepr.preprocess import Preprocessor
from ifsrepr.report import model_maps
from ifsrepr.training import split_by_galaxy

convlstm = ifsrepr.IFSEncoder.from_pretrained("manga-convlstm", device="cpu")

workdir = Path(tempfile.mkdtemp(prefix="ifsrepr-pca-"))
make_survey(workdir / "mock", 52, seed=12, products=["linestack"])
survey = workdir / "survey.h5"
extract_survey(
    [workdir / "mock"],
    survey,
    catalog=workdir / "mock" / "drpall-mock.fits",
    preprocessor=Preprocessor(**convlstm.preprocessor_.get_params()),
    progress=False,
)
fit_rows, test_rows = split_by_galaxy(52, 8 / 52, seed=0)
print(len(fit_rows), "galaxies to fit PCA,", len(test_rows), "held out")

# %%
# Fit PCA
# -------
# The ``pca`` architecture has the same interface as the networks
# (``ifsrepr plugins`` lists it), but is fitted in closed form. Fit it on the
# same normalised maps the ConvLSTM sees: the dataset read with the
# ConvLSTM's own preprocessing. Masked pixels are filled iteratively from the
# components. With 44 galaxies, 32 components.

training = SurveyDataset(survey, preprocessor=convlstm.preprocessor_, indices=fit_rows)
pca = ifsrepr.IFSEncoder("pca", n_components=32, device="cpu")
pca.fit(training, validation_fraction=0, progress=False)
print(pca)

# %%
# Fraction of variance explained
# ------------------------------
# `ifsrepr.report.model_maps` gives, for rows of a dataset, the normalised
# maps ``x``, their inverse-variance weights ``w`` (zero where masked) and a
# model's reconstruction ``x_hat``. The fraction of variance explained is
# ``1 - sum w (x - x_hat)**2 / sum w (x - mean)**2`` over the held-out
# galaxies, per line and overall: 1 is perfect, 0 no better than the mean
# map, and it can be negative.


def fraction_of_variance_explained(x, x_hat, w):
    """Per line and overall, for arrays shaped (galaxies, lines, H, W)."""
    mean = (w * x).sum(axis=(0, 2, 3), keepdims=True) / (w.sum(axis=(0, 2, 3), keepdims=True))
    residual = (w * (x - x_hat) ** 2).sum(axis=(0, 2, 3))
    spread = (w * (x - mean) ** 2).sum(axis=(0, 2, 3))
    return 1 - residual / spread, 1 - residual.sum() / spread.sum()


maps = {}
for name, model in (("ConvLSTM", convlstm), ("PCA-32", pca)):
    x, w, x_hat = (np.stack(a) for a in zip(*model_maps(model, survey, test_rows), strict=True))
    maps[name] = x_hat
per_line = {name: fraction_of_variance_explained(x, x_hat, w) for name, x_hat in maps.items()}
for name, (_, overall) in per_line.items():
    print(f"{name:>9s}: {overall:.1%} of the variance of {len(test_rows)} held-out galaxies")

# %%
# The model card's figures, measured the same way on the bundled model's 299
# held-out galaxies, ship with the weights (``quality.json``).

quality = json.loads((resolve_pretrained("manga-convlstm") / "quality.json").read_text())
lines = convlstm.preprocessor_.line_names
card = {
    "ConvLSTM": [quality["fve_per_line"][line] for line in lines],
    "PCA-128": [quality["pca128_fve_per_line"][line] for line in lines],
}

fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
positions = np.arange(len(lines))
for offset, (name, (values, _)) in zip((-0.2, 0.2), per_line.items(), strict=True):
    ax.bar(positions + offset, values, width=0.4, label=f"{name}, {len(test_rows)} galaxies here")
for marker, (name, values) in zip(("_", "x"), card.items(), strict=True):
    ax.scatter(positions, values, marker=marker, s=80, color="k", zorder=3,
               label=f"{name}, model card (299 galaxies)")  # fmt: skip
ax.set_xticks(positions, lines, rotation=60, ha="right")
ax.set_ylabel("fraction of variance explained")
bottom = -0.5
for offset, (values, _) in zip((-0.2, 0.2), per_line.values(), strict=True):
    for position, value in zip(positions + offset, values, strict=True):
        if value < bottom:  # a bar off the scale: write its value
            ax.text(position, bottom + 0.03, f"{value:.1f}", ha="center", fontsize=7, rotation=90)
ax.set_ylim(bottom, 1)
ax.axhline(0, color="0.5", linewidth=0.8)
ax.legend(loc="lower left", fontsize=8)
ax.set_title("Held-out mock galaxies: ConvLSTM (bundled) vs PCA")

# %%
# Reconstructions
# ---------------
# The held-out galaxy with the highest median Hα signal-to-noise, in the
# normalised units both models work in (``asinh(flux / scale)`` per line):
# the data, and each model's reconstruction on the same colour scale, for
# three bright lines. (In these units ``x * sqrt(w)`` is the signal-to-noise
# of a pixel.)

j = lines.index("Ha-6564")
snr = [np.median((x[i, j] * np.sqrt(w[i, j]))[w[i, j] > 0]) for i in range(len(x))]
galaxy = int(np.argmax(snr))
shown = ["Hb-4862", "OIII-5008", "Ha-6564"]
fig, axes = plt.subplots(len(shown), 3, figsize=(8, 8), layout="constrained")
good = w[galaxy] > 0
for row, line in zip(axes, shown, strict=True):
    j = lines.index(line)
    data = np.where(good[j], x[galaxy, j], np.nan)
    vmin, vmax = np.nanpercentile(data, [1, 99.5])
    panels = [data] + [np.where(good[j], maps[name][galaxy, j], np.nan) for name in maps]
    for ax, image in zip(row, panels, strict=True):
        shown_image = ax.imshow(image, origin="lower", cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(line)
    fig.colorbar(shown_image, ax=row[-1], shrink=0.8, label="asinh(f / s)")
for ax, title in zip(axes[0], ["data", *maps], strict=True):
    ax.set_title(title)
name = SurveyDataset(survey).stack(int(test_rows[galaxy])).name
fig.suptitle(f"{name}, held out")

# %%
# A linear model with a few dozen components, fitted on a few dozen galaxies,
# already rivals the bundled ConvLSTM on these galaxies; with thousands of
# galaxies and 128 components it explains 95 % of the variance against the
# ConvLSTM's 76 % (the black markers). The ConvLSTM's case rests on training
# it further (its loss was still falling when its three-minute budget ran
# out) and on what its latent space offers beyond reconstruction. To redo the
# model card's measurement at full scale, run
# ``scripts/train_bundled_model.py``; ``ifsrepr evaluate`` compares the two
# as anomaly detectors (:ref:`evaluation`).

# %%
# Everything was written to a temporary directory; remove it.

shutil.rmtree(workdir, ignore_errors=True)
plt.show()
