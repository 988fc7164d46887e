"""Helpers shared by the ``encode``, ``score``, ``similar``, ``evaluate``, ``report`` commands."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Show warnings as one ``warning:`` line each on stderr (not as tracebacks or errors).

    A command's warnings (duplicate plate-IFUs, fewer candidates than asked)
    are messages for the person running it, whatever warning filters the
    calling process has (pytest turns them into errors).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for item in caught:
                text = str(item.message)
                if text not in seen:
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr)


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--model`` and ``--device``."""
    parser.add_argument(
        "--model",
        required=required,
        metavar="NAME_OR_DIR",
        help="the encoder: a registered name (ifsrepr plugins) or a directory from "
        "`ifsrepr train` / save_pretrained",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, auto")


def load_model(name: str, device: str) -> Any:
    """``IFSEncoder.from_pretrained(name)``."""
    from ..encoder import IFSEncoder

    return IFSEncoder.from_pretrained(name, device=device)
