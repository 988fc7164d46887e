"""``ifsrepr fetch``: download real MaNGA cubes and maps from the SDSS archive."""

from __future__ import annotations

import argparse
import sys

from .. import fetch as fetching


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``ifsrepr fetch`` and its options."""
    parser = subparsers.add_parser(
        "fetch",
        help="download real MaNGA LOGCUBE and MAPS files from the SDSS Science Archive Server",
        description=(
            "Download MaNGA data cubes and DAP maps for the given plate-IFUs from the public "
            "SDSS Science Archive Server, into a cache (or -o DIR) that keeps the archive's "
            "folder layout. Files already there are not downloaded again; each download is "
            "checked against its announced size and its gzip checksum. Prints the local "
            f"path of every file. Cache: ${fetching.CACHE_VARIABLE}, else the user cache "
            "folder (pooch.os_cache('ifsrepr'))."
        ),
    )
    parser.add_argument(
        "plateifus", nargs="+", metavar="PLATEIFU", help="plate-IFU designations, e.g. 8485-1901"
    )
    parser.add_argument(
        "--release",
        default="DR17",
        type=str.upper,
        choices=sorted(fetching.RELEASES),
        help="data release (default DR17)",
    )
    parser.add_argument(
        "--products",
        nargs="+",
        default=["cube", "maps"],
        choices=fetching.PRODUCTS,
        help="what to download: cube (LOGCUBE), lincube (LINCUBE), maps (DAP MAPS); "
        "default: cube maps",
    )
    parser.add_argument("-o", "--outdir", help="download into this folder instead of the cache")
    parser.add_argument(
        "--daptype",
        help="DAP analysis type of the maps (default HYB10-MILESHC-MASTARSSP for DR17)",
    )
    parser.add_argument(
        "--base-url",
        default=fetching.SAS_URL,
        help=f"archive root to download from (default {fetching.SAS_URL})",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip decompressing each download to check its gzip checksum",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Download the files and print their local paths."""
    paths = fetching.fetch(
        args.plateifus,
        release=args.release,
        products=args.products,
        outdir=args.outdir,
        daptype=args.daptype,
        base_url=args.base_url,
        progress=not args.no_progress and sys.stderr.isatty(),
        verify=not args.no_verify,
    )
    for products in paths.values():
        for path in products.values():
            print(path)
    return 0
