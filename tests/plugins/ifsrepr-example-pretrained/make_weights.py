"""Fit the ``example-bpt-pca`` weights shipped in ``ifsrepr_example_pretrained/weights``.

Steps:

1. a mock MaNGA survey of ``--n-galaxies`` normal galaxies (line-stack
   products only, no cubes) with `ifsrepr.mock.make_survey`, in WORKDIR;
2. the last ``--held-out`` galaxies are kept aside; the built-in ``pca``
   architecture (128 components) is fitted on the others with
   `ifsrepr.IFSEncoder.fit`, on a 16x16 grid over ±2 effective radii of the
   seven BPT lines;
3. the fraction of variance explained (FVE) of the normalised maps of the
   held-out galaxies is measured, for this model and, for comparison, for
   PCAs with fewer components, and written to ``quality.json``;
4. ``config.json`` and ``model.safetensors`` are written into the package's
   weights directory, and the SHA-256 to paste into ``plugin.py`` is printed.

About five minutes on two CPU cores with the defaults, nearly all of it
simulating the survey (the fit takes seconds). The same versions of
numpy, torch and ifsrepr on the same kind of machine give the same bytes;
elsewhere the last bits, hence the SHA-256, may differ.

    python make_weights.py WORKDIR [--n-galaxies 800] [--held-out 80]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

import ifsrepr
from ifsrepr.mock import make_survey
from ifsrepr.preprocess import MissingLinesWarning, Preprocessor
from ifsrepr.probes import fraction_of_variance_explained

HERE = Path(__file__).resolve().parent
NAME = "example-bpt-pca"
TARGET = HERE / "ifsrepr_example_pretrained" / "weights" / NAME

#: The lines of the [NII]-, [SII]- and [OI]-BPT diagrams, in wavelength order.
BPT_LINES = ["Hb-4862", "OIII-5008", "OI-6302", "Ha-6564", "NII-6585", "SII-6718", "SII-6732"]
#: The grid: 16x16 pixels over ±2 effective radii (7 x 16 x 16 = 1792 values a galaxy).
SIZE, N_REFF = 16, 2.0
#: The architecture's options: 128 components, the latent size of ifsrepr's models.
OPTIONS = {"n_components": 128}
#: Galaxies with fewer Hα pixels on that grid are left out.
MIN_PIXELS = 8


def read_survey(survey: Path) -> list[ifsrepr.LineStack]:
    """The survey's line stacks (BPT lines only), with ``meta['reff']`` from the truth table."""
    truth = Table.read(survey / "truth.ecsv")
    grid = Preprocessor(BPT_LINES, size=SIZE, n_reff=N_REFF)
    stacks = []
    for row in truth:
        stack = ifsrepr.read(survey / row["linestack_file"]).select(BPT_LINES)
        # Line-stack files carry no effective radius; the catalogue does (as
        # DRPall's nsa_elpetro_th50_r does for real galaxies).
        stack.meta["reff"] = float(row["reff"])
        # A galaxy much larger than its IFU (Reff of a minute of arc) covers
        # only a pixel or two of the ±2 Reff grid: nothing to learn from.
        if (~grid.regrid(stack)["Ha-6564"].mask).sum() >= MIN_PIXELS:
            stacks.append(stack)
    return stacks


def held_out_fve(encoder: ifsrepr.IFSEncoder, stacks: list[ifsrepr.LineStack]):
    """Per-line and overall FVE of ``encoder``'s reconstructions of ``stacks`` (normalised)."""
    arrays = [encoder.preprocessor_.transform(stack) for stack in stacks]
    x = torch.from_numpy(np.stack([a[0] for a in arrays]))
    w = torch.from_numpy(np.stack([a[1] for a in arrays]))
    with torch.no_grad():
        x_hat = encoder.network_(x, w)[0]
    # Arrays are (galaxies, lines, H, W): 4-D in, 4-D out.
    return fraction_of_variance_explained(x.numpy(), x_hat.numpy(), w.numpy())


def main() -> None:
    """Run the steps of the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--n-galaxies", type=int, default=800)
    parser.add_argument("--held-out", type=int, default=80)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    survey = args.workdir / "survey"
    started = time.perf_counter()
    if not (survey / "truth.ecsv").is_file():
        make_survey(survey, args.n_galaxies, args.seed, products=["linestack"])
    stacks = read_survey(survey)
    train, test = stacks[: -args.held_out], stacks[-args.held_out :]
    seconds = time.perf_counter() - started
    print(f"survey: {len(stacks)} of {args.n_galaxies} galaxies kept ({seconds:.0f} s)")

    def fitted(options):
        encoder = ifsrepr.IFSEncoder(
            "pca", lines=BPT_LINES, size=SIZE, n_reff=N_REFF, device="cpu", **options
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingLinesWarning)
            # A closed-form fit: no validation set is needed.
            return encoder.fit(train, validation_fraction=0.0, progress=False)

    started = time.perf_counter()
    encoder = fitted(OPTIONS)
    seconds = time.perf_counter() - started
    per_line, overall = held_out_fve(encoder, test)
    fewer = {k: held_out_fve(fitted({"n_components": k}), test)[1] for k in (8, 32)}
    print(f"fitted in {seconds:.1f} s; held-out FVE {overall:.4f}")
    print(f"with 8 components {fewer[8]:.4f}, with 32 {fewer[32]:.4f}")

    TARGET.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(TARGET)
    quality = {
        "held_out_galaxies": len(test),
        "training_galaxies": len(train),
        "fve": overall,
        "fve_per_line": dict(zip(BPT_LINES, map(float, per_line), strict=True)),
        "fve_8_components": fewer[8],
        "fve_32_components": fewer[32],
        "survey": {"n_galaxies": args.n_galaxies, "seed": args.seed, "anomaly_rate": 0.0},
    }
    (TARGET / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    weights = TARGET / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    print(f"wrote {weights} ({weights.stat().st_size} bytes)")
    print(f'paste into ifsrepr_example_pretrained/plugin.py:\nSHA256 = "{digest}"')


if __name__ == "__main__":
    main()
