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
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import FITSFixedWarning
from isal import igzip

from ..exceptions import FileFormatError

__all__ = ["open_fits", "check_complete", "header_meta"]


@contextlib.contextmanager
def open_fits(path: Path, **kwargs: Any) -> Iterator[fits.HDUList]:
    """`astropy.io.fits.open` with errors turned into `FileFormatError` naming the file.

    Truncated or corrupt files (gzip CRC errors, short reads) raise while the
    block runs, so the whole block is guarded. The file is checked to be
    complete before the block runs (see `check_complete`).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            with fits.open(path, **kwargs) as hdus:
                check_complete(Path(path), hdus)
                yield hdus
    except FileFormatError:
        raise
    except (OSError, EOFError, zlib.error, TypeError) as exc:
        raise FileFormatError(
            f"{path}: cannot read FITS data; the file may be truncated or corrupt "
            f"({type(exc).__name__}: {exc})"
        ) from None


def check_complete(path: Path, hdus: fits.HDUList) -> None:
    """Raise if a FITS file ends early (a cut download, a full disk).

    astropy reads HDUs lazily and takes an early end of file for the end of
    the HDU list, so without this a truncated file opens silently and a reader
    either reads it "successfully" or reports a misleading missing extension.
    A gzip stream is read to its end, which checks its end marker and CRC; a
    plain file must be whole 2880-byte blocks reaching the end of its last HDU.
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if gzipped:
        # EOFError / BadGzipFile here become a FileFormatError in open_fits.
        with igzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # "File may have been truncated"
        hdus.readall()
    last = hdus.fileinfo(len(hdus) - 1)
    expected = last["datLoc"] + last["datSpan"]
    size = path.stat().st_size
    if size < expected or size % 2880:
        raise FileFormatError(
            f"{path}: the file is truncated or corrupt: it has {size} bytes but its "
            f"HDUs need {expected} (and a FITS file is whole 2880-byte blocks)"
        )


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
