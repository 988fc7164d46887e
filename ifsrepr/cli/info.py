"""``ifsrepr info``: read a file and describe what is in it."""

from __future__ import annotations

import argparse

from .. import datasets
from ..cube import IFSCube
from ..io import read


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info",
        help="read a file (or a bundled sample) and print what it holds",
        description=(
            "Read a survey file with ifsrepr.read and print a summary; for line maps, "
            "the table of lines with their median flux and S/N."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("path", nargs="?", help="file to read")
    source.add_argument(
        "--sample",
        choices=datasets.sample_names(),
        help="read a real data file bundled with the package instead",
    )
    parser.add_argument("--reader", help="reader name, skipping identification")
    return parser


def run(args: argparse.Namespace) -> int:
    path = datasets.get_path(args.sample) if args.sample else args.path
    data = read(path, reader=args.reader)
    print(repr(data))
    print(f"file: {path}")
    print(f"reader: {data.meta.get('reader')}")
    print(f"redshift: {'unknown' if data.redshift is None else f'{data.redshift:.5f}'}")
    if isinstance(data, IFSCube):
        good = (~data.mask).mean()
        print(f"unmasked fraction of voxels: {good:.3f}")
    else:
        print()
        data.line_table().pprint_all()
    return 0
