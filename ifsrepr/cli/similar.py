"""``ifsrepr similar``: the galaxies nearest to one galaxy in latent space."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "similar",
        help="the k galaxies most similar to one (nearest in latent space)",
        description=(
            "Find the galaxies whose latent vectors are nearest (Euclidean) to a galaxy's, in "
            "an encoding written by `ifsrepr encode` (exact search, milliseconds for a million "
            "galaxies). A repeated plate-IFU is named by its uid (PLATEIFU#2)."
        ),
    )
    parser.add_argument("plateifu", help="the query galaxy's plate-IFU (or uid)")
    parser.add_argument("--encoding", required=True, help="encoding file (ifsrepr encode)")
    parser.add_argument("-k", type=int, default=10, help="number of neighbours (10)")
    parser.add_argument("-o", "--output", help="also write the table (.ecsv)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..exceptions import IFSReprError
    from ..scoring import Encoding, similar

    encoding = Encoding.load(args.encoding, spaxel_errors=False)
    try:
        table = similar(encoding, args.plateifu, args.k)
    except KeyError as exc:
        raise IFSReprError(str(exc.args[0])) from None
    except ValueError as exc:
        raise IFSReprError(str(exc)) from None
    print(f"{args.k} galaxies nearest to {table.meta['query']} in {args.encoding}:")
    table.pprint(max_lines=-1, max_width=-1)
    if args.output:
        from .._atomic import atomic_path

        with atomic_path(args.output) as temporary:
            table.write(temporary, format="ascii.ecsv", overwrite=True)
    return 0
