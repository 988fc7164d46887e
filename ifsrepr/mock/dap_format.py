"""Write mock emission-line maps in the MaNGA DR17 DAP ``MAPS`` format.

The layout follows the DR17 data model (``sdss/datamodel`` ``mangaMaps.md``;
DAP 3.1.0): the primary header holds the DRP keys and the DAP's (``DAPFRMT =
'MAPS'``, ``DAPTYPE``, ``SCINPVEL`` = cz, ``REFF``, ``ECOOPA``, ``ECOOELL``,
``EMLDB = 'ELPMPL11'`` ...), and every map has the cube's celestial WCS
written the way astropy writes it (``PC``/``CDELT``), the ``HDUCLASS`` block,
``MASKNAME = 'MANGA_DAPPIXMASK'`` and, for multi-channel extensions, the
channel names ``C01..C35`` (``'Ha-6564'`` ...).

A subset of the 63 DR17 extensions is written, the ones a line-map user
reads: SPX_SKYCOO, SPX_ELLCOO (4 channels), SPX_MFLUX(+_IVAR), SPX_SNR,
BINID (5 channels), STELLAR_VEL(+_IVAR, _MASK), EMLINE_GFLUX(+_IVAR, _MASK),
EMLINE_GVEL(+_IVAR, _MASK), EMLINE_GSIGMA(+_IVAR, _MASK) and
EMLINE_INSTSIGMA, all 35 DR17 lines. Every spaxel is its own bin (the
``SPX`` binning; DAPTYPE ``SPX-MILESHC-MASTARSSP``).

The values are the model's truth plus noise drawn from the same error
model as the cube (`ifsrepr.mock.synth.observe_lines`), not a fit to the
cube: fluxes are corrected for Galactic extinction, as the DAP's are,
velocities are relative to ``SCINPVEL``, and ``EMLINE_GSIGMA`` includes the
instrumental dispersion (subtract ``EMLINE_INSTSIGMA`` in quadrature), as in
DR17. Masks use ``MANGA_DAPPIXMASK``: NOCOV|LOWCOV|DONOTUSE outside the
bundle, LOWCOV|DONOTUSE on its edge, NOVALUE|DONOTUSE for lines outside the
observed wavelength range.
"""

from __future__ import annotations

import numpy as np
from astropy.cosmology import Planck18
from astropy.io import fits
from astropy.wcs import WCS

from ..bitmask import bit_value
from .drp_format import image_hdu, primary_cards
from .instrument import LOG10_STEP, spaxel_offsets, wavelength
from .model import GalaxyModel
from .nebular import LINE_NAMES
from .params import GalaxyParams
from .synth import LineMaps, correlated_noise, noise_variance

__all__ = ["DAPTYPE", "maps_filename", "maps_hdulist"]

#: Every spaxel analysed on its own, MILES-HC stellar kinematics, MaStar SSP continuum.
DAPTYPE = "SPX-MILESHC-MASTARSSP"
C_KMS = 299792.458
_NOCOV = bit_value("MANGA_DAPPIXMASK", "NOCOV", "LOWCOV", "DONOTUSE")
_LOWCOV = bit_value("MANGA_DAPPIXMASK", "LOWCOV", "DONOTUSE")
_NOVALUE = bit_value("MANGA_DAPPIXMASK", "NOVALUE", "DONOTUSE")
_AUTHOR = "ifsrepr mock survey (synthetic data in the DR17 DAP layout)"
_FLUX = "1E-17 erg/s/cm^2/spaxel"
_FLUXD = "1E-17 erg/s/cm^2/ang/spaxel"


def maps_filename(plateifu: str, daptype: str = DAPTYPE) -> str:
    """``manga-PLATE-IFU-MAPS-DAPTYPE.fits.gz``."""
    return f"manga-{plateifu}-MAPS-{daptype}.fits.gz"


def _wcs_cards(params: GalaxyParams, n: int, channels: int | None) -> list[tuple[str, object, str]]:
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [n / 2 + 1, n / 2 + 1]
    wcs.wcs.pc = [[-0.000138889, 0.0], [0.0, 0.000138889]]
    wcs.wcs.cdelt = [1.0, 1.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [params.ra, params.dec]
    wcs.wcs.radesys = "FK5"
    wcs.wcs.equinox = 2000.0
    header = wcs.to_header()
    cards = [(card.keyword, card.value, card.comment) for card in header.cards]
    if channels is not None:
        cards = [("WCSAXES", 3, "Number of coordinate axes")] + [
            c for c in cards if c[0] != "WCSAXES"
        ]
        cards += [
            ("CRPIX3", 1.0, "Pixel coordinate of reference point"),
            ("CDELT3", 1.0, "Coordinate increment at reference point"),
            ("CRVAL3", 1.0, "Coordinate value at reference point"),
            ("CTYPE3", "", "Undefined type"),
            ("CUNIT3", "", "Undefined units"),
        ]
    return cards


def _channel_cards(
    names: list[str], units: list[str] | None = None
) -> list[tuple[str, object, str]]:
    width = 2 if len(names) >= 10 else 1
    cards = []
    for i, name in enumerate(names, start=1):
        cards.append((f"C{i:0{width}d}", name, f"Data in channel {i}"))
        if units is not None:
            cards.append((f"U{i:0{width}d}", units[i - 1], f"Units of data in channel {i}"))
    return cards


def _class_cards(name: str, kind: str, has_mask: bool = True) -> list[tuple[str, object, str]]:
    base = [("HDUCLASS", "SDSS", "SDSS format class"), ("HDUCLAS1", "CUBE", "Data format")]
    if kind == "data":
        base.append(("HDUCLAS2", "DATA", ""))
        if has_mask is not None:
            base.append(("ERRDATA", f"{name}_IVAR", "Associated inv. variance extension"))
        if has_mask:
            base.append(("QUALDATA", f"{name}_MASK", "Associated quality extension"))
    elif kind == "ivar":
        base += [
            ("HDUCLAS2", "ERROR", ""),
            ("HDUCLAS3", "INVMSE", "Value is inverse mean-square error"),
            ("SCIDATA", name, "Associated data extension"),
        ]
        if has_mask:
            base.append(("QUALDATA", f"{name}_MASK", "Associated quality extension"))
    elif kind == "mask":
        base += [
            ("HDUCLAS2", "QUALITY", ""),
            ("HDUCLAS3", "FLAG32BIT", "32-bit mask"),
            ("SCIDATA", name, "Associated data extension"),
            ("ERRDATA", f"{name}_IVAR", "Associated inv. variance extension"),
        ]
    else:
        base.append(("HDUCLAS2", "DATA", ""))
    return base


def _map(
    data: np.ndarray,
    params: GalaxyParams,
    name: str,
    kind: str,
    *,
    unit: str | None = None,
    channels: list[tuple[str, object, str]] | None = None,
    has_mask: bool | None = True,
) -> fits.ImageHDU:
    n = data.shape[-1]
    cards = _wcs_cards(params, n, data.shape[0] if data.ndim == 3 else None)
    cards += [("AUTHOR", _AUTHOR, ""), ("MASKNAME", "MANGA_DAPPIXMASK", "")]
    cards += channels or []
    if unit is not None:
        cards.append(("BUNIT", unit, "Unit of pixel value"))
    cards += _class_cards(name.removesuffix("_IVAR").removesuffix("_MASK"), kind, has_mask)
    return image_hdu(data, cards, name)


def _primary(model: GalaxyModel, daptype: str, snr_g: float) -> fits.PrimaryHDU:
    p = model.params
    drop = {"BSCALE", "BZERO", "BUNIT", "MASKNAME", "AUTHOR"}
    cards = [("AUTHOR", _AUTHOR, "")] + [c for c in primary_cards(p) if c[0] not in drop]
    cards += [
        ("MASKNAME", "MANGA_DAPPIXMASK", ""),
        ("VERSDAP", "3.1.0", "MaNGA DAP version"),
        ("DAPTYPE", daptype, "DAP analysis method"),
        ("DAPFRMT", "MAPS", "DAP data file format"),
        ("RDXQAKEY", "SNRG", "Method keyword"),
        ("ECOOPA", p.pa, "Position angle for ellip. coo"),
        ("ECOOELL", p.ell, "Ellipticity (1-b/a) for ellip. coo"),
        ("REFF", p.reff, ""),
        ("BINKEY", "SPX", "Spectal binning method keyword"),
        ("BINTYPE", "none", "Binning method"),
        ("GEXTLAW", "ODonnell", "Galactic extinction law"),
        ("RVGAL", 3.1, "Ratio of total to selective extinction, R(V)"),
        ("VSTEP", C_KMS * np.log(10.0) * LOG10_STEP, "Velocity step per spectral channel."),
        ("SCINPVEL", p.z * C_KMS, "Initial guess velocity"),
        ("SCINPSIG", 100.0, "Initial guess velocity dispersion"),
        ("EMLDB", "ELPMPL11", "Emission-line database keyword"),
        ("ELMETH", "sasuke", ""),
        ("SNRGMED", snr_g, "Median g-band SNR from 1-1.5 Re"),
        ("DAPQUAL", 0, "DAP quality bitmask"),
    ]
    header = fits.Header()
    for key, value, comment in cards:
        header.append((key, value, comment), end=True)
    return fits.PrimaryHDU(header=header)


def _g_band_continuum(model: GalaxyModel) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean g-band (4000-5400 A) flux density per spaxel after the PSF.

    Returns the mean, the variance of the mean, and the number of channels.
    """
    wave = wavelength()
    g = np.flatnonzero((wave >= 4000.0) & (wave <= 5400.0))
    sigma = model.psf_sigma_at(4702.5)
    mean = np.zeros((model.n, model.n))
    grid = 10.0 ** (np.log10(3000.0) + LOG10_STEP * np.arange(model.continuum[0].spectrum.size))
    for component in model.continuum:
        rest = wave[g] / (1 + model.z)
        level = np.mean(np.interp(rest, grid, component.spectrum) * model.galactic[g])
        mean += level * model.convolve(component.amplitude, sigma)
    mean *= model.throughput
    variance = noise_variance(model, g, np.broadcast_to(mean, (g.size, model.n, model.n)))
    return mean, variance.sum(axis=0) / g.size**2, g.size


def maps_hdulist(
    model: GalaxyModel, lines: LineMaps, rng: np.random.Generator, *, daptype: str = DAPTYPE
) -> fits.HDUList:
    """The DR17 MAPS `~astropy.io.fits.HDUList` of a mock galaxy (checksums not yet added).

    Parameters
    ----------
    model : GalaxyModel
    lines : LineMaps
        From `ifsrepr.mock.synth.observe_lines`.
    rng : numpy.random.Generator
        Draws the noise of the kinematic and continuum maps.
    daptype : str
        Written as ``DAPTYPE``.
    """
    p = model.params
    n = model.n
    foot = model.footprint
    covered, lowcov = foot.covered, foot.lowcov
    spaxel_mask = np.where(covered, np.where(lowcov, _LOWCOV, 0), _NOCOV).astype(np.int32)

    east, north = spaxel_offsets(n)
    skycoo = np.stack([east, north]).astype(np.float32)
    theta = np.radians(p.pa)
    major = east * np.sin(theta) + north * np.cos(theta)
    minor = -east * np.cos(theta) + north * np.sin(theta)
    radius = np.hypot(major, minor / max(1 - p.ell, 0.05))
    azimuth = np.degrees(np.arctan2(minor / max(1 - p.ell, 0.05), major)) % 360.0
    kpc_h = Planck18.kpc_proper_per_arcmin(p.z).value / 60.0 * Planck18.h
    ellcoo = np.stack([radius, radius / p.reff, radius * kpc_h, azimuth]).astype(np.float32)

    mflux, mvar, n_channels = _g_band_continuum(model)
    mvar = np.where(covered, mvar, 1.0)
    noise = correlated_noise(rng, (2, n, n)).astype(np.float64)
    mflux_obs = np.where(covered, mflux + np.sqrt(mvar) * noise[0], 0.0)
    mflux_ivar = np.where(covered, 1.0 / mvar, 0.0)
    # S/N per spectral pixel: one pixel's variance is n_channels times that of the mean.
    snr = np.where(covered, mflux / np.sqrt(mvar * n_channels), 0.0)
    ring = covered & (ellcoo[1] >= 1.0) & (ellcoo[1] < 1.5)
    snr_g = float(np.median(snr[ring])) if ring.any() else 0.0

    binid = np.where(covered, np.cumsum(covered.ravel()).reshape(n, n) - 1, -1).astype(np.int32)
    binid = np.repeat(binid[None], 5, axis=0)

    # Stellar velocity: light-weighted rotation of the continuum components.
    sigma_g = model.psf_sigma_at(4702.5)
    weight = sum(model.convolve(c.amplitude, sigma_g) for c in model.continuum)
    moment = sum(
        model.convolve(c.amplitude * c.velocity, sigma_g)
        for c in model.continuum
        if c.velocity is not None
    )
    stellar_v = np.where(weight > 0, moment / np.where(weight > 0, weight, 1.0), 0.0)
    # Roughly what pPXF achieves on MaNGA spectra: ~12 km/s at S/N 20 per pixel.
    stellar_err = np.clip(250.0 / np.maximum(snr, 1e-3), 3.0, 500.0)
    stellar_obs = np.where(covered, stellar_v + stellar_err * noise[1], 0.0)
    stellar_ivar = np.where(covered, 1.0 / stellar_err**2, 0.0)

    # Emission-line kinematics with approximate Cramer-Rao errors of a Gaussian fit.
    total_sigma = np.sqrt(
        lines.sigma.astype(np.float64) ** 2 + lines.instrumental_sigma[:, None, None] ** 2
    )
    line_snr = np.maximum(lines.flux * np.sqrt(lines.ivar), 1e-3)
    vel_err = np.clip(np.sqrt(2.0) * total_sigma / line_snr, 0.5, 1000.0)
    sig_err = np.clip(total_sigma / line_snr, 0.5, 1000.0)
    kin_noise = correlated_noise(rng, (2, len(LINE_NAMES), n, n)).astype(np.float64)
    gvel = np.where(lines.mask, 0.0, lines.velocity + vel_err * kin_noise[0])
    gsig = np.where(lines.mask, 0.0, np.abs(total_sigma + sig_err * kin_noise[1]))
    gvel_ivar = np.where(lines.mask, 0.0, 1.0 / vel_err**2)
    gsig_ivar = np.where(lines.mask, 0.0, 1.0 / sig_err**2)
    instsigma = np.broadcast_to(lines.instrumental_sigma[:, None, None], lines.flux.shape)

    line_mask = np.broadcast_to(spaxel_mask, lines.flux.shape).copy()
    out_of_range = ~lines.valid
    line_mask[out_of_range] = np.where(covered, _NOVALUE, _NOCOV)

    names = list(LINE_NAMES)
    emline = _channel_cards(names)
    f4 = np.float32
    hdus = [
        _primary(model, daptype, snr_g),
        _map(skycoo, p, "SPX_SKYCOO", "plain", unit="arcsec",
             channels=_channel_cards(["On-sky X", "On-sky Y"])),
        _map(ellcoo, p, "SPX_ELLCOO", "plain", channels=_channel_cards(
            ["Elliptical radius", "R/Re", "R h/kpc", "Elliptical azimuth"],
            ["arcsec", "", "kpc/h", "degrees"])),
        _map(mflux_obs.astype(f4), p, "SPX_MFLUX", "data", unit=_FLUXD, has_mask=False),
        _map(mflux_ivar.astype(f4), p, "SPX_MFLUX_IVAR", "ivar", unit=f"({_FLUXD})^{{-2}}",
             has_mask=False),
        _map(snr.astype(f4), p, "SPX_SNR", "plain"),
        _map(binid, p, "BINID", "plain", channels=_channel_cards(
            ["Binned spectra", "Stellar continua", "Em. line moments", "Em. line models",
             "Spectral indices"])),
        _map(stellar_obs.astype(f4), p, "STELLAR_VEL", "data", unit="km/s"),
        _map(stellar_ivar.astype(f4), p, "STELLAR_VEL_IVAR", "ivar", unit="(km/s)^{-2}"),
        _map(spaxel_mask, p, "STELLAR_VEL_MASK", "mask"),
        _map(lines.flux, p, "EMLINE_GFLUX", "data", unit=_FLUX, channels=emline),
        _map(lines.ivar, p, "EMLINE_GFLUX_IVAR", "ivar", unit=f"({_FLUX})^{{-2}}", channels=emline),
        _map(line_mask, p, "EMLINE_GFLUX_MASK", "mask", channels=emline),
        _map(gvel.astype(f4), p, "EMLINE_GVEL", "data", unit="km/s", channels=emline),
        _map(gvel_ivar.astype(f4), p, "EMLINE_GVEL_IVAR", "ivar", unit="(km/s)^{-2}",
             channels=emline),
        _map(line_mask, p, "EMLINE_GVEL_MASK", "mask", channels=emline),
        _map(gsig.astype(f4), p, "EMLINE_GSIGMA", "data", unit="km/s", channels=emline),
        _map(gsig_ivar.astype(f4), p, "EMLINE_GSIGMA_IVAR", "ivar", unit="(km/s)^{-2}",
             channels=emline),
        _map(line_mask, p, "EMLINE_GSIGMA_MASK", "mask", channels=emline),
        _map(np.ascontiguousarray(instsigma, dtype=f4), p, "EMLINE_INSTSIGMA", "plain",
             unit="km/s", channels=emline),
    ]  # fmt: skip
    return fits.HDUList(hdus)
