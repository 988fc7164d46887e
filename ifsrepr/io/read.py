"""`ifsrepr.read`: open a file's header once, ask the readers, dispatch."""

from __future__ import annotations

import gzip
import inspect
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astropy.io import fits

from ..cube import IFSCube
from ..exceptions import DataModelError, FileFormatError, IFSReprError
from ..linestack import LineStack
from ..plugins import get_readers

__all__ = ["read", "identify_readers", "read_primary_header"]

_FITS_MAGIC = b"SIMPLE  ="


def read_primary_header(path: str | os.PathLike) -> fits.Header | None:
    """The primary header of a FITS file (plain or gzipped), or None if not FITS.

    Only the first header block(s) are read and, for ``.gz`` files,
    decompressed; the data are not touched.

    Raises
    ------
    ifsrepr.FileFormatError
        If the file starts like FITS but its header cannot be parsed, or it
        is a gzip file whose start is corrupt.

    Examples
    --------
    >>> import ifsrepr
    >>> from ifsrepr.io import read_primary_header
    >>> header = read_primary_header(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    >>> header["PLATEIFU"], header["DAPTYPE"]
    ('7815-3702', 'HYB10-GAU-MILESHC')

    A file that is not FITS gives None:

    >>> print(read_primary_header(ifsrepr.__file__))
    None
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            start = raw.read(2)
            raw.seek(0)
            if start == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=raw)
                first = stream.read(len(_FITS_MAGIC))
            else:
                stream = raw
                first = raw.read(len(_FITS_MAGIC))
            if first != _FITS_MAGIC:
                return None
            stream.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                return fits.Header.fromfile(stream, padding=True)
    except (OSError, EOFError, zlib.error) as exc:
        raise FileFormatError(
            f"{path}: cannot read the file header; the file may be truncated or corrupt ({exc})"
        ) from None
    except ValueError as exc:
        raise FileFormatError(f"{path}: the FITS primary header is corrupt ({exc})") from None


def identify_readers(path: str | os.PathLike, header: fits.Header | None = None) -> list[str]:
    """Names of the registered readers that claim ``path``.

    An exception inside a reader's ``identify`` is reported as a warning
    naming the reader (so a broken plugin is visible) and counts as "no".
    Readers with a true ``fallback`` attribute (generic formats, such as
    ``fits-cube``) are dropped when any other reader claims the file.

    Parameters
    ----------
    path : path-like
        The file to identify.
    header : astropy.io.fits.Header, optional
        Its primary header (`read_primary_header`); readers that go by the
        header claim nothing without it.

    Returns
    -------
    list of str
        Reader names, usable as ``ifsrepr.read(path, reader=name)``.

    Examples
    --------
    >>> import ifsrepr
    >>> from ifsrepr.io import identify_readers, read_primary_header
    >>> path = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    >>> identify_readers(path, read_primary_header(path))
    ['manga-maps']
    """
    path = Path(path)
    claims = []
    fallbacks = set()
    for registration in get_readers().registrations():
        try:
            if registration.item.identify(path, header):
                claims.append(registration.name)
                if getattr(registration.item, "fallback", False):
                    fallbacks.add(registration.name)
        except Exception as exc:
            warnings.warn(
                f"reader {registration.name!r} (plugin {registration.plugin!r}) failed to "
                f"identify {path}: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    # Generic readers (fallback = True) give way to any specific reader.
    specific = [name for name in claims if name not in fallbacks]
    return specific or claims


def read(
    path: str | os.PathLike,
    *,
    reader: str | None = None,
    wavelength_ranges: Sequence[tuple[float, float]] | None = None,
    **options: Any,
) -> IFSCube | LineStack:
    """Read a survey file into an `IFSCube` or a `LineStack`.

    The file's primary header is read once and offered to every registered
    reader's ``identify``; exactly one must claim the file, unless
    ``reader`` names one.

    Parameters
    ----------
    path : path-like
        A MaNGA LOGCUBE, a DAP MAPS file, a FITS cube, or any file a plugin reads.
    reader : str, optional
        Name of the reader to use, skipping identification (see
        ``ifsrepr plugins`` for the names).
    wavelength_ranges : sequence of (low, high), optional
        A hint: only these observed wavelengths (Å) will be used. Readers
        whose ``read`` takes a ``wavelength_ranges`` option may then skip the
        other channels (the MaNGA cube reader keeps only these channels of a
        gzipped cube; the others come back masked); other readers read
        everything. ``extract_lines`` on a path passes what its extractor needs.
    **options
        Passed to the reader's ``read``.

    Returns
    -------
    IFSCube or LineStack
        Cubes for spectral data, line stacks for files that already hold line
        maps (DAP MAPS).

    Raises
    ------
    ifsrepr.FileFormatError
        If the file is missing, no reader (or several) claims it, or the
        reader finds it broken. The message names the file.

    Examples
    --------
    >>> import ifsrepr
    >>> maps = ifsrepr.read(ifsrepr.datasets.get_path("manga-7815-3702-maps"))
    >>> maps.name, len(maps)
    ('7815-3702', 22)
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, not a file")
    readers = get_readers()
    if reader is not None:
        chosen = reader
        readers.get(chosen)  # unknown name -> UnknownNameError listing the readers
    else:
        header = read_primary_header(path)
        claims = identify_readers(path, header)
        if not claims:
            what = "a FITS file" if header is not None else "not a FITS file"
            raise FileFormatError(
                f"{path}: no reader recognises this file ({what}); tried: "
                f"{', '.join(readers.names()) or 'none'}. Pass reader=NAME to force one."
            )
        if len(claims) > 1:
            raise FileFormatError(
                f"{path}: several readers claim this file: {', '.join(claims)}; "
                "pass reader=NAME to choose"
            )
        chosen = claims[0]
    registration = readers.registration(chosen)
    if wavelength_ranges is not None and _accepts(registration.item.read, "wavelength_ranges"):
        options["wavelength_ranges"] = wavelength_ranges
    try:
        result = registration.item.read(path, **options)
    except DataModelError as exc:
        # Arrays that do not fit the data model: say which file they came from,
        # for every reader, rather than each reader wrapping IFSCube itself.
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: {message}"
        raise FileFormatError(message) from None
    except IFSReprError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise FileFormatError(
            f"{path}: reader {chosen!r} could not read the file, it may be truncated or "
            f"corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    except Exception as exc:
        raise FileFormatError(
            f"{path}: reader {chosen!r} (plugin {registration.plugin!r}) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, (IFSCube, LineStack)):
        raise FileFormatError(
            f"{path}: reader {chosen!r} returned {type(result).__name__}, "
            "not an IFSCube or LineStack"
        )
    result.meta.setdefault("filename", path.name)
    result.meta.setdefault("reader", chosen)
    return result


def _accepts(function, name: str) -> bool:
    """Whether ``function`` names a keyword argument ``name`` (``**kwargs`` does not count)."""
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
