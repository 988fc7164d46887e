"""Continuum shapes, sky noise and spectral resolution taken from 11 real MaNGA spectra.

The package ships two files of real LOGCUBE spaxel spectra from the MaNGA DAP's
test data (``ifsrepr/data/mock/MaNGA_test_spectra.fits.gz``, 8 spectra, and
``MaNGA_multicomp_test_spectra.fits.gz``, 3 more; provenance in
``ifsrepr/data/PROVENANCE.md``). From them the mock takes:

Stellar-continuum templates
    The core library `ifsrepr.templates` (shared with the extraction's
    stellar-continuum fit, `ifsrepr.extraction.continuum`): nine spectra moved
    to their rest frame, cleaned of emission lines, bad pixels and outliers,
    smoothed to a per-pixel S/N of about 100, resampled onto a common rest-frame
    log grid of the LOGCUBE step, extended by power laws and normalised to unit
    mean over rest 6000-6200 Angstrom. Templates with D4000n > 1.6 are "old"
    (used for bulges and passive discs), the rest "young" (star-forming
    discs); the two spectra with broad Balmer lines (multicomp 2 and 3), with
    their broad-line regions bridged, are "agn" and are used only as the
    continuum of broad-line AGN nuclei.
Sky and read noise
    Spectrum 7 (7815-6101, spaxel 37,37) is so faint (S/N 1.5) that its
    variance is the sky-plus-detector term ``a(lambda)``, sky lines included.
Poisson noise
    For the bright "old" spectra, ``(1/IVAR - a) / FLUX`` gives the variance
    per unit flux ``b(lambda)``; its median, smoothed, is the source term.
    The mock's variance is ``(a + b * model) / coverage``.
Spectral resolution
    The median and standard deviation of the spectra's ``SRES`` vectors are
    the mock cubes' ``SPECRES`` and ``SPECRESD``.

Spectrum 6 (7815-6101, spaxel 37,46) lies outside its bundle (every pixel is
flagged) and is not used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..templates import (
    REST_LOG10_START,
    REST_N,
    SKY,
    SOURCES,
    UNUSABLE,
    load_templates,
    read_spectra,
)
from .instrument import LOG10_STEP, N_WAVE, wavelength

__all__ = ["SpectralLibrary", "load_library", "REST_LOG10_START", "REST_N", "SOURCES"]


@dataclass(frozen=True)
class SpectralLibrary:
    """Everything the mock takes from the real spectra.

    Attributes
    ----------
    templates : ndarray
        Rest-frame continuum templates, ``(n_templates, REST_N)``, on the grid
        ``log10(lambda) = REST_LOG10_START + 1e-4 k``, unit mean over 6000-6200 A
        (`ifsrepr.templates.load_templates`).
    names : tuple of str
        Source of each template (plate-IFU and spaxel).
    kinds : tuple of str
        ``"old"``, ``"young"`` or ``"agn"`` for each template.
    d4000 : ndarray
        D4000n of each template.
    sky_variance : ndarray
        ``a(lambda)`` on the LOGCUBE grid, (1e-17 erg/s/cm^2/A/spaxel)^2.
    poisson_variance : ndarray
        ``b(lambda)``: variance per unit flux density on the LOGCUBE grid.
    specres, specres_std : ndarray
        Median spectral resolution R and its scatter on the LOGCUBE grid.
    """

    templates: np.ndarray
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    d4000: np.ndarray
    sky_variance: np.ndarray
    poisson_variance: np.ndarray
    specres: np.ndarray
    specres_std: np.ndarray

    def indices(self, kind: str) -> list[int]:
        """Indices of the templates of one kind."""
        return [i for i, k in enumerate(self.kinds) if k == kind]

    @property
    def rest_wavelength(self) -> np.ndarray:
        """Rest wavelength of each template pixel (Angstrom)."""
        return 10.0 ** (REST_LOG10_START + LOG10_STEP * np.arange(REST_N))


@functools.cache
def load_library() -> SpectralLibrary:
    """Build (once per process) the `SpectralLibrary` from the shipped real spectra.

    Examples
    --------
    >>> from ifsrepr.mock.templates import load_library
    >>> lib = load_library()
    >>> sorted(set(lib.kinds))
    ['agn', 'old', 'young']
    """
    spectra = read_spectra()
    wave = spectra["wave"]
    if wave.size != N_WAVE or not np.allclose(wave, wavelength(), rtol=1e-9):
        raise RuntimeError("the shipped spectra are not on the LOGCUBE wavelength grid")
    core = load_templates()

    ivar = spectra["ivar"]
    good = (ivar > 0) & (spectra["mask"] == 0)
    variance = np.where(good, 1.0 / np.where(good, ivar, 1.0), np.nan)
    sky = variance[SKY]
    valid = np.isfinite(sky)
    sky = np.interp(np.arange(N_WAVE), np.flatnonzero(valid), sky[valid])
    old = [SOURCES.index(n) for n, k in zip(core.names, core.kinds, strict=True) if k == "old"]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_flux = (variance[old] - sky) / spectra["flux"][old]
    per_flux = np.where(np.isfinite(per_flux) & (per_flux > 0), per_flux, np.inf)
    # A median over the templates; channels none of them covers become inf, then interpolated.
    poisson = np.median(per_flux, axis=0)
    valid = np.isfinite(poisson)
    poisson = np.interp(np.arange(N_WAVE), np.flatnonzero(valid), poisson[valid])
    poisson = ndimage.median_filter(poisson, size=301, mode="nearest")
    poisson = ndimage.gaussian_filter1d(poisson, 50, mode="nearest")

    usable = [i for i in range(len(SOURCES)) if i != UNUSABLE]
    sres = spectra["sres"][usable]
    specres = ndimage.median_filter(np.median(sres, axis=0), size=51, mode="nearest")
    specres_std = ndimage.median_filter(np.std(sres, axis=0), size=51, mode="nearest")

    return SpectralLibrary(
        templates=core.templates,
        names=core.names,
        kinds=core.kinds,
        d4000=core.d4000,
        sky_variance=sky,
        poisson_variance=poisson,
        specres=specres,
        specres_std=specres_std,
    )
