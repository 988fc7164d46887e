"""A gas velocity field from the Hα line, so passbands can follow rotation."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from scipy import ndimage

from ..exceptions import DataModelError
from .bands import BandSums
from .grid import SPEED_OF_LIGHT_KMS
from .scratch import Scratch, thread_scratch

__all__ = ["estimate_velocity", "halpha_channels", "halpha_wavelengths", "velocity_field"]

#: Hα rest wavelength in vacuum (Å), from the DAP line table.
HALPHA = 6564.608
#: `estimate_velocity` searches this far either side of Hα (km/s) ...
HALPHA_SEARCH_KMS = 4000.0
#: ... and keeps only velocities slower than this (km/s).
MAX_GAS_SPEED_KMS = 800.0


def _halpha_moment(sums, redshift, velocity, half_width, sidebands):
    """Flux-weighted mean velocity of Hα in a window centred on ``velocity``."""
    shift = (1.0 + redshift) * (1.0 + velocity / SPEED_OF_LIGHT_KMS)
    centre = HALPHA * shift
    passband = (centre * (1 - half_width / SPEED_OF_LIGHT_KMS),
                centre * (1 + half_width / SPEED_OF_LIGHT_KMS))  # fmt: skip
    blue = (sidebands[0][0] * shift, sidebands[0][1] * shift)
    red = (sidebands[1][0] * shift, sidebands[1][1] * shift)
    line_flux, line_ivar, masked, mean_wave = sums.integrals(passband, blue, red, first_moment=True)
    moment_velocity = (mean_wave / (HALPHA * (1.0 + redshift)) - 1.0) * SPEED_OF_LIGHT_KMS
    snr = line_flux * np.sqrt(line_ivar)
    return moment_velocity, snr, masked


def estimate_velocity(
    wave: np.ndarray,
    edges: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    redshift: float,
    spatial_shape: tuple[int, int],
    *,
    min_snr: float = 5.0,
    half_width: float = 400.0,
    max_speed: float = MAX_GAS_SPEED_KMS,
    scratch: Scratch | None = None,
) -> np.ndarray:
    """Line-of-sight gas velocity per spaxel (km/s, relative to ``redshift``) from Hα.

    The Hα centroid is measured twice, the second time in a window centred
    on the first estimate, so rotation of a few hundred km/s does not push
    the line out of the window; [NII]6549 (-672 km/s) stays outside the
    ±400 km/s window. Spaxels with Hα S/N below ``min_snr`` take the mean
    velocity of good spaxels within 3 spaxels, else 0 (systemic).

    Parameters
    ----------
    wave, edges : array
        Channel centres (K,) and edges (K + 1,) of a slice around Hα.
    flux, ivar, good : array, shape (K, N)
        Spectra of the N spaxels.
    redshift : float
        Systemic redshift.
    spatial_shape : (ny, nx)
        To fill low-S/N spaxels from their neighbours.
    scratch : `~ifsrepr.extraction.scratch.Scratch`, optional
        Buffers to reuse for the running sums (see `BandSums`).

    Returns
    -------
    array, shape (ny, nx)
    """
    sidebands = ((6483.0, 6513.0), (6623.0, 6653.0))  # the DAP's Hα side-bands
    velocity = np.zeros(flux.shape[1])
    snr = np.zeros(flux.shape[1])
    sums = BandSums(
        wave, edges, flux, ivar, good, first_moment=True, scratch=scratch, scratch_prefix="velocity"
    )
    for _ in range(2):
        measured, snr, masked = _halpha_moment(sums, redshift, velocity, half_width, sidebands)
        reliable = ~masked & (snr >= min_snr) & np.isfinite(measured)
        reliable &= np.abs(measured) < max_speed
        velocity = np.where(reliable, measured, 0.0)
    field = velocity.reshape(spatial_shape)
    trusted = reliable.reshape(spatial_shape)
    if trusted.any() and not trusted.all():
        # Mean of the trusted neighbours (a normalised box filter, O(N)) for
        # the spaxels whose Hα is too faint to give a velocity of their own.
        total = ndimage.uniform_filter(np.where(trusted, field, 0.0), size=7, mode="constant")
        count = ndimage.uniform_filter(trusted.astype(float), size=7, mode="constant")
        # uniform_filter sums by running updates: where no neighbour is
        # trusted, ``count`` is round-off (1e-17), not 0, and total / count
        # would be thousands of km/s. One trusted neighbour gives 1/49.
        with np.errstate(invalid="ignore", divide="ignore"):
            neighbours = np.where(count > 0.5 / 49, total / count, 0.0)
        field = np.where(trusted, field, neighbours)
    return field


def halpha_wavelengths(redshift: float) -> tuple[float, float]:
    """Observed wavelengths (Å) within ±4000 km/s of Hα, where `estimate_velocity` looks."""
    observed = HALPHA * (1 + redshift)
    factor = HALPHA_SEARCH_KMS / SPEED_OF_LIGHT_KMS
    return observed * (1 - factor), observed * (1 + factor)


def halpha_channels(edges: np.ndarray, redshift: float, n_wave: int) -> tuple[int, int]:
    """Channels ``start:stop`` within ±4000 km/s of Hα, where `estimate_velocity` looks."""
    low, high = halpha_wavelengths(redshift)
    lo = max(np.searchsorted(edges, low) - 1, 0)
    hi = min(np.searchsorted(edges, high), n_wave)
    return int(lo), int(hi)


def velocity_field(cube, velocity, redshift: float, edges: np.ndarray, continuum=None):
    """Resolve a ``velocity`` option to a (ny, nx) array in km/s, and a label for it.

    ``'halpha'`` measures the field with `estimate_velocity`, on the spectrum
    minus ``continuum`` (a `~ifsrepr.extraction.continuum.StellarContinuum`)
    when one is given, so Hα absorption does not pull the centroid;
    ``'systemic'`` or None gives zeros; an array (or Quantity) is used as given.
    """
    ny, nx = cube.spatial_shape
    if velocity is None or (isinstance(velocity, str) and velocity == "systemic"):
        return np.zeros((ny, nx)), "systemic"
    if isinstance(velocity, str):
        if velocity != "halpha":
            raise DataModelError(
                f"velocity must be 'halpha', 'systemic', None or an array, got {velocity!r}"
            )
        lo, hi = halpha_channels(edges, redshift, cube.shape[0])
        if hi - lo < 10:
            return np.zeros((ny, nx)), "systemic (Hα outside the cube)"
        scratch = thread_scratch()
        shape = (hi - lo, ny * nx)
        buffers = tuple(
            scratch.array(f"velocity.{name}", shape, dtype)
            for name, dtype in (("flux", float), ("ivar", float), ("usable", bool))
        )
        wave, flux, ivar, usable = cube.channel_slab(lo, hi, out=buffers)
        if continuum is not None:
            flux = continuum.subtract(lo, hi, flux, usable)
        field = estimate_velocity(
            wave, edges[lo : hi + 1], flux, ivar, usable, redshift, (ny, nx), scratch=scratch
        )
        return field, "halpha"
    field = velocity.to_value(u.km / u.s) if isinstance(velocity, u.Quantity) else velocity
    field = np.broadcast_to(np.asarray(field, dtype=float), (ny, nx))
    if not np.isfinite(field).all():
        raise DataModelError(f"{cube.name}: the velocity field has non-finite values")
    return np.array(field), "given"
