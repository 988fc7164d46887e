"""Reader plugin ``manga-maps``: MaNGA DAP MAPS files -> `~ifsrepr.LineStack`.

Handles the DR15 layout (22 emission-line channels) and the DR17 layout (35).
Channel names come from the ``Cnn`` header keys of the chosen extension, never
from channel positions (the DAP changed the order between releases). The DAP
``DONOTUSE`` bit (30 of ``MANGA_DAPPIXMASK``) becomes the stack's mask.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import astropy.constants as const
import astropy.units as u
import numpy as np
from astropy.io import fits

from ..bitmask import flagged
from ..exceptions import FileFormatError
from ..lines import EmissionLine, find_line
from ..linestack import LineStack
from ..plugins import hookimpl
from ..units import parse_bunit
from ._fits import header_meta, open_fits

__all__ = ["MangaMapsReader"]

_CHANNEL_NAME = re.compile(r"^(?P<species>[A-Za-z][A-Za-z0-9]*)-(?P<wave>\d+)$")

#: Primary-header keys copied into ``meta`` (lower-cased).
_META_KEYS = (
    "PLATEIFU", "MANGAID", "OBJRA", "OBJDEC", "IFURA", "IFUDEC", "EBVGAL", "DRP3QUAL",
    "DAPQUAL", "DAPTYPE", "VERSDAP", "VERSDRP3", "EMLDB", "REFF", "ECOOPA", "ECOOELL",
    "SCINPVEL",
)  # fmt: skip


def channel_names(header: fits.Header, n_channels: int, *, filename: str = "") -> list[str]:
    """The channel names of a DAP multi-channel extension, from its ``Cn`` keys.

    The DAP writes ``C01..C35`` when there are ten or more channels and
    ``C1..C9`` otherwise; both spellings are accepted.

    Raises
    ------
    ifsrepr.FileFormatError
        If a channel has no name key, or a name is not ``SPECIES-WAVE``.
    """
    names = []
    width = 2 if n_channels >= 10 else 1
    for i in range(1, n_channels + 1):
        key = f"C{i:0{width}d}"
        value = header.get(key, header.get(f"C{i}"))
        if value is None:
            raise FileFormatError(
                f"{filename}: extension {header.get('EXTNAME', '?')} has {n_channels} channels "
                f"but no {key} key naming channel {i}"
            )
        name = str(value).strip()
        if not _CHANNEL_NAME.match(name):
            raise FileFormatError(
                f"{filename}: cannot parse channel name {key}={value!r} in "
                f"{header.get('EXTNAME', '?')} (expected e.g. 'Ha-6564')"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise FileFormatError(f"{filename}: repeated channel names in {header.get('EXTNAME')}")
    return names


def line_for_channel(name: str) -> EmissionLine:
    """The `EmissionLine` of a DAP channel name: from the DR17 table if listed there."""
    known = find_line(name)
    if known is not None:
        return known
    # A line outside the DR17 table (e.g. a custom DAP run): the name carries
    # the integer part of the vacuum wavelength, which is all we know.
    return EmissionLine(name, float(_CHANNEL_NAME.match(name)["wave"]) * u.AA)


class MangaMapsReader:
    """Read the emission-line maps of a MaNGA DAP ``MAPS`` file.

    Parameters of `read`
    --------------------
    extension : str
        ``"EMLINE_GFLUX"`` (Gaussian-fit fluxes, default) or
        ``"EMLINE_SFLUX"`` (summed fluxes in passbands).
    """

    name = "manga-maps"

    def identify(self, path: Path, header: fits.Header | None) -> bool:
        """A MaNGA file whose primary header says ``DAPFRMT = 'MAPS'``."""
        if header is None:
            return False
        if header.get("DAPFRMT", "").strip().upper() == "MAPS":
            return True
        # Older DAP versions lack DAPFRMT: fall back on the instrument and name.
        return (
            str(header.get("INSTRUME", "")).strip() == "MaNGA"
            and "DAPTYPE" in header
            and "-MAPS-" in Path(path).name
        )

    def read(self, path: str | os.PathLike, *, extension: str = "EMLINE_GFLUX") -> LineStack:
        """Read the emission-line maps of ``extension`` (with its IVAR and MASK)."""
        path = Path(path)
        extension = extension.upper()
        with open_fits(path) as hdus:
            if extension not in hdus:
                raise FileFormatError(
                    f"{path}: no {extension} extension; this does not look like a complete "
                    "DAP MAPS file"
                )
            data_hdu = hdus[extension]
            for companion in (f"{extension}_IVAR", f"{extension}_MASK"):
                if companion not in hdus:
                    raise FileFormatError(f"{path}: {extension} has no {companion} extension")
            flux = np.asarray(data_hdu.data, dtype=np.float32)
            if flux.ndim != 3:
                raise FileFormatError(
                    f"{path}: {extension} should be (channels, y, x), got shape {flux.shape}"
                )
            names = channel_names(data_hdu.header, flux.shape[0], filename=str(path))
            ivar = np.asarray(hdus[f"{extension}_IVAR"].data, dtype=np.float32)
            bits = np.asarray(hdus[f"{extension}_MASK"].data)
            if ivar.shape != flux.shape or bits.shape != flux.shape:
                raise FileFormatError(f"{path}: {extension}, its IVAR and MASK differ in shape")
            unit = parse_bunit(data_hdu.header.get("BUNIT", ""), filename=str(path))
            primary = hdus[0].header
            wcs_header = data_hdu.header

        mask = flagged(bits, "MANGA_DAPPIXMASK", "DONOTUSE")
        lines = [line_for_channel(name) for name in names]
        order = np.argsort([line.rest_wavelength.value for line in lines], kind="stable")
        meta: dict[str, Any] = header_meta(primary, _META_KEYS)
        meta["extension"] = extension
        redshift = None
        if "SCINPVEL" in primary:
            # The DAP's input guess of cz (km/s); DRPall's nsa_z is the survey value.
            redshift = float(primary["SCINPVEL"]) / const.c.to_value(u.km / u.s)
        return LineStack(
            [lines[i] for i in order],
            flux[order],
            unit,
            ivar[order],
            mask[order],
            wcs=wcs_header,
            redshift=redshift,
            meta=meta,
        )


@hookimpl
def ifsrepr_register_readers(register):
    """Register the MaNGA DAP MAPS reader."""
    register(MangaMapsReader())
