"""Forward-model a MaNGA cube from emission-line maps: the inverse of extraction.

Given a DAP MAPS file (Gaussian line fluxes, velocities and dispersions per
spaxel), `cube_from_maps` builds the LOGCUBE those maps describe: every
fitted line as a Gaussian integrated over MaNGA's log-lambda channels, on a
continuum scaled to the MAPS file's g-band flux (``SPX_MFLUX``), with noise at
the MAPS file's g-band S/N per channel (``SPX_SNR``). Extracting lines from
that cube and comparing with ``EMLINE_GFLUX`` tests an extractor against the
real DAP; `ifsrepr.mock` uses the same idea for whole mock surveys.
"""

from __future__ import annotations

import os

import astropy.units as u
import numpy as np
from astropy.io import fits
from scipy.special import ndtr

from ..cube import IFSCube
from ..io._fits import open_fits
from ..io.manga_maps import channel_names, line_for_channel
from ..units import parse_bunit
from .grid import SPEED_OF_LIGHT_KMS, channel_edges

__all__ = ["MANGA_WAVELENGTH", "cube_from_maps", "render_lines"]

#: The MaNGA LOGCUBE wavelength grid (vacuum Å): 4563 channels, 1e-4 dex apart.
MANGA_WAVELENGTH = 10 ** (np.log10(3621.59598486) + 1e-4 * np.arange(4563))


def _flat_continuum(wave: np.ndarray) -> np.ndarray:
    """A gently red continuum shape, normalised to 1 at 4700 Å (the g band)."""
    return (wave / 4700.0) ** 0.5


def render_lines(
    rest_wavelengths: np.ndarray,
    line_flux: np.ndarray,
    velocity: np.ndarray,
    sigma: np.ndarray,
    redshift: float,
    *,
    wave: np.ndarray = MANGA_WAVELENGTH,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian emission lines integrated over the channels of ``wave``.

    Parameters
    ----------
    rest_wavelengths : array, shape (L,)
        Vacuum rest wavelengths (Å).
    line_flux : array, shape (L, ny, nx)
        Integrated flux of each line.
    velocity, sigma : array, shape (ny, nx) or (L, ny, nx)
        Line-of-sight velocity relative to ``redshift`` and observed
        (instrumental included) dispersion, both km/s.
    redshift : float
        Systemic redshift.
    wave : array, shape (n_wave,)
        Channel centres (Å); widths follow from `channel_edges`.
    out : array, shape (n_wave, ny, nx), optional
        Added to in place (e.g. a continuum); a new zero array otherwise.

    Returns
    -------
    array, shape (n_wave, ny, nx)
        Flux density per Å.

    Examples
    --------
    Halpha of flux 100 in a 1x2 map, at z = 0.02 and 50 km/s on either side,
    on the MaNGA grid; the channels add up to the line flux:

    >>> import numpy as np
    >>> from ifsrepr.extraction.forward import MANGA_WAVELENGTH, render_lines
    >>> flux = np.full((1, 1, 2), 100.0)
    >>> velocity = np.array([[-50.0, 50.0]])
    >>> model = render_lines([6564.61], flux, velocity, 70.0, 0.02)
    >>> model.shape
    (4563, 1, 2)
    >>> widths = np.gradient(MANGA_WAVELENGTH)[:, None, None]
    >>> (model * widths).sum(axis=0).round(3)
    array([[100., 100.]])
    >>> MANGA_WAVELENGTH[model.argmax(axis=0)].round(1)  # the peak channels
    array([[6694.2, 6697.3]])
    """
    n_lines, ny, nx = line_flux.shape
    velocity = np.broadcast_to(velocity, (n_lines, ny, nx))
    sigma = np.broadcast_to(sigma, (n_lines, ny, nx))
    edges = channel_edges(wave)
    widths = np.diff(edges)
    if out is None:
        out = np.zeros((wave.size, ny, nx))
    for rest, flux, v, dispersion in zip(rest_wavelengths, line_flux, velocity, sigma, strict=True):
        mu = rest * (1 + redshift) * (1 + v / SPEED_OF_LIGHT_KMS)
        s = mu * np.where(dispersion > 0, dispersion, 100.0) / SPEED_OF_LIGHT_KMS
        # Only the channels within 8 sigma of the line are touched.
        lo = np.searchsorted(wave, (mu - 8 * s).min())
        hi = np.searchsorted(wave, (mu + 8 * s).max())
        if hi <= lo:
            continue
        profile = ndtr((edges[lo + 1 : hi + 1, None, None] - mu) / s) - ndtr(
            (edges[lo:hi, None, None] - mu) / s
        )
        out[lo:hi] += flux * profile / widths[lo:hi, None, None]
    return out


def cube_from_maps(
    maps_path: str | os.PathLike,
    *,
    continuum: np.ndarray | None = None,
    noise: bool = True,
    seed: int = 0,
) -> tuple[IFSCube, dict[str, np.ndarray]]:
    """Build the MaNGA cube that a DAP MAPS file describes.

    Parameters
    ----------
    maps_path : path-like
        A DAP MAPS file (DR15 or DR17 layout).
    continuum : array, optional
        Continuum shape on `MANGA_WAVELENGTH` in the observed frame, scaled
        per spaxel to ``SPX_MFLUX`` at 4700 Å (g band). Defaults to a smooth
        power law.
    noise : bool
        Add Gaussian noise of standard deviation ``SPX_MFLUX / SPX_SNR`` per
        channel (the DAP's g-band S/N per channel), and set IVAR to match.
    seed : int
        Seed of the noise.

    Returns
    -------
    cube : IFSCube
        With the MAPS redshift (``SCINPVEL / c``) and plate-IFU.
    truth : dict
        ``"flux"``: the (n_lines, ny, nx) Gaussian fluxes put in, ``"lines"``:
        their names, ``"usable"``: where the DAP maps are not DONOTUSE.

    Examples
    --------
    >>> import ifsrepr
    >>> from ifsrepr.extraction.forward import cube_from_maps
    >>> path = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    >>> cube, truth = cube_from_maps(path, noise=False)  # noise=True (default) adds noise
    >>> cube
    <IFSCube 7815-3702: 4563 channels (3621.6-10353.8 Angstrom) x 42 x 42 spaxels, z=0.02938, ...>
    >>> truth["flux"].shape, str(truth["lines"][0])
    ((22, 42, 42), 'OII-3727')
    """
    with open_fits(maps_path) as hdus:
        flux_hdu = hdus["EMLINE_GFLUX"]
        names = channel_names(flux_hdu.header, flux_hdu.data.shape[0], filename=str(maps_path))
        line_flux = np.nan_to_num(np.asarray(flux_hdu.data, float))
        velocity = np.nan_to_num(np.asarray(hdus["EMLINE_GVEL"].data, float))
        sigma = np.nan_to_num(np.asarray(hdus["EMLINE_GSIGMA"].data, float))
        bits = np.asarray(hdus["EMLINE_GFLUX_MASK"].data)
        mean_flux = np.nan_to_num(np.asarray(hdus["SPX_MFLUX"].data, float))
        snr = np.nan_to_num(np.asarray(hdus["SPX_SNR"].data, float))
        primary = hdus[0].header
        wcs_header = hdus["SPX_MFLUX"].header.copy()
        line_unit = parse_bunit(flux_hdu.header["BUNIT"], filename=str(maps_path))
    redshift = float(primary["SCINPVEL"]) / SPEED_OF_LIGHT_KMS
    usable = (bits & (1 << 30)) == 0
    covered = ((bits & 1) == 0).all(axis=0)  # NOCOV is a property of the spaxel
    wave = MANGA_WAVELENGTH
    if continuum is None:
        continuum = _flat_continuum(wave)
    scale = np.interp(4700.0, wave, continuum)
    model = (continuum / scale)[:, None, None] * mean_flux[None]

    # Lines where the DAP fit is usable; elsewhere the flux is the continuum only.
    put_in = np.where(usable, line_flux, 0.0)
    rest = np.array([line_for_channel(name).rest_wavelength.to_value(u.AA) for name in names])
    render_lines(rest, put_in, velocity, sigma, redshift, wave=wave, out=model)

    observed = (snr > 0) & (mean_flux > 0) & covered
    sigma_noise = np.divide(mean_flux, snr, out=np.zeros_like(mean_flux), where=observed)
    ivar = np.divide(1.0, sigma_noise**2, out=np.zeros_like(mean_flux), where=observed)
    ivar = np.broadcast_to(ivar, model.shape).astype(np.float32)
    flux = model
    if noise:
        rng = np.random.default_rng(seed)
        flux = model + rng.standard_normal(model.shape) * sigma_noise[None]
    mask = np.broadcast_to(~covered | (ivar == 0), model.shape)
    unit = line_unit / u.AA
    cube = IFSCube(
        flux.astype(np.float32) * unit,
        wave * u.AA,
        ivar=ivar,
        mask=mask,
        wcs=fits.Header(wcs_header),
        redshift=redshift,
        meta={"plateifu": str(primary.get("PLATEIFU", "")).strip(), "source": "cube_from_maps"},
    )
    return cube, {"flux": put_in, "lines": np.array(names), "usable": usable}
