"""FITS helpers shared by the reader plugins."""

from __future__ import annotations

import contextlib
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import FITSFixedWarning

from ..exceptions import FileFormatError

__all__ = ["open_fits", "header_meta"]


@contextlib.contextmanager
def open_fits(path: Path, **kwargs: Any) -> Iterator[fits.HDUList]:
    """`astropy.io.fits.open` with errors turned into `FileFormatError` naming the file.

    Truncated or corrupt files (gzip CRC errors, short reads) raise while the
    block runs, so the whole block is guarded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            with fits.open(path, **kwargs) as hdus:
                yield hdus
    except FileFormatError:
        raise
    except (OSError, EOFError, zlib.error, TypeError) as exc:
        raise FileFormatError(
            f"{path}: cannot read FITS data; the file may be truncated or corrupt "
            f"({type(exc).__name__}: {exc})"
        ) from None


def header_meta(header: fits.Header, keys: Iterable[str]) -> dict[str, Any]:
    """Copy the listed header keys that exist into a JSON-friendly dict (lower-case keys)."""
    meta: dict[str, Any] = {}
    for key in keys:
        if key not in header:
            continue
        value = header[key]
        if isinstance(value, str):
            value = value.strip()
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = float(value)
        else:
            continue  # undefined values and the like
        meta[key.lower()] = value
    return meta
