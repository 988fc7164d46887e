"""`LineStack`: a galaxy as an ordered stack of emission-line maps."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.masked import Masked
from astropy.wcs import WCS

from ._atomic import atomic_path
from ._wcs import celestial_wcs, check_wcs_shape
from .exceptions import DataModelError, FileFormatError, UnknownNameError
from .lines import EmissionLine, check_unique_names, find_line
from .units import parse_bunit, unit_to_string

__all__ = ["LineStack"]

#: Written as FORMAT in the primary header so `LineStack.read` can tell its own files.
FILE_FORMAT = "IFSREPR-LINESTACK"
FILE_VERSION = 1


class LineStack:
    """Emission-line maps of one galaxy: flux, inverse variance and mask per line.

    The first axis runs over ``lines``, which are normally in wavelength order
    (the encoder reads them as a sequence).

    Parameters
    ----------
    lines : sequence of `EmissionLine`
        One per map, with unique names.
    flux : array
        Shaped ``(n_lines, ny, nx)``, in ``unit``.
    unit : `~astropy.units.UnitBase` or str
        Unit of ``flux``; ``ivar`` is in its inverse square.
    ivar : array, optional
        Inverse variance, same shape. Defaults to ones.
    mask : array of bool, optional
        True where a value must not be used. Non-finite values are always
        added to the mask.
    wcs : `~astropy.wcs.WCS` or `~astropy.io.fits.Header`, optional
        Celestial WCS of the maps.
    redshift : float, optional
        The galaxy's redshift.
    meta : mapping, optional
        JSON-serialisable metadata (plate-IFU, source file, extraction settings...).

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr import LineStack
    >>> from ifsrepr.lines import resolve_lines
    >>> lines = resolve_lines(["Hb-4862", "Ha-6564"])
    >>> stack = LineStack(lines, np.ones((2, 3, 3)), unit="1e-17 erg/(s cm2)")
    >>> stack.line_names
    ['Hb-4862', 'Ha-6564']
    >>> stack["Ha-6564"].shape
    (3, 3)
    """

    def __init__(
        self,
        lines: Sequence[EmissionLine],
        flux: np.ndarray,
        unit: u.UnitBase | str = u.dimensionless_unscaled,
        ivar: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        wcs: WCS | fits.Header | None = None,
        redshift: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        lines = tuple(lines)
        for line in lines:
            if not isinstance(line, EmissionLine):
                raise DataModelError(f"lines must be EmissionLine objects, got {line!r}")
        check_unique_names(lines)
        if isinstance(flux, u.Quantity):
            raise DataModelError("pass flux as a plain array and its unit as unit=")
        flux = np.asarray(flux)
        if flux.ndim != 3 or flux.shape[0] != len(lines):
            raise DataModelError(
                f"flux must be shaped (n_lines={len(lines)}, ny, nx), got {flux.shape}"
            )
        if flux.dtype.kind not in "fiu":
            raise DataModelError(f"flux must be numeric, got dtype {flux.dtype}")
        if ivar is None:
            ivar = np.ones(flux.shape, dtype=flux.dtype)
        ivar = np.asarray(ivar)
        if ivar.shape != flux.shape:
            raise DataModelError(f"ivar shape {ivar.shape} != flux shape {flux.shape}")
        if mask is None:
            mask = np.zeros(flux.shape, dtype=bool)
        mask = np.asarray(mask)
        if mask.shape != flux.shape:
            raise DataModelError(f"mask shape {mask.shape} != flux shape {flux.shape}")
        if mask.dtype != bool:
            raise DataModelError(f"mask must be boolean (True = do not use), got {mask.dtype}")
        bad_values = ~np.isfinite(flux) | ~np.isfinite(ivar)
        if bad_values.any():
            mask = mask | bad_values
        self.lines: tuple[EmissionLine, ...] = lines
        self.flux = flux
        self.ivar = ivar
        self.mask = mask
        self.unit = parse_bunit(unit) if isinstance(unit, str) else u.Unit(unit)
        self.wcs = celestial_wcs(wcs, what="LineStack wcs")
        check_wcs_shape(self.wcs, flux.shape[1:], "LineStack")
        self.redshift = None if redshift is None else float(redshift)
        self.meta: dict[str, Any] = dict(meta or {})

    # -- description -------------------------------------------------------------
    @property
    def line_names(self) -> list[str]:
        """Names of the lines, in stack order."""
        return [line.name for line in self.lines]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_lines, ny, nx)``."""
        return self.flux.shape

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.flux.shape[1:]

    @property
    def name(self) -> str:
        """A label for messages: the plate-IFU, the object name, or the file."""
        for key in ("plateifu", "name", "filename"):
            if self.meta.get(key):
                return str(self.meta[key])
        return "unnamed stack"

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        return (
            f"<LineStack {self.name}: {len(self)} lines x {self.shape[1]} x {self.shape[2]} "
            f"spaxels, unit={self.unit}>"
        )

    def line_table(self) -> Table:
        """One row per line: name, rest wavelength, and map statistics.

        Returns
        -------
        astropy.table.Table
            Columns ``name``, ``rest_wavelength``, ``n_good`` (unmasked
            spaxels), ``median_flux`` and ``median_snr`` over unmasked spaxels.
        """
        good = ~self.mask
        medians, snrs = [], []
        for i in range(len(self)):
            values = self.flux[i][good[i]]
            snr = values * np.sqrt(self.ivar[i][good[i]])
            medians.append(np.median(values) if values.size else np.nan)
            snrs.append(np.median(snr) if snr.size else np.nan)
        table = Table()
        table["name"] = self.line_names
        table["rest_wavelength"] = u.Quantity([line.rest_wavelength for line in self.lines])
        table["n_good"] = good.reshape(len(self), -1).sum(axis=1)
        table["median_flux"] = u.Quantity(medians, self.unit)
        table["median_snr"] = snrs
        table["rest_wavelength"].format = ".3f"
        table["median_flux"].format = ".4g"
        table["median_snr"].format = ".1f"
        table.meta["name"] = self.name
        return table

    # -- selection ---------------------------------------------------------------
    def index(self, name: str) -> int:
        """Position of a line in the stack.

        Accepts the exact name (``"Ha-6564"``), the same ignoring case and with
        ``_`` for ``-`` (Marvin's ``"ha_6564"``), or a species (``"Ha"``) when
        only one line of that species is in the stack.

        Raises
        ------
        ifsrepr.UnknownNameError
            If no line, or more than one, matches.
        """
        names = self.line_names
        if name in names:
            return names.index(name)
        key = name.lower().replace("_", "-")
        matches = [i for i, n in enumerate(names) if n.lower() == key]
        if not matches:
            matches = [i for i, line in enumerate(self.lines) if line.species.lower() == key]
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(names[i] for i in matches)
            raise UnknownNameError(f"{name!r} is ambiguous in {self.name}: {options}")
        raise UnknownNameError(f"{self.name} has no line {name!r}; lines: {', '.join(names)}")

    def __getitem__(self, name: str) -> u.Quantity:
        """The map of one line as a masked `~astropy.units.Quantity`."""
        if not isinstance(name, str):
            raise TypeError("index a LineStack by line name; use select() for several lines")
        i = self.index(name)
        return Masked(u.Quantity(self.flux[i], self.unit, copy=False), mask=self.mask[i])

    def select(self, names: Iterable[str | EmissionLine], *, missing: str = "raise") -> LineStack:
        """A new stack holding the named lines, in the order given.

        Parameters
        ----------
        names : iterable of str or `EmissionLine`
            Lines to keep (see `index` for the accepted spellings).
        missing : {'raise', 'mask'}
            What to do with a requested line this stack lacks: raise, or add it
            as a fully masked map (zero flux and ivar) so stacks from sources
            with different line lists share one layout. Missing lines are then
            listed in ``meta['missing_lines']``.

        Returns
        -------
        LineStack
        """
        if missing not in ("raise", "mask"):
            raise ValueError("missing must be 'raise' or 'mask'")
        wanted = list(names)
        rows, lines, absent = [], [], []
        for item in wanted:
            label = item.name if isinstance(item, EmissionLine) else item
            try:
                i = self.index(label)
            except UnknownNameError:
                # A missing line given by name is masked too if the DAP table knows it
                # (so select(MANGA19, missing="mask") works like the line set does).
                line = item if isinstance(item, EmissionLine) else find_line(item)
                if missing == "raise" or line is None:
                    raise
                rows.append(None)
                lines.append(line)
                absent.append(line.name)
                continue
            rows.append(i)
            lines.append(self.lines[i])
        ny, nx = self.spatial_shape
        flux = np.zeros((len(rows), ny, nx), dtype=self.flux.dtype)
        ivar = np.zeros((len(rows), ny, nx), dtype=self.ivar.dtype)
        mask = np.ones((len(rows), ny, nx), dtype=bool)
        for out, i in enumerate(rows):
            if i is not None:
                flux[out], ivar[out], mask[out] = self.flux[i], self.ivar[i], self.mask[i]
        meta = dict(self.meta)
        if absent:
            meta["missing_lines"] = sorted(set(meta.get("missing_lines", [])) | set(absent))
        return LineStack(lines, flux, self.unit, ivar, mask, self.wcs, self.redshift, meta)

    # -- FITS round trip ---------------------------------------------------------
    def write(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the stack to a FITS file that `LineStack.read` restores exactly.

        HDUs: PRIMARY (format keys, redshift), FLUX, IVAR (same shape), MASK
        (uint8), LINES (name, rest wavelength, side-bands) and META (JSON
        values). The file is written to a temporary name and renamed, so a
        crash never leaves a half-written file.

        Parameters
        ----------
        path : path-like
            Output file; ``.fits`` or ``.fits.gz``.
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        try:
            meta_json = {key: json.dumps(value) for key, value in self.meta.items()}
        except TypeError as exc:
            raise DataModelError(f"{self.name}: meta must be JSON-serialisable ({exc})") from None

        primary = fits.PrimaryHDU()
        primary.header["FORMAT"] = (FILE_FORMAT, "ifsrepr emission-line stack")
        primary.header["FMTVERS"] = (FILE_VERSION, "format version")
        primary.header["NLINES"] = len(self)
        if self.redshift is not None:  # FITS headers cannot hold NaN: absent = unknown
            primary.header["REDSHIFT"] = (self.redshift, "galaxy redshift")
        image_header = self.wcs.to_header() if self.wcs is not None else fits.Header()
        for i, line in enumerate(self.lines, start=1):
            image_header[f"L{i:03d}"] = (line.name, f"line of plane {i}")
        flux_header = image_header.copy()
        flux_header["BUNIT"] = unit_to_string(self.unit)
        ivar_header = image_header.copy()
        ivar_header["BUNIT"] = unit_to_string(self.unit**-2)

        line_table = Table()
        line_table["name"] = self.line_names
        line_table["rest_wavelength"] = [line.rest_wavelength.to_value(u.AA) for line in self.lines]
        line_table["rest_wavelength"].unit = u.AA
        nan2 = (np.nan, np.nan)
        line_table["blueside"] = [line.blueside or nan2 for line in self.lines]
        line_table["redside"] = [line.redside or nan2 for line in self.lines]
        meta_table = Table(
            {"key": list(meta_json) or [""], "json": list(meta_json.values()) or ["null"]}
        )
        meta_table.meta["EMPTY"] = not meta_json

        hdus = fits.HDUList([
            primary,
            fits.ImageHDU(self.flux, flux_header, name="FLUX"),
            fits.ImageHDU(self.ivar, ivar_header, name="IVAR"),
            fits.ImageHDU(self.mask.astype(np.uint8), image_header, name="MASK"),
            fits.table_to_hdu(line_table),
            fits.table_to_hdu(meta_table),
        ])  # fmt: skip
        hdus[4].name = "LINES"
        hdus[5].name = "META"
        _atomic_writeto(hdus, path)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> LineStack:
        """Read a file written by `LineStack.write`.

        To read survey files (DAP MAPS, cubes), use `ifsrepr.read`.

        Raises
        ------
        ifsrepr.FileFormatError
            If the file is missing or was not written by `LineStack.write`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file")
        try:
            with fits.open(path) as hdus:
                header = hdus[0].header
                if header.get("FORMAT") != FILE_FORMAT:
                    raise FileFormatError(f"{path}: not an ifsrepr line-stack file")
                if header.get("FMTVERS", 0) > FILE_VERSION:
                    raise FileFormatError(
                        f"{path}: written by a newer ifsrepr (format {header['FMTVERS']})"
                    )
                flux_hdu = hdus["FLUX"]
                # FITS is big-endian; hand out native arrays (torch refuses the others).
                flux = _native(flux_hdu.data)
                ivar = _native(hdus["IVAR"].data)
                mask = hdus["MASK"].data.astype(bool)
                unit = parse_bunit(flux_hdu.header["BUNIT"], filename=str(path))
                line_rows = Table.read(hdus["LINES"])
                meta_rows = Table.read(hdus["META"])
                wcs = celestial_wcs(flux_hdu.header) if flux_hdu.header.get("CTYPE1") else None
                redshift = header.get("REDSHIFT")
        except FileFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise FileFormatError(f"{path}: cannot read line stack ({exc})") from None
        lines = [
            EmissionLine(
                str(row["name"]),
                float(row["rest_wavelength"]) * u.AA,
                blueside=_optional_band(row["blueside"]),
                redside=_optional_band(row["redside"]),
            )
            for row in line_rows
        ]
        meta = {}
        if not meta_rows.meta.get("EMPTY", False):
            meta = {str(row["key"]): json.loads(str(row["json"])) for row in meta_rows}
        return cls(
            lines,
            flux,
            unit,
            ivar,
            mask,
            wcs,
            None if redshift is None else float(redshift),
            meta,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineStack):
            return NotImplemented
        same_wcs = (self.wcs is None and other.wcs is None) or (
            self.wcs is not None
            and other.wcs is not None
            and self.wcs.to_header() == other.wcs.to_header()
        )
        return (
            self.lines == other.lines
            and self.unit == other.unit
            and self.redshift == other.redshift
            and self.meta == other.meta
            and np.array_equal(self.flux, other.flux, equal_nan=True)
            and np.array_equal(self.ivar, other.ivar, equal_nan=True)
            and np.array_equal(self.mask, other.mask)
            and same_wcs
        )

    __hash__ = None  # mutable container of arrays


def _native(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=array.dtype.newbyteorder("="))


def _optional_band(values: np.ndarray) -> tuple[float, float] | None:
    values = np.asarray(values, dtype=float)
    return None if np.isnan(values).any() else (float(values[0]), float(values[1]))


def _atomic_writeto(hdus: fits.HDUList, path: Path) -> None:
    """Write an HDUList to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as temporary, warnings.catch_warnings():
        # Long line names trigger astropy's HIERARCH/CONTINUE notes.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdus.writeto(temporary, overwrite=True, checksum=True)
