"""Reading a survey dataset's index: attributes, metadata and failure tables.

Kept free of torch so that worker processes and command-line tools that only
need the tables start quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from astropy.table import Table

from .errors import DatasetError
from .writer import ARRAYS, FORMAT, FORMAT_VERSION, INDEX_COLUMNS

__all__ = ["load_failures", "load_metadata", "open_index", "read_attrs"]


@contextlib.contextmanager
def open_index(path: str | os.PathLike, **kwargs: Any) -> Iterator[h5py.File]:
    """Open a dataset's index read-only, after checking it is complete on disk.

    HDF5 silently returns fill values for a virtual dataset whose source file
    is missing, so the part files are checked here, by name.

    Raises
    ------
    DatasetError
        If the file is not an ifsrepr survey dataset, is from a newer
        ifsrepr, or part files are missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset")
    try:
        handle = h5py.File(path, "r", **kwargs)
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        _check_index(path, handle)
        yield handle
    finally:
        handle.close()


def _check_index(path: Path, handle: h5py.File) -> None:
    if handle.attrs.get("format") != FORMAT:
        raise DatasetError(f"{path}: not an ifsrepr survey dataset")
    version = int(handle.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{path}: written by a newer ifsrepr (dataset format {version}; this one "
            f"reads up to {FORMAT_VERSION})"
        )
    if handle.attrs.get("consolidated", False) or not handle["flux"].is_virtual:
        return
    missing = sorted(
        {
            source.file_name
            for name in ARRAYS
            for source in handle[name].virtual_sources()
            if not (path.parent / source.file_name).is_file()
        }
    )
    if missing:
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(
            f"{path}: {len(missing)} part file(s) are missing next to the index ({listed}); "
            f"keep {path.name} and {handle.attrs['parts_dir']}/ together, or use a "
            "consolidated copy"
        )


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The dataset's attributes, with JSON values (settings, preprocessor) decoded.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import extract_survey, read_attrs
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> output = Path(tmp.name) / "survey.h5"
    >>> _ = extract_survey([ifsrepr.datasets.get_path("manga-7815-3702-maps")], output,
    ...                    preprocessor=Preprocessor("manga19", size=16), progress=False)
    >>> attrs = read_attrs(output)
    >>> attrs["format"], attrs["n_galaxies"], attrs["complete"]
    ('ifsrepr-survey', 1, True)
    >>> attrs["settings"]["preprocessing"]["size"], attrs["unit"]
    (16, '1e-17 erg / (s arcsec2 cm2)')
    >>> tmp.cleanup()
    """
    with open_index(path) as index:
        return _decode_attrs(index.attrs)


def _decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if key in ("settings", "preprocessor", "lines") and isinstance(value, str):
            value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def load_metadata(path: str | os.PathLike) -> Table:
    """The per-galaxy metadata of a dataset as an astropy Table (row i = galaxy i).

    Columns: ``plateifu``, ``mangaid``, ``source`` (the input file),
    ``reader``, ``kind`` (``cube`` or ``linestack``), ``redshift`` and
    ``redshift_origin``, ``reff`` (arcsec) and ``reff_origin``, ``objra``,
    ``objdec``, ``status`` (``ok``, or ``partial`` when lines are missing or
    warnings were raised), ``missing_lines``, ``warnings``, ``pixel_scale``
    (arcsec), ``grid`` (JSON, for `Preprocessor.inverse_transform`),
    ``part`` and ``part_row`` (where the arrays live), and ``n_good``
    (unmasked pixels per line). ``table.meta`` holds the dataset attributes.

    Examples
    --------
    The bundled DR15 MAPS file lacks four of the ``manga19`` lines, so its
    galaxy is stored as ``partial``:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import extract_survey, load_metadata
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> output = Path(tmp.name) / "survey.h5"
    >>> _ = extract_survey([ifsrepr.datasets.get_path("manga-7815-3702-maps")], output,
    ...                    preprocessor=Preprocessor("manga19", size=16), progress=False)
    >>> meta = load_metadata(output)
    >>> meta["plateifu", "kind", "redshift", "status"]
    <Table length=1>
     plateifu    kind   redshift  status
       str9     str9   float64    str7
    --------- --------- -------- -------
    7815-3702 linestack  0.02938 partial
    >>> print(meta["missing_lines"][0])
    ArIII-7137,ArIII-7753,HeI-7067,NI-5199
    >>> tmp.cleanup()
    """
    with open_index(path) as index:
        table = _columns_table(index["meta"], INDEX_COLUMNS)
        table["n_good"] = index["n_good"][()]
        table.meta.update(_decode_attrs(index.attrs))
    table["redshift"].format = ".5f"
    table["reff"].unit = "arcsec"
    table["pixel_scale"].unit = "arcsec"
    return table


def load_failures(path: str | os.PathLike, *, skipped: bool = False) -> Table:
    """The inputs that failed, as a Table of ``source`` and ``reason``.

    With ``skipped=True``: the files a directory scan or glob found that no
    reader recognises instead.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import extract_survey, load_failures
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> broken = Path(tmp.name) / "broken.fits"
    >>> _ = broken.write_text("not a FITS file")
    >>> maps = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    >>> output = Path(tmp.name) / "survey.h5"
    >>> _ = extract_survey([maps, broken], output, preprocessor=Preprocessor("manga19", size=16),
    ...                    progress=False)
    >>> failures = load_failures(output)
    >>> len(failures), Path(failures["source"][0]).name
    (1, 'broken.fits')
    >>> print(failures["reason"][0])
    no reader recognises this file (not a FITS file); tried: ...
    >>> len(load_failures(output, skipped=True))
    0
    >>> tmp.cleanup()
    """
    with open_index(path) as index:
        return _columns_table(
            index["skipped" if skipped else "failures"],
            {
                "source": "str",
                "reason": "str",
            },
        )


def _columns_table(group: h5py.Group, columns: dict[str, str]) -> Table:
    table = Table()
    for name, kind in columns.items():
        if name not in group:
            continue
        data = group[name]
        table[name] = data.asstr()[()] if kind == "str" else data[()]
        if kind == "str":
            table[name] = table[name].astype(str)
    return table
