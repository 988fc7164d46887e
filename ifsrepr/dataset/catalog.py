"""Per-galaxy values from a survey catalogue (DRPall): redshift and effective radius.

MaNGA cube headers carry no redshift; in the real survey it comes from DRPall's
``nsa_z``, matched by plate-IFU, and the effective radius from
``nsa_elpetro_th50_r`` (arcsec). This module reads such a catalogue once per
process and looks galaxies up by plate-IFU.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..exceptions import FileFormatError

__all__ = ["Catalog", "CatalogColumns", "load_catalog"]


@dataclass(frozen=True)
class CatalogColumns:
    """Catalogue column names (matched case-insensitively).

    Each entry lists candidates in order of preference; the first present
    is used.
    """

    plateifu: tuple[str, ...] = ("plateifu",)
    redshift: tuple[str, ...] = ("nsa_z", "z", "redshift")
    reff: tuple[str, ...] = ("nsa_elpetro_th50_r", "reff")
    mangaid: tuple[str, ...] = ("mangaid",)


class Catalog:
    """Look galaxies up by plate-IFU in a catalogue table.

    Parameters
    ----------
    table : astropy.table.Table
        Must have a plate-IFU column; redshift and effective-radius columns
        are optional (a galaxy without them then fails if it needs them).
    source : str
        Named in messages.
    columns : CatalogColumns
        Column names to look for.

    Notes
    -----
    DRPall writes -9999 for unknown values; any non-finite, masked, or
    (for the redshift) below -0.01, (for the radius) non-positive value is
    treated as unknown.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from ifsrepr.dataset import Catalog
    >>> table = Table({"plateifu": ["8485-1901", "7815-3702"], "nsa_z": [0.0289, -9999.0],
    ...                "nsa_elpetro_th50_r": [4.2, 3.7]})
    >>> catalog = Catalog(table, source="drpall")
    >>> len(catalog), "8485-1901" in catalog
    (2, True)
    >>> catalog.lookup("8485-1901")
    {'redshift': 0.0289, 'reff': 4.2}
    >>> catalog.lookup("7815-3702")  # DRPall's -9999: unknown
    {'reff': 3.7}
    >>> catalog.lookup("1-1")
    {}
    """

    def __init__(
        self, table: Table, source: str = "catalogue", columns: CatalogColumns | None = None
    ) -> None:
        columns = columns or CatalogColumns()
        self.source = source
        lower = {name.lower(): name for name in table.colnames}

        def find(candidates: tuple[str, ...]) -> str | None:
            return next((lower[c.lower()] for c in candidates if c.lower() in lower), None)

        key = find(columns.plateifu)
        if key is None:
            raise FileFormatError(
                f"{source}: the catalogue has no plate-IFU column (looked for "
                f"{', '.join(columns.plateifu)}); columns: {', '.join(table.colnames[:20])}"
            )
        self.columns = {
            "redshift": find(columns.redshift),
            "reff": find(columns.reff),
            "mangaid": find(columns.mangaid),
        }
        self._rows: dict[str, int] = {}
        for i, value in enumerate(table[key]):
            name = _text(value)
            if name and name not in self._rows:  # DRPall is unique; keep the first otherwise
                self._rows[name] = i
        self._values: dict[str, np.ndarray | None] = {}
        for field, column in self.columns.items():
            if column is None:
                self._values[field] = None
                continue
            data = table[column]
            if field == "mangaid":
                self._values[field] = np.array([_text(v) for v in data], dtype=object)
            else:
                values = np.ma.filled(np.ma.asarray(data, dtype=float), np.nan)
                self._values[field] = np.asarray(values, dtype=float)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, plateifu: str) -> bool:
        return plateifu in self._rows

    def lookup(self, plateifu: str | None) -> dict[str, Any]:
        """The catalogue values for one galaxy (empty if it is not listed).

        Returns
        -------
        dict
            Some of ``redshift``, ``reff`` (arcsec) and ``mangaid``; unknown
            values are left out.
        """
        if plateifu is None or plateifu not in self._rows:
            return {}
        i = self._rows[plateifu]
        out: dict[str, Any] = {}
        redshift = self._number("redshift", i)
        if redshift is not None and redshift > -0.01:
            out["redshift"] = redshift
        reff = self._number("reff", i)
        if reff is not None and reff > 0:
            out["reff"] = reff
        if self._values["mangaid"] is not None and self._values["mangaid"][i]:
            out["mangaid"] = str(self._values["mangaid"][i])
        return out

    def _number(self, field: str, i: int) -> float | None:
        values = self._values[field]
        if values is None:
            return None
        value = float(values[i])
        return value if math.isfinite(value) and value > -999 else None


def read_table(path: str | os.PathLike) -> Table:
    """Read a catalogue table: FITS (DRPall's ``MANGA`` HDU if present), ECSV or CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such catalogue file")
    try:
        with warnings.catch_warnings():
            # DRPall has units astropy does not know and long string columns.
            warnings.simplefilter("ignore")
            name = path.name.lower()
            if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
                with fits.open(path) as hdus:
                    hdu = (
                        "MANGA"
                        if "MANGA" in hdus
                        else next(
                            (i for i, h in enumerate(hdus) if isinstance(h, fits.BinTableHDU)), None
                        )
                    )
                    if hdu is None:
                        raise FileFormatError(f"{path}: no table extension in this FITS file")
                    return Table.read(hdus[hdu])
            if name.endswith(".ecsv"):
                return Table.read(path, format="ascii.ecsv")
            if name.endswith(".csv"):
                return Table.read(path, format="ascii.csv")
            return Table.read(path)
    except FileFormatError:
        raise
    except Exception as exc:  # astropy raises many kinds for a bad table
        raise FileFormatError(
            f"{path}: cannot read the table ({type(exc).__name__}: {exc})"
        ) from None


@functools.lru_cache(maxsize=4)
def _cached_catalog(path: str, mtime_ns: int, size: int) -> Catalog:
    return Catalog(read_table(path), source=path)


def load_catalog(path: str | os.PathLike) -> Catalog:
    """Read a catalogue once per process (cached while the file is unchanged).

    Worker processes call this for every batch, so a 100,000-row DRPall is
    parsed once per worker, not once per galaxy.

    Parameters
    ----------
    path : path-like
        A FITS table (DRPall's ``MANGA`` HDU if present), ECSV or CSV file.

    Returns
    -------
    Catalog

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astropy.table import Table
    >>> from ifsrepr.dataset import load_catalog
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "drpall.csv"
    ...     Table({"plateifu": ["8485-1901"], "nsa_z": [0.0289]}).write(path)
    ...     catalog = load_catalog(path)
    ...     same = load_catalog(path) is catalog  # read once
    >>> catalog.lookup("8485-1901"), same
    ({'redshift': 0.0289}, True)
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError:
        raise FileFormatError(f"{path}: no such catalogue file") from None
    return _cached_catalog(str(path), stat.st_mtime_ns, stat.st_size)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if np.ma.is_masked(value):
        return ""
    return str(value).strip()
