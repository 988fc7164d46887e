"""Vectorised band integrals: the linear algebra of the ``window`` extractor.

For every spaxel a line flux is a *linear* combination of the channel fluxes,
``flux = sum_k c_k F_k``: the passband integral minus a straight-line
continuum through the mean flux of a blue and a red side-band. Building the
coefficients ``c_k`` explicitly (one column per spaxel) makes the inverse
variance exact, ``var = sum_k c_k**2 / ivar_k``, and lets passbands follow a
velocity field, since each spaxel gets its own bands.

Channels only partly inside a band count with the fraction of their width
that is inside it, so fluxes do not jump as bands slide across the grid.
"""

from __future__ import annotations

import numpy as np

__all__ = ["overlap_fraction", "band_integrals"]


def overlap_fraction(lo_edges: np.ndarray, hi_edges: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Fraction of each channel inside ``[lo, hi]``.

    Parameters
    ----------
    lo_edges, hi_edges : array, shape (K, 1)
        Channel edges.
    lo, hi : array, shape (N,)
        Band limits per spaxel.

    Returns
    -------
    array, shape (K, N)
    """
    inside = np.minimum(hi_edges, hi[None, :]) - np.maximum(lo_edges, lo[None, :])
    return np.clip(inside, 0.0, None) / (hi_edges - lo_edges)


def band_integrals(
    wave: np.ndarray,
    edges: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    passband: tuple[np.ndarray, np.ndarray],
    blueside: tuple[np.ndarray, np.ndarray],
    redside: tuple[np.ndarray, np.ndarray],
    *,
    first_moment: bool = False,
):
    """Continuum-subtracted passband fluxes, their inverse variance, and a mask.

    Parameters
    ----------
    wave : array, shape (K,)
        Channel centres of the slice of the spectrum that holds every band.
    edges : array, shape (K + 1,)
        Channel edges of that slice.
    flux, ivar : array, shape (K, N)
        Flux density and inverse variance, one column per spaxel.
    good : bool array, shape (K, N)
        Channels that may be used.
    passband, blueside, redside : pair of arrays, shape (N,)
        Lower and upper limits of each band for each spaxel (observed frame).

    Returns
    -------
    flux : array, shape (N,)
        Integrated line flux (flux-density unit times wavelength unit).
    ivar : array, shape (N,)
        Its exact inverse variance (0 where undefined).
    masked : bool array, shape (N,)
        True where a side-band has no good channel, a passband channel is
        bad, or the bands fall off the slice.
    mean_wavelength : array, shape (N,)
        Only with ``first_moment=True``: the flux-weighted mean wavelength of
        the continuum-subtracted line in the passband.
    """
    lo_e, hi_e = edges[:-1, None], edges[1:, None]
    width = hi_e - lo_e
    usable = good & (ivar > 0) & np.isfinite(flux)
    values = np.where(usable, flux, 0.0)

    def side_weights(band):
        weight = overlap_fraction(lo_e, hi_e, *band) * width * usable
        total = weight.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = weight / total
            centre = (normalised * wave[:, None]).sum(axis=0)
        return normalised, centre, total > 0

    blue, blue_centre, blue_ok = side_weights(blueside)
    red, red_centre, red_ok = side_weights(redside)

    inside = overlap_fraction(lo_e, hi_e, *passband)
    covered = (inside * width).sum(axis=0)
    passband_width = passband[1] - passband[0]
    pass_weight = inside * width
    with np.errstate(invalid="ignore", divide="ignore"):
        position = (wave[:, None] - blue_centre) / (red_centre - blue_centre)
    # Integral of the straight-line continuum over the passband, split into
    # the parts proportional to the blue and the red side-band means.
    blue_share = (pass_weight * (1.0 - position)).sum(axis=0)
    red_share = (pass_weight * position).sum(axis=0)
    coefficients = pass_weight - blue_share * blue - red_share * red
    coefficients = np.nan_to_num(coefficients, nan=0.0)

    line_flux = (coefficients * values).sum(axis=0)
    if first_moment:
        # The same construction for the integral of lambda * (F - continuum).
        moment_weight = pass_weight * wave[:, None]
        moment_coefficients = (
            moment_weight
            - (moment_weight * (1.0 - position)).sum(axis=0) * blue
            - (moment_weight * position).sum(axis=0) * red
        )
        moment = (np.nan_to_num(moment_coefficients, nan=0.0) * values).sum(axis=0)
    needed = coefficients != 0
    measured = needed & (ivar > 0)
    variance_terms = np.divide(
        coefficients**2, ivar, out=np.zeros_like(coefficients), where=measured
    )
    # A channel the flux depends on but whose variance is unknown: no ivar.
    variance = np.where((needed & ~measured).any(axis=0), np.inf, variance_terms.sum(axis=0))

    bad_in_passband = ((inside > 0) & ~usable).any(axis=0)
    masked = (
        ~blue_ok
        | ~red_ok
        | bad_in_passband
        | ~np.isclose(covered, passband_width, rtol=1e-6)  # band ran off the slice
        | ~np.isfinite(variance)
        | (variance <= 0)
    )
    with np.errstate(divide="ignore"):
        line_ivar = np.where(masked, 0.0, 1.0 / variance)
    result = (np.where(masked, 0.0, line_flux), line_ivar, masked)
    if first_moment:
        with np.errstate(invalid="ignore", divide="ignore"):
            result += (moment / line_flux,)
    return result
