"""Line-extractor plugin ``narrowband``: line maps as a narrow-band filter would see them.

For each line the flux is the integral of the spectrum over a top-hat
passband of fixed **rest-frame width in Angstrom**, centred on the line at
the galaxy's systemic redshift, minus a straight continuum through the
*median* flux densities of a blue and a red side-band. It is what
synthetic narrow-band imaging measures (compare Hα maps with narrow-band
surveys), and it differs from the built-in extractors on purpose:

* the passband does not follow the velocity field: a line shifted by
  rotation towards a band edge loses part of its flux, exactly as through a
  physical filter, so pick ``half_width`` larger than the rotation plus the
  line width (the default ±7 Å is ±320 km/s at Hα);
* the side-band continuum is a median, robust to a stray sky residual, a
  cosmic ray or a weak line in a side-band;
* no stellar continuum is fitted, so it is fast (a full MaNGA cube in a
  fraction of a second), but Balmer lines come out net of the stellar
  absorption under them (Hβ 10-20 % low on the mock MaNGA survey).

The variance is propagated from the cube's inverse variance: exactly for the
passband integral, and for each side-band median with the large-sample
variance of a median of Gaussian values, ``(π/2) σ² / n``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

import ifsrepr
from ifsrepr.extraction import LineCoverageWarning
from ifsrepr.extraction.common import build_stack, covered_lines, galactic_ebv, resolve_redshift
from ifsrepr.extraction.grid import channel_edges

__all__ = ["NarrowbandExtractor", "DEFAULT_SIDEBANDS"]

#: Rest-frame side-bands (Å from the line centre) for lines without DAP side-bands.
DEFAULT_SIDEBANDS = ((-60.0, -30.0), (30.0, 60.0))
#: A side-band needs this many usable channels for its median.
MIN_SIDEBAND_CHANNELS = 3


def _overlap(edges: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Width in Å of each channel (between consecutive ``edges``) that lies inside ``[lo, hi]``."""
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)


def _median_continuum(
    flux: np.ndarray, ivar: np.ndarray, usable: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median flux density of a side-band per spaxel, its variance, and whether it exists.

    Parameters
    ----------
    flux, ivar : array, shape (K, N)
        The side-band's channels, one column per spaxel.
    usable : bool array, shape (K, N)
        Channels that may be used.

    Returns
    -------
    median, variance : array, shape (N,)
        NaN where the side-band has too few usable channels.
    ok : bool array, shape (N,)
    """
    count = usable.sum(axis=0)
    ok = count >= MIN_SIDEBAND_CHANNELS
    values = np.where(usable, flux, np.nan)
    variance = np.where(usable, 1.0 / np.where(usable, ivar, 1.0), np.nan)
    with warnings.catch_warnings():
        # Spaxels without usable channels give all-NaN columns; they are masked below.
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(values, axis=0)
        mean_variance = np.nanmean(variance, axis=0)
    median_variance = 0.5 * np.pi * mean_variance / np.maximum(count, 1)
    return np.where(ok, median, np.nan), np.where(ok, median_variance, np.nan), ok


class NarrowbandExtractor:
    """Fixed-width passband fluxes minus a median side-band continuum.

    Register it through the ``ifsrepr_register_line_extractors`` hook; then
    ``ifsrepr.extract_lines(cube, method="narrowband", ...)`` calls `extract`.
    See the module docstring for what it measures.
    """

    name = "narrowband"
    description = "fixed rest-frame-width passband minus a median side-band continuum"

    def extract(
        self,
        cube: ifsrepr.IFSCube,
        lines: Sequence[ifsrepr.EmissionLine],
        redshift: float | None = None,
        *,
        half_width: float | u.Quantity = 7.0,
        sidebands: str = "dap",
        galactic_extinction: str | float | None = "auto",
    ) -> ifsrepr.LineStack:
        """Measure ``lines`` in every spaxel of ``cube``.

        Parameters
        ----------
        cube : ifsrepr.IFSCube
            The galaxy's cube, with increasing wavelengths.
        lines : sequence of ifsrepr.EmissionLine
            The lines, in the order wanted in the stack (``extract_lines``
            resolves names and line-set names before calling this).
        redshift : float, optional
            Systemic redshift; None takes the cube's own.
        half_width : float or Quantity
            Half-width of the passband in rest-frame Angstrom (default 7, so
            the [SII] 6718/6732 passbands do not overlap).
        sidebands : {'dap', 'fixed'}
            ``'dap'`` uses each line's side-bands from the MaNGA DAP line
            table when it has them (they avoid neighbouring lines), and
            `DEFAULT_SIDEBANDS` otherwise; ``'fixed'`` always uses
            `DEFAULT_SIDEBANDS`.
        galactic_extinction : 'auto', float or None
            Correct for Milky Way foreground extinction as the built-in
            extractors do: ``'auto'`` uses the cube's ``ebvgal``, a number is
            an E(B-V), None skips the correction.

        Returns
        -------
        ifsrepr.LineStack
            Integrated fluxes (the cube's flux-density unit times Å), with
            inverse variance and mask, and the settings in
            ``meta['extraction']``.

        Raises
        ------
        ifsrepr.DataModelError
            For a cube without a redshift, decreasing wavelengths, or bad
            options.
        """
        redshift = resolve_redshift(cube, redshift)
        ebv_galactic = galactic_ebv(cube, galactic_extinction)
        if isinstance(half_width, u.Quantity):
            half_width = half_width.to_value(u.AA)
        half_width = float(half_width)
        if not half_width > 0:
            raise ifsrepr.DataModelError(f"half_width must be positive, got {half_width}")
        if sidebands not in ("dap", "fixed"):
            raise ifsrepr.DataModelError(f"sidebands must be 'dap' or 'fixed', got {sidebands!r}")
        wave = cube.spectral_axis.to_value(u.AA)
        if wave[0] > wave[-1]:
            raise ifsrepr.DataModelError(f"{cube.name}: the cube needs increasing wavelengths")
        edges = channel_edges(wave)
        scale = 1.0 + redshift

        # Every line needs its passband and both side-bands on the grid.
        reach = [
            max(half_width, *np.abs(self._sidebands(line, sidebands)).ravel()) for line in lines
        ]
        inside = covered_lines(cube, lines, redshift, 0.0)
        n_spaxels = cube.spatial_shape[0] * cube.spatial_shape[1]
        flux = np.zeros((len(lines), n_spaxels))
        ivar = np.zeros((len(lines), n_spaxels))
        mask = np.ones((len(lines), n_spaxels), dtype=bool)
        for i, line in enumerate(lines):
            centre = line.rest_wavelength.to_value(u.AA)
            lo, hi = (centre - reach[i]) * scale, (centre + reach[i]) * scale
            if not inside[i]:
                continue  # masked; covered_lines has warned
            if lo < edges[0] or hi > edges[-1]:
                warnings.warn(
                    f"{cube.name}: at z={redshift:.4f} the side-bands of {line.name} run off "
                    f"the cube's {edges[0]:.0f}-{edges[-1]:.0f} Å range; it is masked",
                    LineCoverageWarning,
                    stacklevel=3,
                )
                continue
            start = int(np.searchsorted(edges, lo, side="right")) - 1
            stop = int(np.searchsorted(edges, hi, side="left"))
            slab_wave, slab_flux, slab_ivar, usable = cube.channel_slab(start, stop)
            slab_edges = edges[start : stop + 1]

            (blue_lo, blue_hi), (red_lo, red_hi) = self._sidebands(line, sidebands)
            continuum_parts = []
            for offset_lo, offset_hi in ((blue_lo, blue_hi), (red_lo, red_hi)):
                in_band = (slab_wave >= (centre + offset_lo) * scale) & (
                    slab_wave <= (centre + offset_hi) * scale
                )
                median, variance, ok = _median_continuum(
                    slab_flux[in_band], slab_ivar[in_band], usable[in_band]
                )
                position = (centre + 0.5 * (offset_lo + offset_hi)) * scale
                continuum_parts.append((median, variance, ok, position))
            (blue, blue_var, blue_ok, blue_at), (red, red_var, red_ok, red_at) = continuum_parts
            # The straight line through the two medians, at the line's centre.
            share = (red_at - centre * scale) / (red_at - blue_at)
            continuum = share * blue + (1.0 - share) * red
            continuum_var = share**2 * blue_var + (1.0 - share) ** 2 * red_var

            weight = _overlap(
                slab_edges, (centre - half_width) * scale, (centre + half_width) * scale
            )
            in_passband = weight > 0
            bad_channel = (~usable[in_passband]).any(axis=0)
            line_flux = (weight[:, None] * slab_flux).sum(axis=0) - weight.sum() * continuum
            with np.errstate(divide="ignore"):
                channel_var = np.where(usable, 1.0 / np.where(usable, slab_ivar, 1.0), 0.0)
            variance = (weight[:, None] ** 2 * channel_var).sum(axis=0)
            variance = variance + weight.sum() ** 2 * continuum_var
            bad = bad_channel | ~blue_ok | ~red_ok | ~(variance > 0)
            flux[i] = np.where(bad, 0.0, line_flux)
            ivar[i] = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, variance))
            mask[i] = bad

        settings: dict[str, Any] = {
            "method": self.name,
            "half_width_angstrom": half_width,
            "sidebands": sidebands,
            "continuum_estimate": "median",
            "redshift": redshift,
        }
        return build_stack(
            cube, lines, flux, ivar, mask, redshift, settings, ebv_galactic=ebv_galactic
        )

    @staticmethod
    def _sidebands(
        line: ifsrepr.EmissionLine, sidebands: str
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """Blue and red side-bands as rest-frame offsets (Å) from the line centre."""
        if sidebands == "dap" and line.blueside and line.redside:
            centre = line.rest_wavelength.to_value(u.AA)
            blue = (line.blueside[0] - centre, line.blueside[1] - centre)
            red = (line.redside[0] - centre, line.redside[1] - centre)
            return blue, red
        return DEFAULT_SIDEBANDS


@ifsrepr.hookimpl
def ifsrepr_register_line_extractors(register):
    """Register the ``narrowband`` extractor with ifsrepr."""
    register(NarrowbandExtractor())
