"""
Train your own model on a mock survey
=====================================

Make a small mock survey, turn it into a survey dataset, train a tiny ConvLSTM
autoencoder on it for a few epochs, stop, resume where training left off,
plot the losses and use the trained model like the bundled one.

The network and the survey here are far too small to learn much: the point is
the workflow, which is the same for 100,000 galaxies on a GPU cluster (see
:ref:`training` and :ref:`scaling`).
"""

# %%
# A training survey
# -----------------
# Forty-eight ordinary mock galaxies, written as line maps (no cubes), from the
# two smallest fibre bundles so they are quick to make.

import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.table import Table

import ifsrepr
from ifsrepr.dataset import SurveyDataset, extract_survey
from ifsrepr.mock import make_survey
from ifsrepr.preprocess import Preprocessor

workdir = Path(tempfile.mkdtemp(prefix="ifsrepr-train-"))
truth = make_survey(workdir / "mock", 48, seed=5, products=["linestack"], fibres=(19, 37))
kinds, counts = np.unique(truth["galaxy_type"], return_counts=True)
print(len(truth), "galaxies:", ", ".join(f"{n} {k}" for k, n in zip(kinds, counts, strict=True)))

# %%
# The survey dataset
# ------------------
# `~ifsrepr.dataset.extract_survey` (``ifsrepr extract``) puts every galaxy on
# a common grid and fits the normalisation on the whole dataset. A coarse
# 16 x 16 grid (the bundled model uses 64 x 64) keeps this example fast.

survey = workdir / "survey.h5"
extract_survey(
    [workdir / "mock"],
    survey,
    catalog=workdir / "mock" / "drpall-mock.fits",
    preprocessor=Preprocessor("manga19", size=16),
    progress=False,
)
data = SurveyDataset(survey)
x, w, index = data[0]
print(data, "- one item:", tuple(x.shape), "maps and weights")

# %%
# Train for four epochs
# ---------------------
# An `~ifsrepr.IFSEncoder` takes the architecture's options as keywords: here
# 16 hidden channels, a 16-number latent vector and a one-layer front end
# (the bundled model: 32, 128 and three layers). `~ifsrepr.IFSEncoder.fit` splits
# the galaxies into training and validation sets (by MaNGA ID, so repeat
# observations stay together), and with ``output_dir`` writes a checkpoint
# after every epoch and the losses to ``metrics.csv``.

options = {"hidden_channels": 16, "latent_dim": 16, "frontend_channels": [16]}
training = {"batch_size": 4, "learning_rate": 3e-3, "validation_fraction": 0.2}
model_dir = workdir / "my-model"
encoder = ifsrepr.IFSEncoder("convlstm", device="cpu", **options)
encoder.fit(survey, epochs=4, output_dir=model_dir, progress=False, **training)
print(encoder)
split = encoder.training_
print(f"{split['n_train']} training galaxies, {split['n_validation']} for validation")
print(sorted(path.name for path in model_dir.iterdir()))

# %%
# The same from the command line::
#
#     ifsrepr train survey.h5 -o my-model/ --epochs 4 --batch-size 4 \
#         --learning-rate 3e-3 --validation-fraction 0.2 \
#         --option hidden_channels=16 --option latent_dim=16 --option 'frontend_channels=[16]'
#
# Resume
# ------
# The directory holds the two newest checkpoints (numbered from 0 in their
# file names: ``checkpoint-epoch0003.pt`` is the fourth epoch), the losses in
# ``metrics.csv``, and the trained model (``config.json`` and
# ``model.safetensors``, with the weights of the best epoch).
#
# Training stopped after four epochs, as asked (or as a batch system's time
# limit, a ``Ctrl-C`` or ``max_seconds`` would have stopped it). Ask for twelve
# epochs with ``resume=True`` and the same output directory: training picks
# up from the newest checkpoint, with the optimiser state and the random
# number generators restored, so the result is the one an uninterrupted
# twelve-epoch run gives. (``ifsrepr train ... --epochs 12 --resume``.)

encoder = ifsrepr.IFSEncoder("convlstm", device="cpu", **options)
encoder.fit(survey, epochs=12, output_dir=model_dir, resume=True, progress=False, **training)
print("epochs run:", [row["epoch"] for row in encoder.history_])
print("best epoch:", encoder.best_epoch_)

# %%
# The metrics
# -----------
# ``metrics.csv`` has one row per epoch: training and validation loss (the
# inverse-variance-weighted squared error in normalised units), seconds,
# throughput and learning rate. The model keeps the weights of the epoch with
# the lowest validation loss; ``patience`` epochs without improvement (5 by
# default) stop training early.

metrics = Table.read(model_dir / "metrics.csv", format="ascii.csv")
for name in ("train_loss", "validation_loss"):
    metrics[name].format = ".3f"
metrics.pprint_all()

fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.plot(metrics["epoch"], metrics["train_loss"], "o-", label="training")
ax.plot(metrics["epoch"], metrics["validation_loss"], "s-", label="validation")
ax.axvline(encoder.best_epoch_, color="0.6", linestyle=":", label="best epoch (kept)")
ax.axvspan(0.5, 4.5, color="0.92", zorder=0, label="first run")
ax.set_xlabel("epoch")
ax.set_ylabel("weighted squared error")
ax.set_xlim(0.5, len(metrics) + 0.5)
ax.legend()
ax.set_title("Training a tiny ConvLSTM on 48 mock galaxies")

# %%
# Use the trained model
# ---------------------
# The output directory holds ``config.json`` and ``model.safetensors``, like
# the bundled model: `~ifsrepr.IFSEncoder.from_pretrained` loads it, and
# ``ifsrepr encode``, ``score`` and ``report`` take it as ``--model
# my-model/``. Here it reconstructs a galaxy it did not train on (the first
# of the validation set), in log surface brightness on the model grid.

mine = ifsrepr.IFSEncoder.from_pretrained(model_dir, device="cpu")
held_out = int(encoder.validation_rows_[0])
stack = data.stack(held_out)
print(stack.name, "latent vector:", np.round(mine.encode(stack)[0, :4], 2), "...")

reconstruction = mine.reconstruct(stack)
fig, axes = plt.subplots(2, 3, figsize=(9, 6), layout="constrained")
for row, name in zip(axes, ["Ha-6564", "OIII-5008"], strict=True):
    i = stack.index(name)
    flux = np.where(stack.mask[i], np.nan, stack.flux[i])
    model = np.where(stack.mask[i], np.nan, reconstruction.flux[i])
    top = np.log10(np.nanpercentile(flux, 99.5))
    with np.errstate(divide="ignore", invalid="ignore"):
        row[0].imshow(np.log10(flux), origin="lower", vmin=top - 2, vmax=top)
        image = row[1].imshow(np.log10(model), origin="lower", vmin=top - 2, vmax=top)
        fig.colorbar(image, ax=row[1], shrink=0.8, label="log SB")
        image = row[2].imshow(model / flux, origin="lower", cmap="RdBu_r", vmin=0, vmax=2)
    fig.colorbar(image, ax=row[2], shrink=0.8, label="model / data")
    row[0].set_ylabel(name)
for ax, title in zip(axes[0], ["data", "reconstruction", "model / data"], strict=True):
    ax.set_title(title)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"{stack.name} (validation galaxy)")

# %%
# After twelve epochs on a few dozen galaxies the network has learned roughly what a
# galaxy looks like on this grid, a centrally concentrated blob, but not this
# galaxy, as the ratio panels show. Learning the galaxies themselves takes more
# galaxies, a larger network and many more epochs (the bundled model: 2,701
# galaxies, 38 epochs on a GPU, and still undertrained; see its
# :ref:`model card <model_card>`).
#
# Where next: train the default ``convlstm`` (or ``cnn-lstm``) on thousands of
# galaxies, on a GPU or several (``torchrun``, :ref:`scaling`), and compare it
# with the linear baseline (:ref:`sphx_glr_generated_gallery_plot_convlstm_vs_pca.py`).
# The bundled model's recipe is ``scripts/train_bundled_model.py``.

# %%
# Everything was written to a temporary directory; remove it.

shutil.rmtree(workdir, ignore_errors=True)
plt.show()
