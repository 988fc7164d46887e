"""The MaNGA instrument as the mock sees it: wavelength grid, IFU footprints, PSF.

Everything here is fixed by the DR17 data model or by the hardware:

* the log-linear vacuum wavelength grid of every LOGCUBE (4563 channels,
  ``log10(lambda) = log10(3621.59598486) + 1e-4 i``, about 69 km/s a channel);
* 0.5" square spaxels and the cube size of each fibre bundle (19 fibres:
  34x34 spaxels, 37: 42x42, 61: 54x54, 91: 64x64, 127: 74x74);
* the hexagonal bundles of 2" fibres on a 2.5" pitch (Drory et al. 2015,
  AJ 149, 77), corners pointing east and west; the cube's coverage extends
  1.75" beyond the outer fibres because of the three-point dither and the
  reconstruction kernel (Law et al. 2016, AJ 152, 83), with a LOWCOV edge
  band 1.25" wide (both measured on the real 7815-3702 maps);
* a reconstructed PSF of about 2.5" FWHM that varies only weakly with
  wavelength (the DR17 headers give e.g. GFWHM=2.436, ZFWHM=2.409), because the
  2" fibres dominate the seeing.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "BAND_WAVELENGTHS",
    "CRVAL3",
    "CD3_3",
    "LOG10_STEP",
    "N_WAVE",
    "SPAXEL_ARCSEC",
    "IFU_SIZES",
    "Footprint",
    "cube_size",
    "footprint",
    "fibre_positions",
    "n_fibres",
    "psf_chunks",
    "psf_fwhm",
    "wavelength",
    "pixel_edges",
]

#: Number of LOGCUBE channels.
N_WAVE = 4563
#: Wavelength of the first channel (vacuum Angstrom), as in the DR17 FLUX header.
CRVAL3 = 3621.59598486
#: Header dispersion of the first channel (Angstrom), ``CRVAL3 * ln(10) * 1e-4``.
CD3_3 = 0.833903304339
#: Channel step in log10(wavelength).
LOG10_STEP = 1e-4
#: Spaxel size in arcsec.
SPAXEL_ARCSEC = 0.5
#: Cube side in spaxels, by number of fibres in the bundle.
IFU_SIZES = {19: 34, 37: 42, 61: 54, 91: 64, 127: 74}
#: Effective wavelengths of the g, r, i, z bands used for the DRP's ``?FWHM``
#: keys and the reconstructed images (the ``BBWAVE`` values of the DR17 cubes).
BAND_WAVELENGTHS = {"g": 4702.50, "r": 6176.58, "i": 7496.12, "z": 8946.71}

#: Fibre core diameter and centre-to-centre pitch on the sky (arcsec).
FIBRE_DIAMETER = 2.0
FIBRE_PITCH = 2.5
#: How far the cube's coverage reaches beyond the outer fibre edges (arcsec):
#: the 1.44" dither offsets plus the reconstruction kernel. Calibrated on the
#: real 37-fibre MAPS of 7815-3702 (1114 covered spaxels, 229 LOWCOV); the
#: mock's 37-fibre footprint has 1079 and 240.
COVERAGE_MARGIN = 1.75
#: Width of the edge band flagged LOWCOV (arcsec); see `COVERAGE_MARGIN`.
LOWCOV_WIDTH = 1.25
#: Channels redder than this carry no data in real cubes (the last five or so
#: channels of every real spectrum have IVAR=0 and MASK=LOWCOV|DONOTUSE).
RED_CUTOFF = 10343.0
#: Number of wavelength chunks over which the PSF is taken as constant.
N_PSF_CHUNKS = 8
#: Logarithmic slope of the reconstructed PSF FWHM with wavelength. Fitting the
#: DR17 example (GFWHM 2.436, ZFWHM 2.409) and the DR13 one (2.504, 2.351) gives
#: -0.02 to -0.10; seeing alone (lambda^-0.2) is diluted by the fibre size.
PSF_SLOPE = -0.06


@functools.cache
def wavelength() -> np.ndarray:
    """Vacuum wavelength of every LOGCUBE channel (Angstrom, float64).

    Examples
    --------
    >>> from ifsrepr.mock.instrument import wavelength
    >>> w = wavelength()
    >>> w.size, round(float(w[0]), 3), round(float(w[-1]), 3)
    (4563, 3621.596, 10353.805)
    """
    wave = 10.0 ** (np.log10(CRVAL3) + LOG10_STEP * np.arange(N_WAVE))
    wave.flags.writeable = False
    return wave


@functools.cache
def pixel_edges() -> np.ndarray:
    """Channel edges (Angstrom), geometric midpoints of the log grid; ``N_WAVE + 1`` values."""
    edges = 10.0 ** (np.log10(CRVAL3) + LOG10_STEP * (np.arange(N_WAVE + 1) - 0.5))
    edges.flags.writeable = False
    return edges


def n_fibres(ifudesign: int) -> int:
    """Fibres in a bundle from its IFUDESIGN (``12705`` -> 127)."""
    fibres = int(ifudesign) // 100
    if fibres not in IFU_SIZES:
        raise ValueError(f"IFUDESIGN {ifudesign} is not a MaNGA science bundle")
    return fibres


def cube_size(ifudesign: int) -> int:
    """Side of the cube in spaxels for an IFUDESIGN.

    Examples
    --------
    >>> from ifsrepr.mock.instrument import cube_size
    >>> cube_size(1901), cube_size(12704)
    (34, 74)
    """
    return IFU_SIZES[n_fibres(ifudesign)]


def _n_rings(fibres: int) -> int:
    # A hexagonal bundle of r rings around a central fibre holds 1 + 3r(r+1) fibres.
    rings = int(round((-3 + np.sqrt(9 + 12 * (fibres - 1))) / 6))
    if 1 + 3 * rings * (rings + 1) != fibres:
        raise ValueError(f"{fibres} fibres do not make a hexagonal bundle")
    return rings


def spaxel_offsets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """On-sky offsets (arcsec) of each spaxel centre from the cube centre.

    Returns ``(east, north)``, each shaped ``(n, n)`` in numpy ``[y, x]``
    order. The cube centre is pixel ``n // 2`` (FITS ``CRPIX = n/2 + 1``);
    x grows toward the west (``CD1_1 < 0``), y toward the north.
    """
    index = (np.arange(n) - n // 2) * SPAXEL_ARCSEC
    east = np.broadcast_to(-index[None, :], (n, n))
    north = np.broadcast_to(index[:, None], (n, n))
    return east, north


def _hex_radius(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """Hexagonal 'radius': equals R on a hexagon of circumradius R with corners on the E-W axis."""
    x, y = np.abs(east), np.abs(north)
    return np.maximum(y * 2 / np.sqrt(3), x + y / np.sqrt(3))


class Footprint:
    """Where a bundle's cube has data: coverage weight and flags per spaxel.

    Attributes
    ----------
    n : int
        Cube side in spaxels.
    covered : ndarray of bool
        Spaxels with data (the complement is flagged NOCOV).
    lowcov : ndarray of bool
        Covered spaxels in the outer edge band (flagged LOWCOV).
    coverage : ndarray of float
        Relative exposure depth (1 inside, falling to 0.4 at the edge, 0
        outside); the noise variance scales as its inverse.
    radius : float
        Circumradius of the covered hexagon (arcsec).
    """

    def __init__(self, ifudesign: int) -> None:
        fibres = n_fibres(ifudesign)
        self.n = IFU_SIZES[fibres]
        self.rings = _n_rings(fibres)
        self.radius = self.rings * FIBRE_PITCH + FIBRE_DIAMETER / 2 + COVERAGE_MARGIN
        east, north = spaxel_offsets(self.n)
        rho = _hex_radius(east, north)
        self.covered = rho <= self.radius
        self.lowcov = self.covered & (rho > self.radius - LOWCOV_WIDTH)
        # Depth falls over the outer 1.5" where fewer dithered fibres overlap.
        depth = np.clip((self.radius - rho) / 1.5, 0.0, 1.0)
        self.coverage = np.where(self.covered, 0.4 + 0.6 * depth, 0.0)

    def __repr__(self) -> str:
        return (
            f"<Footprint {self.n}x{self.n}: {int(self.covered.sum())} covered spaxels, "
            f"{int(self.lowcov.sum())} LOWCOV>"
        )


@functools.cache
def footprint(ifudesign: int) -> Footprint:
    """The (cached) `Footprint` of a bundle."""
    return Footprint(ifudesign)


def fibre_positions(ifudesign: int) -> np.ndarray:
    """On-sky (east, north) positions (arcsec) of the bundle's fibres, shaped ``(n_fibres, 2)``.

    The fibres sit on a hexagonal lattice of pitch 2.5" with rows along the
    east-west axis, so the bundle's corners point east and west, as the
    footprint does.
    """
    rings = _n_rings(n_fibres(ifudesign))
    points = []
    for j in range(-rings, rings + 1):
        for i in range(-rings, rings + 1):
            if abs(i + j) <= rings:
                points.append(((i + j / 2) * FIBRE_PITCH, j * np.sqrt(3) / 2 * FIBRE_PITCH))
    return np.asarray(points)


def psf_fwhm(wave: np.ndarray | float, fwhm_r: float) -> np.ndarray:
    """Reconstructed PSF FWHM (arcsec) at ``wave`` for an r-band FWHM ``fwhm_r``."""
    return fwhm_r * (np.asarray(wave) / BAND_WAVELENGTHS["r"]) ** PSF_SLOPE


@functools.cache
def psf_chunks() -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` channel ranges over which the mock holds the PSF constant.

    Eight chunks of about 570 channels: the FWHM changes by under 1% within
    one, far below how well real PSFs are known.
    """
    bounds = np.linspace(0, N_WAVE, N_PSF_CHUNKS + 1).round().astype(int)
    return tuple((int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def chunk_of_channel(channel: int) -> int:
    """Index of the PSF chunk holding ``channel``."""
    for i, (start, stop) in enumerate(psf_chunks()):
        if start <= channel < stop:
            return i
    raise IndexError(f"channel {channel} is outside the {N_WAVE}-channel grid")


def chunk_sigma_pixels(fwhm_r: float) -> np.ndarray:
    """Gaussian PSF sigma (spaxels) of each PSF chunk, at the chunk's central wavelength."""
    wave = wavelength()
    centres = [wave[(start + stop) // 2] for start, stop in psf_chunks()]
    return psf_fwhm(np.asarray(centres), fwhm_r) / 2.3548200450309493 / SPAXEL_ARCSEC
