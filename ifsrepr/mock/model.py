"""`GalaxyModel`: a mock galaxy as maps of light and gas, before the instrument.

A model is a list of continuum components (an amplitude map times a
rest-frame spectrum, optionally Doppler-shifted per spaxel) and a list of
emission components (a flux map for each of the 35 lines, with a velocity and
a dispersion map), all *intrinsic*: on the sky, before the PSF, the Milky Way's
dust and the noise. `ifsrepr.mock.synth` turns a model into data.

Components built by `build_model` (see `ifsrepr.mock.params` for the numbers):

``bulge`` / ``disc``
    Sersic bulge and exponential disc continua, the disc rotating with the
    stars' velocity field. The amplitudes are scaled so that the r-band (rest
    6000-6200 A) continuum in the central spaxel, after the PSF, equals
    ``central_continuum``.
``hii``
    Star formation: Halpha = EW(R) x disc continuum x clump field, *observed*
    (i.e. after the internal dust, so the equivalent width is what a
    spectrum shows); the other lines follow from the local abundance through
    `~ifsrepr.mock.nebular.star_forming_ratios` and the local E(B-V)
    through the CCM curve (Balmer decrement above 2.86 wherever E(B-V) > 0).
``dig``
    Diffuse ionised gas following the total continuum.
``nlr``
    The narrow-line region of a Seyfert or LINER nucleus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, special

from ..extinction import attenuation
from .instrument import (
    BAND_WAVELENGTHS,
    SPAXEL_ARCSEC,
    Footprint,
    chunk_of_channel,
    chunk_sigma_pixels,
    footprint,
    wavelength,
)
from .nebular import agn_ratios, line_index, rest_wavelengths, star_forming_ratios
from .params import GalaxyParams
from .structure import DiscGeometry, arctan_velocity, exponential_profile, sersic_profile
from .templates import REST_LOG10_START, SpectralLibrary, load_library

__all__ = [
    "ContinuumComponent",
    "CosmicRay",
    "EmissionComponent",
    "GalaxyModel",
    "build_model",
    "gaussian_blob",
]

C_KMS = 299792.458
_HALPHA = line_index("Ha-6564")


@dataclass
class ContinuumComponent:
    """Stellar (or AGN) continuum: ``amplitude[y, x] * spectrum(lambda_rest)``.

    Attributes
    ----------
    name : str
    amplitude : ndarray
        ``(n, n)``: intrinsic flux density per spaxel at rest 6000-6200 A.
    spectrum : ndarray
        Rest-frame shape on the template grid, unit mean over 6000-6200 A.
    velocity : ndarray or None
        ``(n, n)`` line-of-sight velocity (km/s) relative to systemic; None = 0.
    """

    name: str
    amplitude: np.ndarray
    spectrum: np.ndarray
    velocity: np.ndarray | None = None


@dataclass
class EmissionComponent:
    """Ionised gas of one kind: a flux map per line plus kinematics.

    Attributes
    ----------
    name : str
    flux : ndarray
        ``(35, n, n)`` line fluxes per spaxel after internal dust
        (1e-17 erg/s/cm^2), before the PSF and Galactic extinction.
    velocity : ndarray
        ``(n, n)`` line-of-sight velocity relative to systemic (km/s).
    sigma : ndarray
        ``(n, n)`` non-thermal velocity dispersion (km/s); thermal widths are
        added per line by the synthesis.
    """

    name: str
    flux: np.ndarray
    velocity: np.ndarray
    sigma: np.ndarray


@dataclass
class CosmicRay:
    """A cosmic-ray hit left in the cube: extra flux density on a few voxels.

    ``channels``, ``ys``, ``xs`` and ``amplitude`` (1e-17 erg/s/cm^2/A) have
    one entry per voxel; ``line`` is the emission line whose window the hit
    falls in (it adds to that line's map).
    """

    channels: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    amplitude: np.ndarray
    line: int


@dataclass
class GalaxyModel:
    """A mock galaxy, ready for `ifsrepr.mock.synth`.

    Attributes
    ----------
    params : GalaxyParams
    footprint : Footprint
    continuum : list of ContinuumComponent
    emission : list of EmissionComponent
    throughput : ndarray
        ``(n, n)`` fraction of the light each spaxel records (1, except where
        a dead-fibre artefact removes it).
    cosmic_rays : list of CosmicRay
    galactic : ndarray
        Milky-Way transmission on the LOGCUBE grid (O'Donnell 1994, EBVGAL).
    psf_sigma : ndarray
        Gaussian PSF sigma (spaxels) of each PSF chunk.
    """

    params: GalaxyParams
    footprint: Footprint
    continuum: list[ContinuumComponent] = field(default_factory=list)
    emission: list[EmissionComponent] = field(default_factory=list)
    throughput: np.ndarray | None = None
    cosmic_rays: list[CosmicRay] = field(default_factory=list)
    galactic: np.ndarray | None = None
    psf_sigma: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Cube side in spaxels."""
        return self.footprint.n

    @property
    def z(self) -> float:
        """Systemic redshift."""
        return self.params.z

    def psf_sigma_at(self, observed_wavelength: float) -> float:
        """PSF sigma (spaxels) used at an observed wavelength (that of its chunk)."""
        wave = wavelength()
        channel = int(np.clip(np.searchsorted(wave, observed_wavelength), 0, wave.size - 1))
        return float(self.psf_sigma[chunk_of_channel(channel)])

    def convolve(self, image: np.ndarray, sigma: float) -> np.ndarray:
        """Convolve maps (the last two axes) with a Gaussian PSF of ``sigma`` spaxels."""
        sigmas = (0,) * (image.ndim - 2) + (sigma, sigma)
        return ndimage.gaussian_filter(image, sigmas, mode="constant", truncate=4.0)


def gaussian_blob(n: int, centre: tuple[float, float], sigma_arcsec: float) -> np.ndarray:
    """A unit-total-flux 2-D Gaussian on the ``n x n`` spaxel grid (integrated over spaxels).

    ``centre`` is the (east, north) offset in arcsec from the cube centre. A
    ``sigma_arcsec`` of 0 gives a point source (flux shared by the nearest
    spaxels, bilinearly).
    """
    x0 = n // 2 - centre[0] / SPAXEL_ARCSEC  # east is -x
    y0 = n // 2 + centre[1] / SPAXEL_ARCSEC
    if sigma_arcsec <= 0:
        image = np.zeros((n, n))
        ix, iy = int(np.floor(x0)), int(np.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= iy + dy < n and 0 <= ix + dx < n:
                    image[iy + dy, ix + dx] += wy * wx
        return image
    s = sigma_arcsec / SPAXEL_ARCSEC
    edges = np.arange(n + 1) - 0.5
    px = np.diff(special.ndtr((edges - x0) / s))
    py = np.diff(special.ndtr((edges - y0) / s))
    return py[:, None] * px[None, :]


def _template(library: SpectralLibrary, name: str) -> np.ndarray:
    return library.templates[library.names.index(name)]


def _rest_value(spectrum: np.ndarray, rest_wave: float) -> float:
    """Mean of a template over +-20 A around ``rest_wave`` (continuum under a line)."""
    grid = 10.0 ** (REST_LOG10_START + 1e-4 * np.arange(spectrum.size))
    near = np.abs(grid - rest_wave) < 20.0
    return float(spectrum[near].mean())


def _sersic_total(n: float, reff: float, q: float) -> float:
    """Total flux of a Sersic profile normalised to 1 at Re (integral over the plane)."""
    b_n = special.gammaincinv(2 * n, 0.5)
    return 2 * np.pi * q * reff**2 * n * np.exp(b_n) * special.gamma(2 * n) / b_n ** (2 * n)


def _random_field(rng: np.random.Generator, n: int, smooth_arcsec: float) -> np.ndarray:
    """Unit-variance Gaussian random field smoothed over ``smooth_arcsec`` (FWHM-ish sigma)."""
    field = ndimage.gaussian_filter(
        rng.standard_normal((n, n)), smooth_arcsec / SPAXEL_ARCSEC, mode="wrap"
    )
    return field / field.std()


def build_model(params: GalaxyParams, rng: np.random.Generator) -> GalaxyModel:
    """Build the intrinsic `GalaxyModel` of a galaxy (anomalies not included).

    Parameters
    ----------
    params : GalaxyParams
    rng : numpy.random.Generator
        Draws the random fields (HII-region clumps, abundance scatter); use
        the galaxy's own stream right after `draw_params` for reproducibility.

    Returns
    -------
    GalaxyModel
    """
    library = load_library()
    foot = footprint(params.ifudesign)
    n = foot.n
    model = GalaxyModel(params=params, footprint=foot)
    model.psf_sigma = chunk_sigma_pixels(params.psf_fwhm)
    model.galactic = attenuation(wavelength(), params.ebv_gal, law="odonnell94")
    model.throughput = np.ones((n, n))
    sigma_r = model.psf_sigma_at(BAND_WAVELENGTHS["r"])

    # Light: unnormalised profiles, integrated over 3x3 sub-pixels.
    sub = DiscGeometry(n, params.pa, 1 - params.ell, params.inclination, subgrid=True)
    disc = sub.reduce(exponential_profile(sub.elliptical_radius(), params.disc_reff))
    bulge = sub.reduce(
        sersic_profile(
            sub.elliptical_radius(params.bulge_q), params.bulge_reff, params.bulge_sersic_n
        )
    )
    bt = params.bulge_fraction
    disc_total = 2 * np.pi * (1 - params.ell) * (params.disc_reff / 1.6783469900166608) ** 2
    bulge_total = _sersic_total(params.bulge_sersic_n, params.bulge_reff, params.bulge_q)
    disc_amp = (1 - bt) / disc_total * disc
    bulge_amp = bt / bulge_total * bulge
    centre = n // 2
    scale = params.central_continuum / model.convolve(disc_amp + bulge_amp, sigma_r)[centre, centre]
    # (profiles are surface brightnesses sampled per spaxel; only their ratio matters here)
    disc_amp *= scale
    bulge_amp *= scale

    geometry = DiscGeometry(n, params.pa, 1 - params.ell, params.inclination)
    v_gas = arctan_velocity(geometry, params.v_max, params.r_turn, params.rotation_sense)
    v_star = params.stellar_rotation_fraction * v_gas
    young = _template(library, library.names[library.indices("young")[0]])
    disc_spectrum = params.disc_young_fraction * young + (
        1 - params.disc_young_fraction
    ) * _template(library, params.disc_template_old)
    bulge_spectrum = _template(library, params.bulge_template)
    model.continuum.append(ContinuumComponent("disc", disc_amp, disc_spectrum, v_star))
    model.continuum.append(ContinuumComponent("bulge", bulge_amp, bulge_spectrum, None))

    radius = geometry.disc_radius() / params.reff  # in units of Re
    rest = rest_wavelengths()
    ha_rest = rest[_HALPHA]

    # Star formation.
    if params.ew_halpha_sf > 0:
        ew = params.ew_halpha_sf * np.exp(params.ew_gradient * (np.minimum(radius, 4.0) - 1.0))
        clump_ln = params.clumpiness * np.log(10)
        clumps = np.exp(clump_ln * _random_field(rng, n, 1.0) - 0.5 * clump_ln**2)
        halpha_obs = ew * disc_amp * _rest_value(disc_spectrum, ha_rest) * clumps
        logoh = (
            params.logoh_centre + params.logoh_gradient * radius + 0.03 * _random_field(rng, n, 1.0)
        )
        ebv = params.ebv_gas_centre * np.exp(-radius / 1.5)
        flux = _emission_from_halpha(halpha_obs, star_forming_ratios(logoh), ebv)
        sigma = np.full((n, n), params.sigma_hii)
        model.emission.append(EmissionComponent("hii", flux, v_gas.copy(), sigma))

    # Diffuse ionised gas, lit by the evolved stars that make the continuum.
    total_at_ha = disc_amp * _rest_value(disc_spectrum, ha_rest) + bulge_amp * _rest_value(
        bulge_spectrum, ha_rest
    )
    dig_obs = params.ew_halpha_dig * total_at_ha
    ebv_dig = 0.5 * params.ebv_gas_centre * np.exp(-radius / 1.5)
    ratios = agn_ratios(params.dig_ratios)[:, None, None] * np.ones((1, n, n))
    flux = _emission_from_halpha(dig_obs, ratios, ebv_dig)
    model.emission.append(
        EmissionComponent("dig", flux, 0.8 * v_gas, np.full((n, n), params.sigma_dig))
    )

    # A Seyfert or LINER nucleus, scaled to the host's central Halpha after the PSF.
    if params.agn_type != "none":
        host = sum(c.flux[_HALPHA] for c in model.emission)
        sigma_ha = model.psf_sigma_at(ha_rest * (1 + params.z))
        host_centre = model.convolve(host, sigma_ha)[centre, centre]
        blob = gaussian_blob(n, (0.0, 0.0), 0.5)
        blob_centre = model.convolve(blob, sigma_ha)[centre, centre]
        nlr_ha = params.agn_strength * host_centre / blob_centre * blob
        ratios = agn_ratios(params.agn_ratios)[:, None, None]
        flux = _emission_from_halpha(nlr_ha, ratios * np.ones((1, n, n)), params.agn_ebv)
        model.emission.append(
            EmissionComponent("nlr", flux, np.zeros((n, n)), np.full((n, n), params.agn_sigma))
        )
    return model


def _emission_from_halpha(
    halpha_observed: np.ndarray, ratios: np.ndarray, ebv: np.ndarray | float
) -> np.ndarray:
    """Line fluxes after dust, given the dust-attenuated Halpha map and intrinsic ratios.

    ``ratios`` are intrinsic, relative to Halpha, shaped ``(35, n, n)``.
    """
    rest = rest_wavelengths()
    transmission = attenuation(rest[:, None, None], ebv)  # (35, n, n)
    intrinsic_halpha = halpha_observed / transmission[_HALPHA]
    return ratios * intrinsic_halpha[None] * transmission
