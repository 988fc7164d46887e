"""Small MaNGA DRP cubes in the real DR17 file layout, for tests and benchmarks.

`write_manga_cube` writes a LOGCUBE (or LINCUBE) with every HDU of the DR17
data model (``sdss/datamodel:datamodel/products/md/mangaCube.md``): PRIMARY,
FLUX, IVAR, MASK, LSFPOST, LSFPRE, WAVE, SPECRES, SPECRESD, PRESPECRES,
PRESPECRESD, OBSINFO, GIMG..ZIMG, GPSF..ZPSF and GCORREL..ZCORREL, in that
order, with the real header keys (values of the DR17 cube 8485-1901). Only the
pixel values are made up: a continuum with an H-alpha/[NII] complex, noise
consistent with IVAR, and MASK bits laid out as the DRP sets them (uncovered
corners ``NOCOV|LOWCOV|DONOTUSE``, a ``LOWCOV|DONOTUSE`` rim, one
``FORESTAR|DONOTUSE`` spaxel).

Keyword arguments break the file in the ways the readers must handle (missing
extensions, NaNs, zero IVAR, a shifted WAVE, an unknown BUNIT). The older
DR13-DR16 layout (``DISP``/``PREDISP`` instead of ``LSFPOST``/``LSFPRE``) is
available too; the genuine DR13 headers live in ``tests/data`` (see its
PROVENANCE.md).

`write_fits_cube` writes non-MaNGA cubes laid out like MUSE (empty primary,
``DATA`` + ``STAT`` + ``DQ``), CALIFA (cube in the primary, ``ERROR`` and
``BADPIX``) and SAMI (cube in the primary, ``VARIANCE``).

This module is test support, not part of the package; the benchmark script
imports it too.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = [
    "LOG_CRVAL",
    "N_WAVE",
    "CubeTruth",
    "log_wavelengths",
    "lin_wavelengths",
    "manga_primary_header",
    "write_manga_cube",
    "write_fits_cube",
    "gzip_file",
]

#: First wavelength of every MaNGA LOGCUBE (vacuum Angstrom) and the channel count.
LOG_CRVAL = 3621.59598486
N_WAVE = 4563
#: CD3_3 as the DRP writes it: CRVAL3 * ln(10) * 1e-4.
LOG_CD3_3 = 0.833903304339
#: The LINCUBE grid is not verified against a real file here (see the notes).
LIN_CRVAL, LIN_STEP, LIN_N_WAVE = 3622.0, 1.0, 6732

NOCOV, LOWCOV, DEADFIBER, FORESTAR, DONOTUSE = 1, 2, 4, 8, 1024
#: The CRITICAL bit of DRP3QUAL.
CRITICAL_DRP3QUAL = 1 << 30

# The DR17 primary header of 8485-1901, in file order (sdss/datamodel mangaCube.md).
_PRIMARY_CARDS: list[tuple[str, object, str]] = [
    ("AUTHOR", "Brian Cherinka & David Law <bcherinka@stsci.edu, dlaw@stsci.edu>", ""),
    ("VERSDRP2", "v3_1_1", "MaNGA DRP version (2d processing)"),
    ("VERSDRP3", "v3_1_1", "MaNGA DRP Version (3d processing)"),
    ("VERSPLDS", "v5_1", "Platedesign Version"),
    ("VERSFLAT", "v1_33", "Specflat Version"),
    ("VERSCORE", "v1_9_1", "MaNGAcore Version"),
    ("VERSPRIM", "v2_9", "MaNGA Preimaging Version"),
    ("VERSUTIL", "v5_5_36", "Version of idlutils"),
    ("VERSIDL", "x86_64 linux unix linux 7.1.1 Aug 21 2009 64 64", "Version of IDL"),
    ("BSCALE", 1.0, "Intensity unit scaling"),
    ("BZERO", 0.0, "Intensity zeropoint"),
    ("BUNIT", "1E-17 erg/s/cm^2/Angstrom/spaxel", "Specific intensity (per spaxel)"),
    ("MASKNAME", "MANGA_DRP3PIXMASK", "Bits in sdssMaskbits.par used by mask extension"),
    ("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
    ("INSTRUME", "MaNGA", "SDSS-IV MaNGA IFU"),
    ("SRVYMODE", "MaNGA dither", "Survey leading this observation and its mode"),
    ("PLATETYP", "APOGEE-2&MaNGA", "Type of plate (e.g. MaNGA, APOGEE-2&MANGA)"),
    ("OBJSYS", "ICRS", "The TCC objSys"),
    ("EQUINOX", 2000.0, ""),
    ("RADESYS", "FK5", ""),
    ("LAMPLIST", "lamphgcdne.dat", ""),
    ("TPLDATA", "BOSZ_3000-11000A.fits", ""),
    ("NEXP", 9, "Total number of exposures"),
    ("EXPTIME", 8100.87, "Total exposure time (seconds)"),
    ("BLUESN2", 18.6492, "Total SN2 in blue channel"),
    ("REDSN2", 39.4486, "Total SN2 in red channel"),
    ("AIRMSMIN", 1.03987, "Minimum airmass"),
    ("AIRMSMED", 1.04708, "Median airmass"),
    ("AIRMSMAX", 1.08221, "Maximum airmass"),
    ("SEEMIN", 1.17605, "Best guider seeing"),
    ("SEEMED", 1.30563, "Median guider seeing"),
    ("SEEMAX", 1.42456, "Worst guider seeing"),
    ("TRANSMIN", 0.80467, "Worst guider transparency"),
    ("TRANSMED", 0.831482, "Median guider transparency"),
    ("TRANSMAX", 0.839711, "Best guider transparency"),
    ("MJDMIN", 57132, "MJD of first exposure"),
    ("MJDMED", 57132, "MJD of median exposure"),
    ("MJDMAX", 57132, "MJD of last exposure"),
    ("DATE-OBS", "2015-04-20", "Date of median exposure"),
    ("MJDRED", 59186, "MJD of the reduction"),
    ("DATERED", "2020-12-03", "Date of the reduction"),
    ("MNGTARG1", 2336, "manga_target1 maskbit"),
    ("MNGTARG2", 0, "manga_target2 maskbit"),
    ("MNGTARG3", 0, "manga_target3 maskbit"),
    ("IFURA", 232.5447, "IFU R.A. (J2000 deg.)"),
    ("IFUDEC", 48.690201, "IFU Dec. (J2000 deg.)"),
    ("OBJRA", 232.544703894, "Object R.A. (J2000 deg.)"),
    ("OBJDEC", 48.6902009334, "Object Dec. (J2000 deg.)"),
    ("CENRA", 234.06426, "Plate center R.A. (J2000 deg.)"),
    ("CENDEC", 48.589874, "Plate center Dec. (J2000 deg.)"),
    ("PLATEID", 8485, "Current plate"),
    ("DESIGNID", 8980, "Current design"),
    ("IFUDSGN", 1901, "ifuDesign"),
    ("FRLPLUG", 29, "Plugged ferrule"),
    ("PLATEIFU", "8485-1901", "PLATEID-ifuDesign"),
    ("CARTID", "3", "Cart(s) used"),
    ("HARNAME", "ma060", "Harness name(s)"),
    ("METFILE", "ma060-56887-3.par", "IFU metrology file(s)"),
    ("MANGAID", "1-209232", "MaNGA ID number"),
    ("CATIDNUM", "1", "Primary target input catalog"),
    ("PLTTARG", "plateTargets-1.par", "plateTarget reference file"),
    ("DRP3QUAL", 0, "DRP-3d quality bitmask"),
    ("IFUGLON", 78.9550411299, "IFU Galactic longitude (deg)"),
    ("IFUGLAT", 52.6212190954, "IFU Galactic latitude (deg)"),
    ("EBVGAL", 0.0144335, "Galactic reddening E(B-V)"),
    ("GFWHM", 2.4364, "Reconstructed FWHM in g-band (arcsec)"),
    ("RFWHM", 2.43751, "Reconstructed FWHM in r-band (arcsec)"),
    ("IFWHM", 2.42862, "Reconstructed FWHM in i-band (arcsec)"),
    ("ZFWHM", 2.40892, "Reconstructed FWHM in z-band (arcsec)"),
]

#: Redshift of 8485-1901 (DRPall nsa_z, via marvin's test data); not in any cube header.
REDSHIFT_8485_1901 = 0.0407447


def log_wavelengths(n_wave: int = N_WAVE) -> np.ndarray:
    """The LOGCUBE grid: ``10**(log10(3621.59598486) + 1e-4 i)`` Angstrom (vacuum)."""
    return 10 ** (np.log10(LOG_CRVAL) + 1e-4 * np.arange(n_wave))


def lin_wavelengths(n_wave: int = LIN_N_WAVE) -> np.ndarray:
    """The LINCUBE grid assumed here: 1 Angstrom steps from 3622 Angstrom."""
    return LIN_CRVAL + LIN_STEP * np.arange(n_wave)


def manga_primary_header(
    *, plateifu: str = "8485-1901", mangaid: str = "1-209232", drp3qual: int = 0, **overrides
) -> fits.Header:
    """The DR17 primary header, for another plate-IFU if asked (keys as the DRP writes them)."""
    header = fits.Header()
    for key, value, comment in _PRIMARY_CARDS:
        header[key] = (value, comment)
    plate, ifu = plateifu.split("-")
    header["PLATEIFU"] = plateifu
    header["PLATEID"] = int(plate)
    header["IFUDSGN"] = int(ifu)
    header["MANGAID"] = mangaid
    header["DRP3QUAL"] = drp3qual
    for key, value in overrides.items():
        key = key.upper().replace("_", "-") if key.upper() == "DATE_OBS" else key.upper()
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    return header


def _celestial_cards(header: fits.Header, n: int, ra: float, dec: float) -> None:
    header["CRPIX1"] = (n / 2 + 1, "Reference pixel (1-indexed)")
    header["CRPIX2"] = (n / 2 + 1, "Reference pixel (1-indexed)")
    header["CRVAL1"] = ra
    header["CRVAL2"] = dec
    header["CD1_1"] = -0.000138889
    header["CD2_2"] = 0.000138889
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"


@dataclass
class CubeTruth:
    """What a fixture file holds, for comparison with what a reader returns."""

    path: Path
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray  #: the raw DRP3PIXMASK bits
    wave: np.ndarray
    primary: fits.Header
    flux_header: fits.Header
    extensions: list[str] = field(default_factory=list)

    @property
    def donotuse(self) -> np.ndarray:
        """Voxels with DONOTUSE or NOCOV set (what ``manga-cube`` masks)."""
        return (self.mask & (DONOTUSE | NOCOV)) != 0


def _footprint(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-spaxel bits: uncovered outside a hexagon, low coverage on its rim."""
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    # Hexagon with a flat top: distance in the three hexagonal directions.
    radius = np.maximum(np.abs(y), (np.abs(y) + np.sqrt(3) * np.abs(x)) / 2)
    outer = n / 2 - 0.01
    bits = np.zeros((n, n), dtype=np.int32)
    bits[radius > outer - 1] = LOWCOV | DONOTUSE
    bits[radius > outer] = NOCOV | LOWCOV | DONOTUSE
    # One spaxel covered by a foreground star (the DRP flags FORESTAR|DONOTUSE).
    bits[n // 2, n // 2 - 1] = FORESTAR | DONOTUSE
    return bits, radius


def _make_arrays(
    n: int, wave: np.ndarray, seed: int, redshift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spaxel_bits, radius = _footprint(n)
    light = np.exp(-radius / max(n / 6, 1.0)).astype(np.float32)  # exponential disc
    continuum = (1.0 + 0.3 * (wave / 6000.0 - 1.0)).astype(np.float32)
    lines = np.zeros(wave.size, dtype=np.float32)
    for rest, amplitude in ((6564.608, 3.0), (6585.27, 1.2), (6549.86, 0.4), (4862.683, 1.0)):
        centre = rest * (1 + redshift)
        sigma = centre * 100 / 299792.458  # 100 km/s
        lines += amplitude * np.exp(-0.5 * ((wave - centre) / sigma) ** 2).astype(np.float32)
    model = (continuum + lines)[:, None, None] * light[None] * np.float32(2.0)
    sigma = np.float32(0.1) + np.float32(0.05) * np.sqrt(np.abs(model))
    flux = (model + sigma * rng.standard_normal(model.shape, dtype=np.float32)).astype(np.float32)
    ivar = (1.0 / sigma**2).astype(np.float32)
    mask = np.broadcast_to(spaxel_bits, flux.shape).astype(np.int32)
    uncovered = (mask & NOCOV) != 0
    flux[uncovered] = 0.0
    ivar[uncovered] = 0.0
    return flux, ivar, mask


def _small_table(n_rows: int, columns: Iterable[tuple[str, str, object]]) -> fits.BinTableHDU:
    cols = [
        fits.Column(name=name, format=fmt, array=np.full(n_rows, value))
        for name, fmt, value in columns
    ]
    return fits.BinTableHDU.from_columns(cols)


def write_manga_cube(
    path: str | Path,
    *,
    n: int = 6,
    n_wave: int | None = None,
    plateifu: str = "8485-1901",
    mangaid: str = "1-209232",
    ra: float = 232.5447,
    dec: float = 48.690201,
    kind: str = "LOG",
    layout: str = "DR17",
    seed: int = 0,
    redshift: float = REDSHIFT_8485_1901,
    drp3qual: int = 0,
    bunit: str = "1E-17 erg/s/cm^2/Angstrom/spaxel",
    omit: Iterable[str] = (),
    nan_flux: int = 0,
    zero_ivar: bool = False,
    wave_shift: float = 0.0,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    compresslevel: int = 6,
) -> CubeTruth:
    """Write a MaNGA DRP cube in the real file layout and return what is in it.

    Parameters
    ----------
    path : path-like
        ``.fits`` or ``.fits.gz`` (gzip written with isal, as fast as the DRP's).
    n : int
        Spatial size (``n x n`` spaxels; real cubes are 34 to 74).
    n_wave : int, optional
        Channels; 4563 for LOG, 6732 for LIN by default.
    kind : {"LOG", "LIN"}
        Log-lambda (``CTYPE3='WAVE-LOG'``) or linear (``'WAVE'``) grid.
    layout : {"DR17", "DR15"}
        DR17 (``LSFPOST``/``LSFPRE``) or DR15/DR16 (``DISP``/``PREDISP``).
    omit : iterable of str
        Extension names to leave out (e.g. ``{"IVAR"}``).
    nan_flux : int
        Number of FLUX voxels set to NaN (inside the footprint).
    zero_ivar : bool
        Set IVAR to zero everywhere.
    wave_shift : float
        Added to the WAVE extension (Angstrom), so that it disagrees with the
        header WCS.
    arrays : (flux, ivar, mask), optional
        Use these instead of the made-up ones (shapes must match).
    """
    path = Path(path)
    kind = kind.upper()
    if kind == "LOG":
        n_wave = N_WAVE if n_wave is None else n_wave
        wave = log_wavelengths(n_wave)
    elif kind == "LIN":
        n_wave = LIN_N_WAVE if n_wave is None else n_wave
        wave = lin_wavelengths(n_wave)
    else:
        raise ValueError(f"kind must be LOG or LIN, not {kind!r}")
    if arrays is None:
        flux, ivar, mask = _make_arrays(n, wave, seed, redshift)
    else:
        flux, ivar, mask = (np.asarray(a) for a in arrays)
        n = flux.shape[-1]
    if nan_flux:
        rng = np.random.default_rng(seed + 1)
        inside = np.flatnonzero((mask & NOCOV).ravel() == 0)
        flux.ravel()[rng.choice(inside, size=nan_flux, replace=False)] = np.nan
    if zero_ivar:
        ivar[...] = 0.0

    primary = manga_primary_header(plateifu=plateifu, mangaid=mangaid, drp3qual=drp3qual)
    primary["IFURA"] = ra
    primary["IFUDEC"] = dec
    primary["OBJRA"] = ra
    primary["OBJDEC"] = dec
    primary["BUNIT"] = bunit
    if layout == "DR15":
        primary.remove("VERSPRIM")

    flux_header = primary.copy()
    flux_header["CTYPE3"] = "WAVE-LOG" if kind == "LOG" else "WAVE"
    flux_header["CRPIX3"] = (1, "Starting pixel (1-indexed)")
    flux_header["CRVAL3"] = (
        (LOG_CRVAL if kind == "LOG" else LIN_CRVAL),
        "Central wavelength of first pixel",
    )
    flux_header["CD3_3"] = (
        LOG_CD3_3 if kind == "LOG" else LIN_STEP,
        "Initial dispersion per pixel",
    )
    flux_header["CUNIT3"] = "Angstrom"
    _celestial_cards(flux_header, n, ra, dec)
    for key, value in (
        ("HDUCLASS", "SDSS"),
        ("HDUCLAS1", "CUBE"),
        ("HDUCLAS2", "DATA"),
        ("ERRDATA", "IVAR"),
        ("QUALDATA", "MASK"),
    ):
        flux_header[key] = value

    ivar_header = fits.Header(
        [
            ("HDUCLASS", "SDSS"),
            ("HDUCLAS1", "CUBE"),
            ("HDUCLAS2", "ERROR"),
            ("HDUCLAS3", "INVMSE", "Inverse variance"),
            ("SCIDATA", "FLUX"),
            ("QUALDATA", "MASK"),
        ]
    )
    mask_header = fits.Header(
        [
            ("HDUCLASS", "SDSS"),
            ("HDUCLAS1", "CUBE"),
            ("HDUCLAS2", "QUALITY"),
            ("HDUCLAS3", "FLAG64BIT"),
            ("SCIDATA", "FLUX"),
            ("ERRDATA", "IVAR"),
        ]
    )
    # The LSF (1-sigma, Angstrom): R ~ 2000 across the range.
    lsf = np.broadcast_to((wave / 2000 / 2.355).astype(np.float32)[:, None, None], flux.shape)
    specres = np.interp(wave, [3600, 10400], [1400.0, 2600.0])

    lsf_names = ("LSFPOST", "LSFPRE") if layout == "DR17" else ("DISP", "PREDISP")
    hdus: list[fits.hdu.base.ExtensionHDU] = [
        fits.ImageHDU(flux, flux_header, name="FLUX"),
        fits.ImageHDU(ivar, ivar_header, name="IVAR"),
        fits.ImageHDU(mask.astype(np.int32), mask_header, name="MASK"),
        fits.ImageHDU(lsf, name=lsf_names[0]),
        fits.ImageHDU(lsf * np.float32(0.95), name=lsf_names[1]),
        fits.ImageHDU(wave + wave_shift, name="WAVE"),
        fits.ImageHDU(specres, name="SPECRES"),
        fits.ImageHDU(specres * 0.02, name="SPECRESD"),
        fits.ImageHDU(specres * 1.05, name="PRESPECRES"),
        fits.ImageHDU(specres * 0.021, name="PRESPECRESD"),
    ]
    obsinfo = _small_table(
        int(primary["NEXP"]),
        [
            ("SLITFILE", "25A", "slitmap-8485-57132-01.par"),
            ("PLATEID", "J", int(primary["PLATEID"])),
            ("IFUDESIGN", "J", int(primary["IFUDSGN"])),
            ("MJD", "J", 57132),
            ("EXPTIME", "E", 900.1),
            ("SEEING", "E", 1.3),
            ("AIRMASS", "E", 1.05),
            ("DRP2QUAL", "J", 0),
        ],
    )
    obsinfo.name = "OBSINFO"
    hdus.append(obsinfo)
    image = flux[: min(n_wave, 200)].mean(axis=0).astype(np.float32)
    for band, fwhm in zip("GRIZ", ("GFWHM", "RFWHM", "IFWHM", "ZFWHM"), strict=True):
        header = fits.Header()
        _celestial_cards(header, n, ra, dec)
        for key in ("IFURA", "IFUDEC", "OBJRA", "OBJDEC"):
            header[key] = primary[key]
        header["BUNIT"] = "nanomaggies/pixel"
        header[fwhm] = primary[fwhm]
        hdus.append(fits.ImageHDU(image, header, name=f"{band}IMG"))
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    psf = np.exp(-0.5 * (x**2 + y**2) / (2.5 / 0.5 / 2.355) ** 2).astype(np.float32)
    for band in "GRIZ":
        hdus.append(fits.ImageHDU(psf / psf.sum(), name=f"{band}PSF"))
    for band, bbwave in zip("GRIZ", (4702.5, 6176.58, 7496.12, 8946.71), strict=True):
        table = _small_table(
            3,
            [
                ("INDXI_C1", "J", 0),
                ("INDXI_C2", "J", 0),
                ("INDXJ_C1", "J", 1),
                ("INDXJ_C2", "J", 0),
                ("RHOIJ", "D", 0.5),
            ],
        )
        table.header["BBWAVE"] = bbwave
        table.header["COVTYPE"] = "Correlation"
        table.header["COVSHAPE"] = f"({n * n},{n * n})"
        table.name = f"{band}CORREL"
        hdus.append(table)

    omitted = {name.upper() for name in omit}
    kept = [hdu for hdu in hdus if hdu.name not in omitted]
    hdulist = fits.HDUList([fits.PrimaryHDU(header=primary), *kept])
    _write(hdulist, path, compresslevel)
    return CubeTruth(
        path=path,
        flux=flux,
        ivar=ivar,
        mask=mask,
        wave=wave,
        primary=primary,
        flux_header=flux_header,
        extensions=["PRIMARY", *(hdu.name for hdu in kept)],
    )


def write_fits_cube(
    path: str | Path,
    *,
    style: str = "MUSE",
    shape: tuple[int, int, int] = (40, 5, 4),
    seed: int = 0,
    bunit: str | None = None,
    extra_primary: dict | None = None,
) -> CubeTruth:
    """Write a non-MaNGA 3-D cube in the layout of another instrument.

    Parameters
    ----------
    style : {"MUSE", "CALIFA", "SAMI", "BARE"}
        ``MUSE``: empty primary with the ESO keys that announce a cube
        (``INSTRUME='MUSE'``, ``HIERARCH ESO PRO CATG='DATACUBE_FINAL'``),
        then ``DATA`` (air wavelengths, ``CTYPE3='AWAV'``), ``STAT`` (variance)
        and ``DQ``. ``CALIFA``: the cube in the primary with ``ERROR``
        (sigma) and ``BADPIX``. ``SAMI``: the cube in the primary with
        ``VARIANCE``. ``BARE``: a primary cube with nothing else.

    Returns
    -------
    CubeTruth
        ``ivar`` is what the reader should derive from the uncertainty
        extension, and ``mask`` is True where the reader should mask.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    n_wave, ny, nx = shape
    style = style.upper()
    wcs = fits.Header()
    wcs["CTYPE1"], wcs["CTYPE2"] = "RA---TAN", "DEC--TAN"
    wcs["CUNIT1"], wcs["CUNIT2"] = "deg", "deg"
    wcs["CRPIX1"], wcs["CRPIX2"] = (nx + 1) / 2, (ny + 1) / 2
    wcs["CRVAL1"], wcs["CRVAL2"] = 150.1, 2.2
    wcs["CD1_1"], wcs["CD1_2"], wcs["CD2_1"], wcs["CD2_2"] = -0.2 / 3600, 0.0, 0.0, 0.2 / 3600
    wcs["CTYPE3"] = "AWAV" if style == "MUSE" else "WAVE"
    wcs["CUNIT3"] = "Angstrom"
    wcs["CRPIX3"] = 1.0
    wcs["CRVAL3"] = 4750.0 if style == "MUSE" else 3700.0
    wcs["CD3_3"] = 1.25 if style == "MUSE" else 2.0
    wave = wcs["CRVAL3"] + wcs["CD3_3"] * np.arange(n_wave)
    flux = rng.normal(10.0, 1.0, shape).astype(np.float32)
    sigma = np.full(shape, 0.5, dtype=np.float32)
    invalid = np.zeros(shape, dtype=bool)
    if bunit is None:
        bunit = {
            "MUSE": "10**(-20)*erg/s/cm**2/Angstrom",
            "CALIFA": "10^-16 erg/s/cm^2/Angstrom",
            "SAMI": "10**(-16) erg /s /cm**2 /angstrom /pixel",
        }.get(style, "erg/s/cm2/Angstrom")

    primary = fits.Header()
    if style == "MUSE":
        primary["TELESCOP"] = "ESO-VLT-U4"
        primary["INSTRUME"] = "MUSE"
        primary["OBJECT"] = "NGC 4650A"
        primary["HIERARCH ESO PRO CATG"] = "DATACUBE_FINAL"
        # MUSE leaves NaN outside the field of view.
        flux[:, 0, 0] = np.nan
        invalid[:, 0, 0] = True
        dq = np.zeros(shape, dtype=np.int32)
        dq[3, 1, 1] = 1 << 5
        invalid |= dq != 0
        data_header = wcs.copy()
        data_header["BUNIT"] = bunit
        data_header["HDUCLASS"] = "ESO"
        data_header["HDUCLAS1"] = "IMAGE"
        data_header["HDUCLAS2"] = "DATA"
        data_header["ERRDATA"] = "STAT"
        data_header["QUALDATA"] = "DQ"
        stat_header = wcs.copy()
        stat_header["HDUCLASS"] = "ESO"
        stat_header["HDUCLAS2"] = "ERROR"
        stat_header["HDUCLAS3"] = "MSE"
        hdus = [
            fits.PrimaryHDU(header=primary),
            fits.ImageHDU(flux, data_header, name="DATA"),
            fits.ImageHDU(sigma**2, stat_header, name="STAT"),
            fits.ImageHDU(dq, name="DQ"),
        ]
    else:
        primary.update(wcs)
        primary["BUNIT"] = bunit
        primary["OBJECT"] = "UGC 00005"
        primary["TELESCOP"] = {"CALIFA": "CAHA 3.5m", "SAMI": "AAT"}.get(style, "")
        primary["INSTRUME"] = {"CALIFA": "PMAS/PPAK", "SAMI": "AAOMEGA-SAMI"}.get(style, "")
        hdus = [fits.PrimaryHDU(flux, primary)]
        if style == "CALIFA":
            badpix = np.zeros(shape, dtype=np.uint8)
            badpix[:, -1, -1] = 1
            invalid |= badpix != 0
            hdus += [
                fits.ImageHDU(sigma, name="ERROR"),
                fits.ImageHDU(badpix, name="BADPIX"),
            ]
        elif style == "SAMI":
            flux[:, -1, 0] = np.nan
            invalid[:, -1, 0] = True
            hdus += [fits.ImageHDU(sigma**2, name="VARIANCE")]
        elif style != "BARE":
            raise ValueError(f"unknown style {style!r}")
    for key, value in (extra_primary or {}).items():
        hdus[0].header[key] = value
    # The reader masks flagged and NaN voxels but keeps their inverse variance.
    ivar = (1.0 / sigma.astype(np.float64) ** 2).astype(np.float32)
    if style == "BARE":
        ivar = np.ones(shape, dtype=np.float32)
    _write(fits.HDUList(hdus), path, 6)
    return CubeTruth(
        path=path,
        flux=flux,
        ivar=ivar,
        mask=invalid,
        wave=wave,
        primary=hdus[0].header,
        flux_header=hdus[1].header if style == "MUSE" else hdus[0].header,
        extensions=[hdu.name for hdu in hdus],
    )


def gzip_file(source: Path, target: Path, *, compresslevel: int = 6) -> Path:
    """Gzip ``source`` into ``target`` with isal (fast, standard gzip output)."""
    from isal import igzip

    with open(source, "rb") as raw, igzip.open(target, "wb", compresslevel=compresslevel) as gz:
        shutil.copyfileobj(raw, gz, length=4 << 20)
    return target


def _write(hdulist: fits.HDUList, path: Path, compresslevel: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        if path.suffix == ".gz":
            plain = path.with_name(path.name[:-3] + ".tmp")
            hdulist.writeto(plain, overwrite=True)
            try:
                # isal's levels are 0-3; map gzip's 1-9 onto them.
                gzip_file(plain, path, compresslevel=min(3, max(0, compresslevel // 3)))
            finally:
                plain.unlink(missing_ok=True)
        else:
            hdulist.writeto(path, overwrite=True)
