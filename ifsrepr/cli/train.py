"""``ifsrepr train``: train an encoder on a survey dataset."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare string such as variant=vae
    return key.replace("-", "_"), parsed


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train an encoder on a survey dataset (ifsrepr extract output)",
        description=(
            "Train an autoencoder on a survey dataset. A checkpoint is written to OUTPUT "
            "after every epoch and metrics.csv logs the losses; --resume continues an "
            "interrupted run exactly. For data-parallel training run it under torchrun, "
            "e.g. `torchrun --nproc-per-node 4 -m ifsrepr train survey.h5 -o model/`."
        ),
    )
    parser.add_argument("dataset", help="survey dataset written by `ifsrepr extract`")
    parser.add_argument("-o", "--output", required=True, help="directory for the trained model")
    parser.add_argument("--architecture", default="convlstm", help="registered architecture")
    parser.add_argument(
        "--option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="architecture option (repeatable), e.g. --option hidden_channels=32",
    )
    parser.add_argument("--loss", choices=("weighted", "masked", "mse"), default="weighted")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..encoder import IFSEncoder

    encoder = IFSEncoder(args.architecture, loss=args.loss, device=args.device, **dict(args.option))
    encoder.fit(
        args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        output_dir=args.output,
        resume=args.resume,
        num_workers=args.workers,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, the first process reports (and wrote the model)
    if encoder.history_:
        last = encoder.history_[-1]
        print(
            f"trained {len(encoder.history_)} epochs; best epoch {encoder.best_epoch_} "
            f"(validation loss {min(r['validation_loss'] for r in encoder.history_):.5g}); "
            f"last epoch {last['galaxies_per_second']:.1f} galaxies/s",
            file=sys.stderr,
        )
    print(f"model written to {args.output}")
    return 0
