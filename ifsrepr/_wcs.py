"""Small helpers for the celestial WCS carried by cubes and line stacks."""

from __future__ import annotations

import warnings

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .exceptions import DataModelError


def celestial_wcs(wcs: WCS | fits.Header | None, *, what: str = "wcs") -> WCS | None:
    """Return the 2-D celestial part of ``wcs`` (a WCS or a header), or None."""
    if wcs is None:
        return None
    if isinstance(wcs, fits.Header):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(wcs)
    if not isinstance(wcs, WCS):
        raise DataModelError(f"{what} must be an astropy.wcs.WCS or a FITS header, got {type(wcs)}")
    if wcs.naxis == 2 and wcs.has_celestial:
        return wcs
    if not wcs.has_celestial:
        raise DataModelError(f"{what} has no celestial axes")
    return wcs.celestial


def check_wcs_shape(wcs: WCS | None, spatial_shape: tuple[int, int], what: str) -> None:
    """Raise if a WCS carries an array shape that disagrees with the data."""
    if wcs is None or wcs.array_shape is None:
        return
    if tuple(wcs.array_shape) != tuple(spatial_shape):
        raise DataModelError(
            f"{what}: WCS describes a {wcs.array_shape} image but the data are {spatial_shape}"
        )
