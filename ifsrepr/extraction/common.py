"""What every extractor needs: the redshift, which lines the cube covers, the output stack."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

from .._ranges import merge_ranges
from ..cube import IFSCube
from ..exceptions import DataModelError
from ..extinction import attenuation
from ..lines import EmissionLine
from ..linestack import LineStack

__all__ = [
    "LineCoverageWarning",
    "build_stack",
    "covered_lines",
    "galactic_ebv",
    "merge_ranges",
    "resolve_redshift",
]


class LineCoverageWarning(UserWarning):
    """Some requested lines fall outside the cube's wavelength range; they are masked."""


def resolve_redshift(cube: IFSCube, redshift: float | None) -> float:
    """The redshift to use: the caller's, else the cube's, else a clear error."""
    if redshift is None:
        redshift = cube.redshift
    if redshift is None:
        raise DataModelError(
            f"{cube.name}: the cube has no redshift (MaNGA cube headers carry none); pass "
            "redshift=..., read the cube with ifsrepr.read(path, redshift=z), or take it "
            "from a catalogue (DRPall nsa_z)"
        )
    redshift = float(redshift)
    if not np.isfinite(redshift) or redshift <= -1:
        raise DataModelError(f"{cube.name}: invalid redshift {redshift}")
    return redshift


def covered_lines(
    cube: IFSCube,
    lines: Sequence[EmissionLine],
    redshift: float,
    margin_kms: float,
) -> np.ndarray:
    """Boolean per line: whether the line and ``margin_kms`` either side lie on the grid.

    Warns `LineCoverageWarning` naming the lines that do not.
    """
    wave = cube.spectral_axis.to_value(u.AA)
    lo, hi = wave.min(), wave.max()
    factor = margin_kms / 299792.458
    inside = np.array(
        [
            lo <= line.rest_wavelength.to_value(u.AA) * (1 + redshift) * (1 - factor)
            and line.rest_wavelength.to_value(u.AA) * (1 + redshift) * (1 + factor) <= hi
            for line in lines
        ]
    )
    if not inside.all():
        names = ", ".join(line.name for line, ok in zip(lines, inside, strict=True) if not ok)
        warnings.warn(
            f"{cube.name}: at z={redshift:.4f} these lines fall outside the cube's "
            f"{lo:.0f}-{hi:.0f} Å range and are masked: {names}",
            LineCoverageWarning,
            stacklevel=3,
        )
    return inside


def galactic_ebv(cube: IFSCube, galactic_extinction: str | float | None) -> float:
    """E(B-V) of the Milky Way foreground to correct for (0 for none).

    ``"auto"`` takes the cube's ``ebvgal`` (MaNGA headers carry ``EBVGAL``),
    else no correction; a number is used as given; None means no correction.
    """
    if galactic_extinction is None:
        return 0.0
    if isinstance(galactic_extinction, str):
        if galactic_extinction != "auto":
            raise DataModelError(
                f"galactic_extinction must be 'auto', a number or None, got {galactic_extinction!r}"
            )
        value = cube.meta.get("ebvgal")
        return float(value) if value is not None and np.isfinite(float(value)) else 0.0
    value = float(galactic_extinction)
    if not np.isfinite(value) or value < 0:
        raise DataModelError(f"galactic_extinction must be a non-negative E(B-V), got {value}")
    return value


def build_stack(
    cube: IFSCube,
    lines: Sequence[EmissionLine],
    flux: np.ndarray,
    ivar: np.ndarray,
    mask: np.ndarray,
    redshift: float,
    settings: dict[str, Any],
    *,
    ebv_galactic: float = 0.0,
    stellar: Any = None,
) -> LineStack:
    """Wrap extracted arrays as a `LineStack` in integrated-flux units.

    ``flux``, ``ivar`` and ``mask`` are ``(n_lines, ny * nx)`` (one column per
    spaxel, as the extractors work) or already ``(n_lines, ny, nx)``.
    ``stellar`` is the continuum fit used, if any: its settings are recorded
    in ``meta['extraction']`` (``continuum='linear'`` without one).

    With ``ebv_galactic > 0`` the fluxes are corrected for Milky Way
    foreground extinction with the O'Donnell (1994) curve (R_V = 3.1) at each
    line's observed wavelength, as the MaNGA DAP corrects its MAPS; without
    it, fluxes from cubes and from DAP maps would differ by up to 30 %.
    """
    shape = (len(lines), *cube.spatial_shape)
    flux, ivar, mask = flux.reshape(shape), ivar.reshape(shape), mask.reshape(shape)
    settings = dict(
        settings, **(stellar.settings if stellar is not None else {"continuum": "linear"})
    )
    if ebv_galactic > 0:
        observed = np.array([line.rest_wavelength.to_value(u.AA) for line in lines])
        factor = 1.0 / attenuation(observed * (1 + redshift), ebv_galactic, law="odonnell94")
        flux = flux * factor[:, None, None]
        ivar = ivar / factor[:, None, None] ** 2
        settings = dict(settings, galactic_ebv=ebv_galactic, galactic_law="ODonnell94 R_V=3.1")
    # Flux density per Angstrom integrated over Angstrom: astropy cancels the
    # wavelength units, leaving e.g. MaNGA's 1e-17 erg/s/cm2/spaxel.
    unit = cube.unit * u.AA
    meta = dict(cube.meta)
    meta["extraction"] = settings
    return LineStack(
        lines,
        flux.astype(np.float32),
        unit,
        ivar.astype(np.float32),
        mask,
        wcs=cube.wcs,
        redshift=redshift,
        meta=meta,
    )
