"""Turn the command line's INPUTS into a list of files to process.

An input is one of:

- a file (processed as it is; if it cannot be read, that is a failure);
- a directory (every ``*.fits``, ``*.fits.gz``, ``*.fit`` below it);
- a glob pattern (``"data/**/manga-*-MAPS-*.fits.gz"``);
- a table of paths: ``.ecsv``/``.csv``, a FITS table, or a ``.txt``/``.lst``
  list of one path per line. A table names its path column ``path``,
  ``file``, ``filename`` or ``filepath``; relative paths are relative to the
  table's directory. Columns ``plateifu``, ``redshift``/``nsa_z``/``z`` and
  ``reff``/``nsa_elpetro_th50_r`` in such a table override the catalogue for
  that file.

Sound FITS files found by a directory scan or a glob that no reader
recognises (a catalogue lying next to the cubes, say) are skipped rather than
failed; a file that is not valid FITS is a failure wherever it came from.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..exceptions import FileFormatError
from .catalog import read_table

__all__ = ["InputItem", "resolve_inputs"]

#: Suffixes of files picked up by a directory scan.
DATA_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fits.fz")
_TABLE_SUFFIXES = (".ecsv", ".csv")
_LIST_SUFFIXES = (".txt", ".lst", ".list")
_PATH_COLUMNS = ("path", "file", "filename", "filepath")
_OVERRIDE_COLUMNS = {
    "plateifu": ("plateifu",),
    "redshift": ("redshift", "nsa_z", "z"),
    "reff": ("reff", "nsa_elpetro_th50_r"),
}


@dataclass(frozen=True)
class InputItem:
    """One file to process.

    Attributes
    ----------
    path : str
        Absolute path.
    discovered : bool
        Found by a directory scan or a glob (then "no reader recognises it"
        means skip, not fail).
    overrides : dict
        Per-file ``plateifu``, ``redshift`` or ``reff`` from a table of paths.

    Examples
    --------
    `resolve_inputs` makes these; a file named directly is not ``discovered``,
    so if no reader recognises it, that is a failure rather than a skip:

    >>> from ifsrepr.dataset import InputItem
    >>> item = InputItem("/data/manga-8485-1901-MAPS.fits.gz", overrides={"redshift": 0.0289})
    >>> item.discovered, item.overrides
    (False, {'redshift': 0.0289})
    """

    path: str
    discovered: bool = False
    overrides: dict[str, Any] = field(default_factory=dict, compare=False)


def resolve_inputs(
    inputs: Iterable[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = ()
) -> list[InputItem]:
    """Expand directories, globs and tables of paths into files, without duplicates.

    Parameters
    ----------
    inputs : iterable of str or path-like
        What the user named (see the module docstring).
    exclude : iterable of path-like
        Files never to include (the catalogue, the output dataset).

    Returns
    -------
    list of InputItem
        In the order given; directories and globs sorted by path.

    Raises
    ------
    ifsrepr.FileFormatError
        If a glob matches nothing or a table of paths has no path column.

    Examples
    --------
    A directory of (empty, for the example) MAPS files, and a table of paths
    that gives one of them its own redshift:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from astropy.table import Table
    >>> from ifsrepr.dataset import resolve_inputs
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cubes = Path(tmp.name) / "cubes"
    >>> cubes.mkdir()
    >>> for name in ["a-MAPS.fits.gz", "b-MAPS.fits.gz", "notes.txt"]:
    ...     _ = (cubes / name).write_bytes(b"")
    >>> [Path(item.path).name for item in resolve_inputs([cubes])]
    ['a-MAPS.fits.gz', 'b-MAPS.fits.gz']
    >>> table = Path(tmp.name) / "inputs.ecsv"
    >>> Table({"path": ["cubes/a-MAPS.fits.gz"], "nsa_z": [0.05]}).write(table)
    >>> for item in resolve_inputs([table, cubes]):
    ...     print(Path(item.path).name, item.discovered, item.overrides)
    a-MAPS.fits.gz False {'redshift': 0.05}
    b-MAPS.fits.gz True {}
    >>> len(resolve_inputs([cubes / "*.fits.gz"], exclude=[cubes / "b-MAPS.fits.gz"]))
    1
    >>> tmp.cleanup()
    """
    excluded = {str(Path(p).resolve()) for p in exclude}
    items: dict[str, InputItem] = {}

    def add(item: InputItem) -> None:
        if item.path not in excluded and item.path not in items:
            items[item.path] = item

    for entry in inputs:
        text = os.fspath(entry)
        path = Path(text).expanduser()
        if path.is_dir():
            for found in _scan_directory(path):
                add(InputItem(found, discovered=True))
        elif not path.exists() and glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise FileFormatError(f"{text}: no file matches this pattern")
            for match in matches:
                if Path(match).is_file():
                    add(InputItem(str(Path(match).resolve()), discovered=True))
        elif path.is_file() and _is_path_table(path):
            for item in _read_path_table(path):
                add(item)
        else:
            # A missing file is kept: it is recorded as a failure, like an unreadable one.
            add(InputItem(str(path.resolve())))
    return list(items.values())


def _scan_directory(directory: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".h5.d"))
        for name in files:
            if name.lower().endswith(DATA_SUFFIXES) and not name.startswith("."):
                found.append(str((Path(root) / name).resolve()))
    return sorted(found)


def _is_path_table(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(_TABLE_SUFFIXES + _LIST_SUFFIXES):
        return True
    if not name.endswith((".fits", ".fit")):
        return False
    try:
        with fits.open(path) as hdus:
            if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU):
                return False
            names = {c.name.lower() for c in hdus[1].columns}
    except (OSError, ValueError):
        return False  # not readable as FITS: let the reader report it
    return any(column in names for column in _PATH_COLUMNS)


def _read_path_table(path: Path) -> list[InputItem]:
    base = path.parent
    if path.name.lower().endswith(_LIST_SUFFIXES):
        rows = [line.strip() for line in path.read_text().splitlines()]
        paths = [row for row in rows if row and not row.startswith("#")]
        return [InputItem(str((base / p).resolve())) for p in paths]
    table = read_table(path)
    lower = {name.lower(): name for name in table.colnames}
    column = next((lower[c] for c in _PATH_COLUMNS if c in lower), None)
    if column is None:
        raise FileFormatError(
            f"{path}: a table of inputs needs a path column ({', '.join(_PATH_COLUMNS)}); "
            f"it has {', '.join(table.colnames)}"
        )
    override_columns = {
        key: next((lower[c] for c in candidates if c in lower), None)
        for key, candidates in _OVERRIDE_COLUMNS.items()
    }
    items = []
    for row in table:
        value = row[column]
        text = value.decode() if isinstance(value, bytes) else str(value)
        overrides: dict[str, Any] = {}
        for key, name in override_columns.items():
            if name is None or np.ma.is_masked(row[name]):
                continue
            cell = row[name]
            if key == "plateifu":
                cell = cell.decode() if isinstance(cell, bytes) else str(cell)
                if cell.strip():
                    overrides[key] = cell.strip()
            else:
                try:
                    number = float(cell)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(number) and number > -999:
                    overrides[key] = number
        items.append(InputItem(str((base / text.strip()).resolve()), overrides=overrides))
    return items
