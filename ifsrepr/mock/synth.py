"""Turn a `~ifsrepr.mock.model.GalaxyModel` into data: cubes, line maps, noise.

The noiseless cube
    At every requested channel: the continuum components (template values at
    ``lambda / ((1 + z)(1 + v/c))``, interpolated on the template's log grid,
    so stellar rotation Doppler-shifts the absorption lines), plus every line
    of every emission component as a Gaussian integrated over the channel
    (flux-conserving), centred at ``lambda_rest (1 + z)(1 + v/c)`` with
    ``sigma^2 = sigma_LSF,pre^2 + (lambda/c)^2 (sigma_gas^2 + sigma_thermal^2)``
    (the DRP's pre-pixel LSF from the real SPECRES, i.e. R ~ 2000). Lines are
    only evaluated in windows of +-6 sigma around them. The sum is dimmed by
    the Milky Way (O'Donnell 1994, EBVGAL; DRP cubes are not corrected),
    convolved channel by channel with the Gaussian PSF (held constant within
    each of eight wavelength chunks) and multiplied by the fibre throughput.
Noise
    Variance ``(a(lambda) + b(lambda) model) / coverage`` with the real sky
    term ``a`` and Poisson term ``b`` of `ifsrepr.mock.templates`; the
    noise is spatially correlated like a real cube's (white noise smoothed by
    a 1.25-spaxel Gaussian and rescaled to unit variance, which reproduces the
    1 + 1.62 log10(N) inflation of binned noise of Law et al. 2016 for N up
    to ~25). IVAR is the inverse of that variance, so ``(flux - model)^2 * ivar``
    averages 1.
Line maps
    The truth the DAP would measure: each line's flux map convolved with the
    PSF at its wavelength, its flux-weighted velocity and dispersion
    (beam-smeared moments), corrected for Galactic extinction as the DAP does.
    Their uncertainties are the Cramer-Rao bounds of a fixed-shape profile
    fit to the same noise model as the cube: ``1 / sum(P_i^2 / var_i)`` with
    ``P`` the PSF-convolved line profile.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from ..bitmask import bit_value
from .instrument import (
    LOG10_STEP,
    N_WAVE,
    RED_CUTOFF,
    pixel_edges,
    psf_chunks,
    wavelength,
)
from .model import GalaxyModel
from .nebular import LINE_NAMES, rest_wavelengths, thermal_sigma
from .templates import REST_LOG10_START, load_library

__all__ = [
    "CubeData",
    "LineMaps",
    "NOISE_CORRELATION_SIGMA",
    "correlated_noise",
    "observe_cube",
    "observe_lines",
    "synthesize",
    "true_line_maps",
    "lsf_sigma",
    "noise_variance",
]

C_KMS = 299792.458
#: Sigma (spaxels) of the Gaussian that correlates neighbouring spaxels' noise.
NOISE_CORRELATION_SIGMA = 1.25
_WINDOW_SIGMA = 5.0  # a Gaussian loses 6e-7 of its flux beyond 5 sigma
_TRACE = 1e-7  # spaxels with less than this fraction of a line's peak flux are skipped

NOCOV = bit_value("MANGA_DRP3PIXMASK", "NOCOV", "LOWCOV", "DONOTUSE")  # 1027
LOWCOV = bit_value("MANGA_DRP3PIXMASK", "LOWCOV", "DONOTUSE")  # 1026


@functools.cache
def lsf_sigma(*, pre: bool = True) -> np.ndarray:
    """Gaussian sigma (Angstrom) of the line-spread function at every channel.

    ``pre=True`` gives the pre-pixellisation LSF (what a line profile is
    convolved with before being integrated over a channel), ``pre=False`` the
    post-pixellisation one the DRP writes as ``LSFPOST``:
    ``sigma_post^2 = sigma_pre^2 + dlambda^2 / 12``.
    """
    wave = wavelength()
    post = wave / load_library().specres / 2.3548200450309493
    if not pre:
        post.flags.writeable = False
        return post
    step = np.diff(pixel_edges())
    out = np.sqrt(np.maximum(post**2 - step**2 / 12.0, (0.5 * step) ** 2))
    out.flags.writeable = False
    return out


@dataclass
class CubeData:
    """A synthetic LOGCUBE's arrays.

    Attributes
    ----------
    flux, ivar : ndarray
        ``(4563, n, n)`` float32.
    mask : ndarray
        ``(4563, n, n)`` int32 ``MANGA_DRP3PIXMASK``.
    model : ndarray
        ``(4563, n, n)`` float32 noiseless flux (after PSF and Milky Way dust).
    """

    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    model: np.ndarray


@dataclass
class LineMaps:
    """Per-line maps of the 35 DR17 lines, as a DAP would report them.

    Attributes
    ----------
    flux : ndarray
        ``(35, n, n)`` line flux per spaxel (1e-17 erg/s/cm^2), Galactic-corrected.
    ivar : ndarray
        Inverse variance of ``flux`` (0 where there are no data).
    velocity, sigma : ndarray
        Flux-weighted velocity and dispersion (km/s), dispersion without the LSF.
    instrumental_sigma : ndarray
        ``(35,)`` LSF sigma (km/s) at each line's observed wavelength.
    valid : ndarray of bool
        ``(35,)``: the line falls inside the observed wavelength range.
    mask : ndarray of bool
        ``(35, n, n)``: True where the value must not be used.
    """

    flux: np.ndarray
    ivar: np.ndarray
    velocity: np.ndarray
    sigma: np.ndarray
    instrumental_sigma: np.ndarray
    valid: np.ndarray
    mask: np.ndarray


# ----------------------------------------------------------------------------
# the noiseless cube
# ----------------------------------------------------------------------------
def _continuum(model: GalaxyModel, channels: np.ndarray, out: np.ndarray) -> None:
    """Add the continuum components at ``channels`` into ``out`` (m, n, n)."""
    log_wave = np.log10(wavelength()[channels]) - np.log10(1 + model.z)
    n2 = model.n * model.n
    flat = out.reshape(len(channels), n2)
    for component in model.continuum:
        spectrum = component.spectrum
        amplitude = component.amplitude.ravel()
        if component.velocity is None:
            k = (log_wave - REST_LOG10_START) / LOG10_STEP
            values = np.interp(k, np.arange(spectrum.size), spectrum)
            flat += (values[:, None] * amplitude[None, :]).astype(flat.dtype)
            continue
        shift = np.log10(1 + component.velocity.ravel() / C_KMS) / LOG10_STEP
        k = (log_wave - REST_LOG10_START)[:, None] / LOG10_STEP - shift[None, :]
        k = np.clip(k, 0, spectrum.size - 1.000001)
        low = k.astype(np.int64)
        weight = k - low
        values = spectrum[low] * (1 - weight) + spectrum[low + 1] * weight
        flat += (values * amplitude[None, :]).astype(flat.dtype)


def _line_windows(model: GalaxyModel, component) -> np.ndarray:
    """Channel ranges [start, stop) holding +-5 sigma of each line of a component, ``(35, 2)``."""
    centre = rest_wavelengths() * (1 + model.z)
    channel = np.clip(np.searchsorted(wavelength(), centre), 0, N_WAVE - 1)
    sigma_kms = float(component.sigma.max()) ** 2 + thermal_sigma() ** 2
    width = np.sqrt(lsf_sigma()[channel] ** 2 + (centre / C_KMS) ** 2 * sigma_kms)
    low = centre * (1 + float(component.velocity.min()) / C_KMS) - _WINDOW_SIGMA * width
    high = centre * (1 + float(component.velocity.max()) / C_KMS) + _WINDOW_SIGMA * width
    edges = pixel_edges()
    return np.stack([np.searchsorted(edges, low) - 1, np.searchsorted(edges, high)], axis=1)


def _lines(
    model: GalaxyModel, channels: np.ndarray, out: np.ndarray, only_line: int | None = None
) -> None:
    """Add emission lines (all, or ``only_line``) at ``channels`` into ``out`` (m, n, n)."""
    edges = pixel_edges()
    steps = np.diff(edges)
    rest = rest_wavelengths()
    thermal = thermal_sigma()
    lsf = lsf_sigma()
    line_channel = np.clip(np.searchsorted(wavelength(), rest * (1 + model.z)), 0, N_WAVE - 1)
    n2 = model.n * model.n
    flat = out.reshape(len(channels), n2)
    lines = range(len(LINE_NAMES)) if only_line is None else (only_line,)
    for component in model.emission:
        velocity = component.velocity.ravel()
        sigma_gas = component.sigma.ravel()
        windows = _line_windows(model, component)
        bounds = np.searchsorted(channels, np.clip(windows, 0, N_WAVE))
        for line in lines:
            lo, hi = bounds[line]
            if hi <= lo:
                continue
            flux = component.flux[line].ravel()
            peak = float(flux.max())
            if peak <= 0:
                continue
            rows = channels[lo:hi]
            spaxels = np.flatnonzero(flux > _TRACE * peak)
            centre = rest[line] * (1 + model.z) * (1 + velocity[spaxels] / C_KMS)
            width = np.sqrt(
                lsf[line_channel[line]] ** 2
                + (centre / C_KMS) ** 2 * (sigma_gas[spaxels] ** 2 + thermal[line] ** 2)
            )
            if rows[-1] - rows[0] + 1 == rows.size:  # contiguous: one CDF per edge
                cdf = special.ndtr((edges[rows[0] : rows[-1] + 2, None] - centre) / width)
                fraction = np.diff(cdf, axis=0)
            else:
                fraction = special.ndtr((edges[rows + 1, None] - centre) / width) - special.ndtr(
                    (edges[rows, None] - centre) / width
                )
            density = fraction * (flux[spaxels] / steps[rows, None])
            flat[lo:hi, spaxels] += density.astype(flat.dtype)


def synthesize(
    model: GalaxyModel,
    channels: np.ndarray | None = None,
    *,
    only_line: int | None = None,
    lines: bool = True,
    dtype: type = np.float32,
) -> np.ndarray:
    """The noiseless observed cube at ``channels``, shaped ``(len(channels), n, n)``.

    Parameters
    ----------
    model : GalaxyModel
    channels : array of int, optional
        Sorted, unique channel indices; all 4563 by default.
    only_line : int, optional
        Synthesize only this line (index into the 35), without continuum,
        artefacts or other lines.
    lines : bool
        Include the emission lines (False: continuum and artefacts only).
    dtype : numpy dtype
        Of the result.
    """
    channels = np.arange(N_WAVE) if channels is None else np.asarray(channels, dtype=np.int64)
    n = model.n
    out = np.zeros((channels.size, n, n), dtype=dtype)
    for k, (start, stop) in enumerate(psf_chunks()):
        lo, hi = np.searchsorted(channels, [start, stop])
        if hi <= lo:
            continue
        block = np.zeros((hi - lo, n, n), dtype=dtype)
        if only_line is None:
            _continuum(model, channels[lo:hi], block)
        if lines or only_line is not None:
            _lines(model, channels[lo:hi], block, only_line)
        block *= model.galactic[channels[lo:hi], None, None]
        block = model.convolve(block, float(model.psf_sigma[k]))
        block *= model.throughput[None]
        out[lo:hi] = block
    if only_line is None:
        for ray in model.cosmic_rays:
            position = np.searchsorted(channels, ray.channels)
            hit = (position < channels.size) & (
                channels[np.minimum(position, channels.size - 1)] == ray.channels
            )
            out[position[hit], ray.ys[hit], ray.xs[hit]] += ray.amplitude[hit].astype(dtype)
    return out


# ----------------------------------------------------------------------------
# noise
# ----------------------------------------------------------------------------
def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over neighbouring spaxels (last two axes).

    White noise smoothed by a Gaussian of `NOISE_CORRELATION_SIGMA` spaxels
    (periodic boundaries, so the variance is the same everywhere) and divided
    by the kernel's root-sum-square.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    sigmas = (0,) * (len(shape) - 2) + (NOISE_CORRELATION_SIGMA,) * 2
    smoothed = ndimage.gaussian_filter(white, sigmas, mode="wrap", truncate=4.0)
    return smoothed / np.float32(_kernel_norm())


def _kernel_norm() -> float:
    delta = np.zeros((33, 33))
    delta[16, 16] = 1.0
    kernel = ndimage.gaussian_filter(delta, NOISE_CORRELATION_SIGMA, mode="wrap", truncate=4.0)
    return float(np.sqrt((kernel**2).sum()))


def noise_variance(model: GalaxyModel, channels: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Noise variance of a noiseless cube ``flux`` at ``channels`` (inf where uncovered).

    ``(a(lambda) + b(lambda) max(flux, 0)) / coverage`` with the real sky and
    Poisson terms of `ifsrepr.mock.templates.SpectralLibrary`.
    """
    library = load_library()
    sky = library.sky_variance[channels, None, None].astype(np.float32)
    poisson = library.poisson_variance[channels, None, None].astype(np.float32)
    coverage = model.footprint.coverage.astype(np.float32)
    with np.errstate(divide="ignore"):
        inverse_coverage = np.where(coverage > 0, 1.0 / coverage, np.inf).astype(np.float32)
    return (sky + poisson * np.maximum(flux, 0)) * inverse_coverage[None]


def observe_cube(model: GalaxyModel, rng: np.random.Generator) -> CubeData:
    """Synthesize the full cube and add noise, masks and the DRP's conventions.

    Outside the bundle footprint FLUX = IVAR = 0 and MASK = NOCOV|LOWCOV|DONOTUSE
    (1027); the outer edge band is LOWCOV|DONOTUSE (1026) with data; the last
    channels (> 10343 A) carry no data and are flagged 1026, as in real cubes.
    """
    model_flux = synthesize(model)
    channels = np.arange(N_WAVE)
    variance = noise_variance(model, channels, model_flux)
    noise = correlated_noise(rng, model_flux.shape)
    with np.errstate(invalid="ignore"):
        flux = model_flux + np.sqrt(variance) * noise
    del noise
    covered = model.footprint.covered
    flux[:, ~covered] = 0.0
    with np.errstate(divide="ignore"):
        ivar = (1.0 / variance).astype(np.float32)
    del variance
    ivar[:, ~covered] = 0.0
    mask = np.zeros(model_flux.shape, dtype=np.int32)
    mask[:, model.footprint.lowcov] = LOWCOV
    dead = wavelength() > RED_CUTOFF
    mask[dead] |= LOWCOV
    flux[dead] = 0.0
    ivar[dead] = 0.0
    mask[:, ~covered] = NOCOV
    return CubeData(flux=flux, ivar=ivar, mask=mask, model=model_flux)


# ----------------------------------------------------------------------------
# line maps
# ----------------------------------------------------------------------------
def true_line_maps(model: GalaxyModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSF-convolved flux, velocity and dispersion of each line, Galactic-corrected.

    Returns
    -------
    flux, velocity, sigma : ndarray
        Each ``(35, n, n)``; the dispersion excludes the LSF but includes
        thermal broadening.
    """
    rest = rest_wavelengths()
    thermal = thermal_sigma()
    n = model.n
    flux = np.zeros((len(rest), n, n))
    velocity = np.zeros_like(flux)
    sigma = np.zeros_like(flux)
    for line in range(len(rest)):
        s = model.psf_sigma_at(rest[line] * (1 + model.z))
        f0 = np.zeros((n, n))
        f1 = np.zeros((n, n))
        f2 = np.zeros((n, n))
        for component in model.emission:
            f = component.flux[line]
            f0 += f
            f1 += f * component.velocity
            f2 += f * (component.velocity**2 + component.sigma**2 + thermal[line] ** 2)
        m0 = model.convolve(f0, s)
        m1 = model.convolve(f1, s)
        m2 = model.convolve(f2, s)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(m0 > 0, m1 / m0, 0.0)
            var = np.where(m0 > 0, m2 / m0 - v**2, 0.0)
        flux[line] = m0 * model.throughput
        velocity[line] = v
        sigma[line] = np.sqrt(np.maximum(var, 0.0))
    for ray in model.cosmic_rays:
        # The hit adds to the line it lands on, corrected for the Milky Way like the rest.
        widths = np.diff(pixel_edges())[ray.channels] * ray.amplitude / model.galactic[ray.channels]
        np.add.at(flux[ray.line], (ray.ys, ray.xs), widths)
    return flux, velocity, sigma


def _line_variance(model: GalaxyModel, valid: np.ndarray) -> np.ndarray:
    """Cramer-Rao variance of each line's (Galactic-corrected) flux, ``(35, n, n)``."""
    n = model.n
    rest = rest_wavelengths()
    component_windows = [_line_windows(model, c) for c in model.emission]
    windows = {}
    for line in np.flatnonzero(valid):
        ranges = [
            w[line]
            for w, c in zip(component_windows, model.emission, strict=True)
            if c.flux[line].max() > 0
        ]
        if ranges:
            start = max(min(r[0] for r in ranges), 0)
            stop = min(max(r[1] for r in ranges), N_WAVE)
            windows[line] = np.arange(start, stop)
    variance = np.full((len(rest), n, n), np.inf)
    if not windows:
        return variance
    union = np.unique(np.concatenate(list(windows.values())))
    # The full model over the windows: continuum once, plus each line's own cube.
    profiles = {
        line: synthesize(model, channels, only_line=line, dtype=np.float64)
        for line, channels in windows.items()
    }
    total = synthesize(model, union, lines=False, dtype=np.float64)
    for line, channels in windows.items():
        total[np.searchsorted(union, channels)] += profiles[line]
    noise_var = noise_variance(model, union, total).astype(np.float64)
    step = np.diff(pixel_edges())
    for line, channels in windows.items():
        profile = profiles[line]
        area = (profile * step[channels, None, None]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shape = np.where(area > 0, profile / area, 0.0)
        rows = np.searchsorted(union, channels)
        information = (shape**2 / noise_var[rows]).sum(axis=0)
        galactic = model.galactic[channels[len(channels) // 2]]
        with np.errstate(divide="ignore"):
            variance[line] = np.where(information > 0, 1.0 / information, np.inf) / galactic**2
    return variance


def observe_lines(model: GalaxyModel, rng: np.random.Generator) -> LineMaps:
    """Noisy line maps with their inverse variances, as a DAP MAPS file holds them.

    Lines outside the observed range are fully masked (flux and ivar 0), as
    are spaxels outside the footprint and in its LOWCOV edge.
    """
    rest = rest_wavelengths()
    wave = wavelength()
    observed = rest * (1 + model.z)
    valid = (observed > wave[0] + 20) & (observed < RED_CUTOFF - 20)
    truth, velocity, sigma = true_line_maps(model)
    variance = _line_variance(model, valid)
    noise = correlated_noise(rng, truth.shape).astype(np.float64)
    with np.errstate(invalid="ignore"):
        flux = truth + np.sqrt(variance) * noise
    usable = model.footprint.covered & ~model.footprint.lowcov
    mask = ~(valid[:, None, None] & usable[None] & np.isfinite(variance))
    flux = np.where(mask, 0.0, flux)
    with np.errstate(divide="ignore"):
        ivar = np.where(mask, 0.0, 1.0 / variance)
    instrumental = lsf_sigma(pre=False)[np.clip(np.searchsorted(wave, observed), 0, N_WAVE - 1)]
    instrumental_kms = instrumental / observed * C_KMS
    return LineMaps(
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        velocity=np.where(mask, 0.0, velocity).astype(np.float32),
        sigma=np.where(mask, 0.0, sigma).astype(np.float32),
        instrumental_sigma=instrumental_kms,
        valid=valid,
        mask=mask,
    )
