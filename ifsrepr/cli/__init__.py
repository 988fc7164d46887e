"""The ``ifsrepr`` command line.

Each subcommand lives in its own module with two functions: ``add_parser``
(declares its arguments) and ``run`` (does the work and returns an exit code).
Subcommands mirror the flow of data: ``mock``, ``extract``, ``train``,
``encode``, ``score``, ``report``, plus ``info`` and ``plugins``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from ..exceptions import IFSReprError

__all__ = ["main", "build_parser"]

#: The order ``--help`` lists subcommands in (the flow of data); any other
#: module in this package that defines ``add_parser`` and ``run`` follows.
ORDER = (
    "info", "fetch", "mock", "extract", "train", "encode", "score", "similar", "evaluate",
    "report", "probe", "demo", "plugins",
)  # fmt: skip


def subcommand_names() -> list[str]:
    """Names of the subcommand modules, in ``--help`` order."""
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand attached."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ifsrepr",
        description=(
            "Learn compact representations of integral-field spectroscopy galaxy cubes "
            "and find unusual galaxies."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ifsrepr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in subcommand_names():
        module = importlib.import_module(f".{name}", __name__)
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except IFSReprError as exc:
        print(f"ifsrepr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ifsrepr {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
