"""``ifsrepr encode``: run an encoder once over a survey dataset and keep latents and errors."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scoring._cli import add_model_arguments

    parser = subparsers.add_parser(
        "encode",
        help="encode a survey dataset: latents and reconstruction errors (HDF5)",
        description=(
            "Run a trained encoder over a survey dataset (`ifsrepr extract` output) and write "
            "an encoding: every galaxy's latent vector and its reconstruction error per galaxy, "
            "line and spaxel, with the model's identity and the galaxies that could not be "
            "encoded. `ifsrepr score`, `similar` and `report` read it."
        ),
    )
    parser.add_argument("dataset", help="survey dataset written by `ifsrepr extract`")
    add_model_arguments(parser, required=True)
    parser.add_argument("-o", "--output", required=True, help="encoding file to write (.h5)")
    parser.add_argument("--batch-size", type=int, default=32, help="galaxies per batch (32)")
    parser.add_argument(
        "--no-spaxel-errors",
        action="store_true",
        help="do not keep the per-spaxel error maps (a much smaller file)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..scoring import encode_dataset
    from ..scoring._cli import load_model, warnings_to_stderr

    with warnings_to_stderr():
        encoder = load_model(args.model, args.device)
        encoding = encode_dataset(
            encoder,
            args.dataset,
            batch_size=args.batch_size,
            progress=not args.quiet,
            spaxel_errors=not args.no_spaxel_errors,
        )
        encoding.save(args.output)
    print(
        f"encoded {len(encoding)} galaxies ({len(encoding.not_scored)} not encoded) with "
        f"{encoding.model_name}; written to {args.output}",
        file=sys.stderr,
    )
    return 0
