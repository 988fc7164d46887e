"""Train the bundled ``manga-convlstm`` weights, start to finish, and measure them.

Steps (each skipped if its output is already there, so a rerun resumes):

1. a mock survey of ``--n-galaxies`` galaxies (line-stack products, the
   default anomaly rate of a natural population) with `ifsrepr.mock`;
2. a survey dataset at the default preprocessing (manga19, 64x64 pixels over
   ±2 effective radii, asinh normalisation) with ``extract_survey``;
3. the ConvLSTM autoencoder at its default options, trained with early
   stopping on a galaxy-wise split (checkpoints in OUTDIR/model);
4. quality on the held-out galaxies: the fraction of variance explained,
   ``1 - sum w (x - x_hat)^2 / sum w (x - mean)^2`` per line and overall, for
   the ConvLSTM and for the ``pca`` baseline at 128 components fitted on the
   same training galaxies; and the reconstruction of the real MAPS galaxy.

Writes OUTDIR/model (config.json, model.safetensors, metrics.csv) and
OUTDIR/quality.json. Runs on a CPU (about an hour on two cores with the
defaults) or a GPU (``--device cuda``; minutes).

    python scripts/train_bundled_model.py OUTDIR [--n-galaxies 2000] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np


def fraction_of_variance_explained(x, x_hat, w):
    """Per line and overall FVE with weights w (0 where masked); arrays (n, L, H, W)."""
    mean = (w * x).sum(axis=(0, 2, 3), keepdims=True) / np.maximum(
        w.sum(axis=(0, 2, 3), keepdims=True), 1e-30
    )
    residual = (w * (x - x_hat) ** 2).sum(axis=(0, 2, 3))
    spread = (w * (x - mean) ** 2).sum(axis=(0, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_line = np.where(spread > 0, 1 - residual / spread, np.nan)
    overall = 1 - residual.sum() / spread.sum()
    return per_line, float(overall)


def main() -> None:
    """Run the steps; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--n-galaxies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--anomaly-rate", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--max-minutes", type=float, default=None, help="training time budget")
    parser.add_argument(
        "--frontend", type=int, nargs="+", default=[16, 32, 32],
        help="front-end channels; three stride-2 layers take 64x64 maps to 8x8 for the ConvLSTM",
    )  # fmt: skip
    args = parser.parse_args()

    import torch

    import ifsrepr
    from ifsrepr.dataset import SurveyDataset, extract_survey
    from ifsrepr.encoder import IFSEncoder
    from ifsrepr.mock import make_survey

    warnings.simplefilter("ignore", ifsrepr.preprocess.MissingLinesWarning)
    out = Path(args.outdir)
    timings = {}
    mock_dir = out / "mock"
    started = time.perf_counter()
    if not (mock_dir / "truth.ecsv").is_file():
        make_survey(
            mock_dir, args.n_galaxies, seed=args.seed, products=["linestack"],
            anomaly_rate=args.anomaly_rate, n_jobs=args.jobs, progress=True,
        )  # fmt: skip
    timings["mock_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    survey = out / "survey.h5"
    if not survey.is_file() or not ifsrepr.dataset.read_attrs(survey).get("complete"):
        extract_survey(
            [mock_dir], survey, catalog=mock_dir / "drpall-mock.fits", jobs=args.jobs,
            batch_size=64, progress=True,
        )  # fmt: skip
    timings["extract_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    model_dir = out / "model"
    # Three downsampling layers (64 -> 8 pixels) keep the recurrent part cheap and
    # the weights small (1.3 M parameters, 5 MB) for shipping inside the package.
    encoder = IFSEncoder("convlstm", device=args.device, frontend_channels=args.frontend)
    encoder.fit(
        survey, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        output_dir=model_dir, resume=True, num_workers=args.workers, progress=True,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
    )  # fmt: skip
    timings["train_seconds"] = time.perf_counter() - started

    # Quality on held-out galaxies.
    data = SurveyDataset(survey)
    held_out = encoder.validation_rows_
    train_rows = np.setdiff1d(np.arange(len(data)), held_out)
    x = np.stack([data[int(i)][0].numpy() for i in held_out])
    w = np.stack([data[int(i)][1].numpy() for i in held_out])
    network = encoder.network_
    device = next(network.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), 64):
            xb = torch.from_numpy(x[start : start + 64]).to(device)
            wb = torch.from_numpy(w[start : start + 64]).to(device)
            outputs.append(network(xb, wb)[0].float().cpu().numpy())
    x_hat = np.concatenate(outputs)
    per_line, overall = fraction_of_variance_explained(x, x_hat, w)

    pca = IFSEncoder("pca")
    pca_network = pca._build_network(data.preprocessor).to(device)
    x_train = torch.stack([data[int(i)][0] for i in train_rows]).to(device)
    w_train = torch.stack([data[int(i)][1] for i in train_rows]).to(device)
    pca_network.fit(x_train, w_train)
    del x_train, w_train
    with torch.no_grad():
        pca_hat = (
            pca_network(torch.from_numpy(x).to(device), torch.from_numpy(w).to(device))[0]
            .cpu()
            .numpy()
        )
    pca_line, pca_overall = fraction_of_variance_explained(x, pca_hat, w)

    maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    real_x, real_w = encoder.preprocessor_.transform(maps)
    with torch.no_grad():
        real_hat = network(
            torch.from_numpy(real_x[None]).to(device), torch.from_numpy(real_w[None]).to(device)
        )[0].float().cpu().numpy()
    real_line, real_overall = fraction_of_variance_explained(real_x[None], real_hat, real_w[None])

    names = encoder.preprocessor_.line_names
    quality = {
        "n_galaxies": len(data),
        "n_train": int(len(train_rows)),
        "n_held_out": int(len(held_out)),
        "device": str(device),
        "torch": torch.__version__,
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "epochs_run": len(encoder.history_),
        "best_epoch": encoder.best_epoch_,
        "fve_overall": overall,
        "fve_per_line": dict(zip(names, map(float, per_line), strict=True)),
        "pca128_fve_overall": pca_overall,
        "pca128_fve_per_line": dict(zip(names, map(float, pca_line), strict=True)),
        "real_7815_3702_fve_overall": real_overall,
        "real_7815_3702_fve_per_line": dict(
            zip(names, map(lambda v: None if np.isnan(v) else float(v), real_line), strict=True)
        ),
        "history": encoder.history_,
    }
    (out / "quality.json").write_text(json.dumps(quality, indent=2))
    print(json.dumps({k: v for k, v in quality.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
