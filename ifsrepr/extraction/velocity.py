"""A gas velocity field from the Hα line, so passbands can follow rotation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .bands import band_integrals
from .grid import SPEED_OF_LIGHT_KMS

__all__ = ["estimate_velocity"]

#: Hα rest wavelength in vacuum (Å), from the DAP line table.
HALPHA = 6564.608


def _halpha_moment(wave, edges, flux, ivar, good, redshift, velocity, half_width, sidebands):
    """Flux-weighted mean velocity of Hα in a window centred on ``velocity``."""
    shift = (1.0 + redshift) * (1.0 + velocity / SPEED_OF_LIGHT_KMS)
    centre = HALPHA * shift
    passband = (centre * (1 - half_width / SPEED_OF_LIGHT_KMS),
                centre * (1 + half_width / SPEED_OF_LIGHT_KMS))  # fmt: skip
    blue = (sidebands[0][0] * shift, sidebands[0][1] * shift)
    red = (sidebands[1][0] * shift, sidebands[1][1] * shift)
    line_flux, line_ivar, masked, mean_wave = band_integrals(
        wave, edges, flux, ivar, good, passband, blue, red, first_moment=True
    )
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
    max_speed: float = 800.0,
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

    Returns
    -------
    array, shape (ny, nx)
    """
    sidebands = ((6483.0, 6513.0), (6623.0, 6653.0))  # the DAP's Hα side-bands
    velocity = np.zeros(flux.shape[1])
    snr = np.zeros(flux.shape[1])
    for _ in range(2):
        measured, snr, masked = _halpha_moment(
            wave, edges, flux, ivar, good, redshift, velocity, half_width, sidebands
        )
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
        with np.errstate(invalid="ignore", divide="ignore"):
            neighbours = np.where(count > 0, total / count, 0.0)
        field = np.where(trusted, field, neighbours)
    return field
