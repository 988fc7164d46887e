"""Write mock cubes in the MaNGA DR17 DRP ``LOGCUBE`` format.

The layout follows the DR17 data model (``sdss/datamodel``
``mangaCube.md``; DRP v3_1_1): PRIMARY (header only), FLUX, IVAR, MASK,
LSFPOST, LSFPRE (all ``(4563, N, N)``), WAVE, SPECRES, SPECRESD, PRESPECRES,
PRESPECRESD (``(4563,)``), OBSINFO (one row per exposure, the 65 DR17
columns), GIMG..ZIMG (reconstructed broad-band images in nanomaggies) and
GPSF..ZPSF (the reconstructed PSF). The spatial-covariance tables
GCORREL..ZCORREL are not written.

Headers carry the DR17 keys in the DR17 order, with the same units and the
``HDUCLASS`` block, and the FLUX header repeats the primary keys before its
WCS, as real cubes do (specutils' ``"MaNGA cube"`` loader relies on
``TELESCOP`` in the primary header and ``INSTRUME`` in the FLUX header).
Three keys mark the file as synthetic: ``MOCK = T``, ``MOCKGEN`` (the
version of the mock generator) and ``MOCKSEED``; ``AUTHOR`` names ifsrepr. The software
versions (``VERSDRP3 = 'v3_1_1'`` ...) name the data model followed, not
software that ran. Real LOGCUBE headers carry no redshift; neither do these.

The reconstructed images use top-hat approximations of the SDSS g, r, i, z
filters (4000-5400, 5500-6850, 6900-8350, 8400-10340 A) applied to the
noiseless cube; the PSF images are unit-sum Gaussians with the header FWHMs.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from .instrument import BAND_WAVELENGTHS, N_WAVE, SPAXEL_ARCSEC, psf_fwhm, wavelength
from .params import GalaxyParams
from .synth import CubeData, lsf_sigma
from .templates import load_library

__all__ = [
    "cube_filename",
    "cube_hdulist",
    "primary_cards",
    "celestial_header",
    "checksum_comment",
]

BUNIT_CUBE = "1E-17 erg/s/cm^2/Angstrom/spaxel"
#: Version of the mock's physics and format, written as ``MOCKGEN`` (not the
#: package version, which changes with every commit and would break "same
#: seed, same bytes" across installs of the same mock).
MOCK_VERSION = 1
_PIXEL_DEG = SPAXEL_ARCSEC / 3600.0
_BANDS = ("g", "r", "i", "z")
_TOPHATS = {
    "g": (4000.0, 5400.0),
    "r": (5500.0, 6850.0),
    "i": (6900.0, 8350.0),
    "z": (8400.0, 10340.0),
}
_MJD_REDUCTION = 59186  # 2020-12-03, the DR17 (v3_1_1) reduction
_DATE_REDUCTION = "2020-12-03"


def cube_filename(plateifu: str) -> str:
    """``manga-PLATE-IFU-LOGCUBE.fits.gz``."""
    return f"manga-{plateifu}-LOGCUBE.fits.gz"


def checksum_comment(params: GalaxyParams) -> str:
    """The fixed comment of the checksum cards (the reduction date, like the DRP's)."""
    return f"HDU checksum updated {_DATE_REDUCTION}T00:00:00"


def _mjd_to_date(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd").to_value("iso", subfmt="date")


def _plate_centre(params: GalaxyParams) -> tuple[float, float]:
    """A plate centre within 1.4 deg of the galaxy, the same for every IFU of the plate."""
    rng = np.random.default_rng([params.plate, 31])
    radius, angle = 1.4 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
    dec = params.dec + radius * np.sin(angle)
    ra = params.ra + radius * np.cos(angle) / max(np.cos(np.radians(params.dec)), 0.1)
    return float(ra % 360.0), float(np.clip(dec, -89.9, 89.9))


def primary_cards(params: GalaxyParams) -> list[tuple[str, object, str]]:
    """The DR17 LOGCUBE primary-header cards, in DR17 order, for one galaxy."""
    p = params
    fwhm = {band: float(psf_fwhm(BAND_WAVELENGTHS[band], p.psf_fwhm)) for band in _BANDS}
    cenra, cendec = _plate_centre(p)
    nights = max(1, p.nexp // 9)
    harness = f"ma{(p.ifudesign * 7 + p.plate) % 100 + 1:03d}"
    exptime = round(p.nexp * 900.3, 2)
    return [
        ("AUTHOR", "ifsrepr mock survey (synthetic data in the DR17 layout)", ""),
        ("VERSDRP2", "v3_1_1", "MaNGA DRP version (2d processing)"),
        ("VERSDRP3", "v3_1_1", "MaNGA DRP Version (3d processing)"),
        ("VERSPLDS", "v5_1", "Platedesign Version"),
        ("VERSFLAT", "v1_33", "Specflat Version"),
        ("VERSCORE", "v1_9_1", "MaNGAcore Version"),
        ("VERSPRIM", "v2_9", "MaNGA Preimaging Version"),
        ("VERSUTIL", "v5_5_36", "Version of idlutils"),
        ("VERSIDL", "none (synthetic)", "Version of IDL"),
        ("BSCALE", 1.0, "Intensity unit scaling"),
        ("BZERO", 0.0, "Intensity zeropoint"),
        ("BUNIT", BUNIT_CUBE, "Specific intensity (per spaxel)"),
        ("MASKNAME", "MANGA_DRP3PIXMASK", "Bits in sdssMaskbits.par used by mask extension"),
        ("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
        ("INSTRUME", "MaNGA", "SDSS-IV MaNGA IFU"),
        ("SRVYMODE", "MaNGA dither", "Survey leading this observation and its mode"),
        ("PLATETYP", "MaNGA", "Type of plate (e.g. MaNGA, APOGEE-2&MANGA)"),
        ("OBJSYS", "ICRS", "The TCC objSys"),
        ("EQUINOX", 2000.0, ""),
        ("RADESYS", "FK5", ""),
        ("LAMPLIST", "lamphgcdne.dat", ""),
        ("TPLDATA", "BOSZ_3000-11000A.fits", ""),
        ("NEXP", p.nexp, "Total number of exposures"),
        ("EXPTIME", exptime, "Total exposure time (seconds)"),
        ("BLUESN2", round(2.1 * p.nexp * p.transparency, 4), "Total SN2 in blue channel"),
        ("REDSN2", round(4.4 * p.nexp * p.transparency, 4), "Total SN2 in red channel"),
        ("AIRMSMIN", round(p.airmass * 0.99, 5), "Minimum airmass"),
        ("AIRMSMED", round(p.airmass, 5), "Median airmass"),
        ("AIRMSMAX", round(p.airmass * 1.05, 5), "Maximum airmass"),
        ("SEEMIN", round(p.seeing * 0.9, 5), "Best guider seeing"),
        ("SEEMED", round(p.seeing, 5), "Median guider seeing"),
        ("SEEMAX", round(p.seeing * 1.1, 5), "Worst guider seeing"),
        ("TRANSMIN", round(p.transparency * 0.95, 5), "Worst guider transparency"),
        ("TRANSMED", round(p.transparency, 5), "Median guider transparency"),
        ("TRANSMAX", round(min(p.transparency * 1.03, 1.0), 5), "Best guider transparency"),
        ("MJDMIN", p.mjd, "MJD of first exposure"),
        ("MJDMED", p.mjd + (nights - 1) // 2, "MJD of median exposure"),
        ("MJDMAX", p.mjd + nights - 1, "MJD of last exposure"),
        ("DATE-OBS", _mjd_to_date(p.mjd + (nights - 1) // 2), "Date of median exposure"),
        ("MJDRED", _MJD_REDUCTION, "MJD of the reduction"),
        ("DATERED", _DATE_REDUCTION, "Date of the reduction"),
        ("MNGTARG1", p.manga_target1, "manga_target1 maskbit"),
        ("MNGTARG2", 0, "manga_target2 maskbit"),
        ("MNGTARG3", p.manga_target3, "manga_target3 maskbit"),
        ("IFURA", p.ra, "IFU R.A. (J2000 deg.)"),
        ("IFUDEC", p.dec, "IFU Dec. (J2000 deg.)"),
        ("OBJRA", p.ra, "Object R.A. (J2000 deg.)"),
        ("OBJDEC", p.dec, "Object Dec. (J2000 deg.)"),
        ("CENRA", cenra, "Plate center R.A. (J2000 deg.)"),
        ("CENDEC", cendec, "Plate center Dec. (J2000 deg.)"),
        ("PLATEID", p.plate, "Current plate"),
        ("DESIGNID", p.plate + 377, "Current design"),
        ("IFUDSGN", p.ifudesign, "ifuDesign"),
        ("FRLPLUG", (p.ifudesign * 13 + p.plate) % 40 + 1, "Plugged ferrule"),
        ("PLATEIFU", p.plateifu, "PLATEID-ifuDesign"),
        ("CARTID", str(p.plate % 6 + 1), "Cart(s) used"),
        ("HARNAME", harness, "Harness name(s)"),
        ("METFILE", f"{harness}-56887-3.par", "IFU metrology file(s)"),
        ("MANGAID", p.mangaid, "MaNGA ID number"),
        ("CATIDNUM", str(p.catid), "Primary target input catalog"),
        ("PLTTARG", f"plateTargets-{p.catid}.par", "plateTarget reference file"),
        ("DRP3QUAL", 0, "DRP-3d quality bitmask"),
        ("IFUGLON", p.glon, "IFU Galactic longitude (deg)"),
        ("IFUGLAT", p.glat, "IFU Galactic latitude (deg)"),
        ("EBVGAL", round(p.ebv_gal, 7), "Galactic reddening E(B-V)"),
        ("GFWHM", round(fwhm["g"], 5), "Reconstructed FWHM in g-band (arcsec)"),
        ("RFWHM", round(fwhm["r"], 5), "Reconstructed FWHM in r-band (arcsec)"),
        ("IFWHM", round(fwhm["i"], 5), "Reconstructed FWHM in i-band (arcsec)"),
        ("ZFWHM", round(fwhm["z"], 5), "Reconstructed FWHM in z-band (arcsec)"),
        ("MOCK", True, "synthetic galaxy made by ifsrepr.mock"),
        ("MOCKGEN", f"ifsrepr.mock v{MOCK_VERSION}", "generator of this synthetic file"),
        ("MOCKSEED", p.seed, "seed of the mock survey"),
    ]


def _header(cards: list[tuple[str, object, str]]) -> fits.Header:
    header = fits.Header()
    for key, value, comment in cards:
        header.append((key, value, comment), end=True)
    return header


def image_hdu(data: np.ndarray, cards: list[tuple[str, object, str]], name: str) -> fits.ImageHDU:
    """An image extension with ``cards`` in order and ``EXTNAME`` last.

    The cards are added after the data so astropy keeps ``BSCALE = 1`` and
    ``BZERO = 0``, which DR17 headers carry and astropy would otherwise drop.
    """
    hdu = fits.ImageHDU(data)
    for key, value, comment in cards:
        hdu.header.append((key, value, comment), end=True)
    hdu.header.append(("EXTNAME", name, ""), end=True)
    return hdu


def celestial_header(params: GalaxyParams, n: int) -> list[tuple[str, object, str]]:
    """The 2-D celestial WCS cards of a DRP cube (``CD`` matrix, ``CRPIX = n/2 + 1``)."""
    crpix = n / 2 + 1
    return [
        ("CRPIX1", crpix, "Reference pixel (1-indexed)"),
        ("CRPIX2", crpix, "Reference pixel (1-indexed)"),
        ("CRVAL1", params.ra, ""),
        ("CRVAL2", params.dec, ""),
        ("CD1_1", -0.000138889, ""),
        ("CD2_2", 0.000138889, ""),
        ("CTYPE1", "RA---TAN", ""),
        ("CTYPE2", "DEC--TAN", ""),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
    ]


def _obsinfo(params: GalaxyParams) -> fits.BinTableHDU:
    """The OBSINFO table: one row per exposure, the 65 columns of DR17."""
    p = params
    n = p.nexp
    rng = np.random.default_rng([p.plate, 53])  # shared by the plate's IFUs
    sets = np.repeat(np.arange(1, n // 3 + 1), 3)
    dither = np.tile(["N", "S", "E"], n // 3)
    offsets = {"N": (0.0, 1.443), "S": (-1.25, -0.722), "E": (1.25, -0.722)}
    seeing = p.seeing * (1 + 0.08 * rng.standard_normal(n))
    airmass = p.airmass * (1 + 0.02 * rng.random(n))
    mjd = p.mjd + (np.arange(n) // 9)
    cenra, cendec = _plate_centre(p)
    f4, i4 = np.float32, np.int32

    def col(name, fmt, values, unit=None):
        return fits.Column(name=name, format=fmt, array=np.asarray(values), unit=unit)

    zeros = np.zeros(n, f4)
    ones = np.ones(n, f4)
    harness = f"ma{(p.ifudesign * 7 + p.plate) % 100 + 1:03d}"
    columns = [
        col("SLITFILE", "25A", [f"slitmap-{p.plate}-{m}-01.par" for m in mjd]),
        col("METFILE", "17A", [f"{harness}-56887-3.par"] * n),
        col("HARNAME", "5A", [harness] * n),
        col("IFUDESIGN", "J", np.full(n, p.ifudesign, i4)),
        col("FRLPLUG", "I", np.full(n, (p.ifudesign * 13 + p.plate) % 40 + 1, np.int16)),
        col("MANGAID", "8A", [p.mangaid[:8]] * n),
        col("AIRTEMP", "E", np.full(n, 8.0, f4), "degree"),
        col("HUMIDITY", "E", np.full(n, 30.0, f4)),
        col("PRESSURE", "E", np.full(n, 21.7, f4)),
        col("SEEING", "E", seeing.astype(f4), "arcsec"),
        col("PSFFAC", "E", ones),
        col("TRANSPAR", "E", np.full(n, p.transparency, f4)),
        col("PLATEID", "J", np.full(n, p.plate, i4)),
        col("DESIGNID", "J", np.full(n, p.plate + 377, i4)),
        col("CARTID", "I", np.full(n, p.plate % 6 + 1, np.int16)),
        col("MJD", "J", mjd.astype(i4)),
        col("EXPTIME", "E", np.full(n, 900.3, f4), "sec"),
        col("EXPNUM", "12A", [f"{180000 + p.plate * 3 % 9973 + i:08d}" for i in range(n)]),
        col("SET", "J", sets.astype(i4)),
        col("MGDPOS", "8A", list(dither)),
        col("MGDRA", "E", np.array([offsets[d][0] for d in dither], f4), "arcsec"),
        col("MGDDEC", "E", np.array([offsets[d][1] for d in dither], f4), "arcsec"),
        *[col(f"OMEGASET_{b}", "E", ones) for b in "UGRIZ"],
        col("EAMFIT_RA", "E", zeros, "arcsec"),
        col("EAMFIT_DEC", "E", zeros, "arcsec"),
        col("EAMFIT_THETA", "E", zeros, "degree"),
        col("EAMFIT_THETA0", "E", zeros),
        col("EAMFIT_A", "E", ones),
        col("EAMFIT_B", "E", zeros),
        col("EAMFIT_RAERR", "E", np.full(n, 0.05, f4), "arcsec"),
        col("EAMFIT_DECERR", "E", np.full(n, 0.05, f4), "arcsec"),
        col("EAMFIT_THETAERR", "E", np.full(n, 0.01, f4), "degree"),
        col("EAMFIT_THETA0ERR", "E", np.full(n, 0.01, f4), "degree"),
        col("EAMFIT_AERR", "E", np.full(n, 0.01, f4)),
        col("EAMFIT_BERR", "E", np.full(n, 0.01, f4)),
        col(
            "TAIBEG", "13A", [f"{m * 86400 + 3600 * (i % 9):013d}"[:13] for i, m in enumerate(mjd)]
        ),
        col("HADRILL", "E", zeros),
        col("LSTMID", "E", np.full(n, (p.ra / 15.0) % 24, f4)),
        col("HAMID", "E", zeros),
        col("AIRMASS", "E", airmass.astype(f4)),
        col("IFURA", "D", np.full(n, p.ra), "degree"),
        col("IFUDEC", "D", np.full(n, p.dec), "degree"),
        col("CENRA", "D", np.full(n, cenra), "degree"),
        col("CENDEC", "D", np.full(n, cendec), "degree"),
        col("XFOCAL", "E", np.full(n, (p.ra - cenra) * 217.7, f4), "mm"),
        col("YFOCAL", "E", np.full(n, (p.dec - cendec) * 217.7, f4), "mm"),
        col("MNGTARG1", "J", np.full(n, p.manga_target1, i4)),
        col("MNGTARG2", "J", np.zeros(n, i4)),
        col("MNGTARG3", "J", np.full(n, p.manga_target3, i4)),
        col("BLUESN2", "E", np.full(n, 2.1 * p.transparency, f4)),
        col("REDSN2", "E", np.full(n, 4.4 * p.transparency, f4)),
        col("BLUETHRUPT", "E", np.full(n, p.transparency, f4)),
        col("REDTHRUPT", "E", np.full(n, p.transparency, f4)),
        col("BLUEPSTAT", "E", zeros),
        col("REDPSTAT", "E", zeros),
        col("DRP2QUAL", "J", np.zeros(n, i4)),
        col("THISBADIFU", "J", np.zeros(n, i4)),
        *[
            col(
                f"PF_FWHM_{b.upper()}",
                "E",
                (seeing * (BAND_WAVELENGTHS[b] / 6176.58) ** -0.2).astype(f4),
                "arcsec",
            )
            for b in _BANDS
        ],
    ]
    return fits.BinTableHDU.from_columns(columns, name="OBSINFO")


def _band_images(model_flux: np.ndarray, covered: np.ndarray) -> dict[str, np.ndarray]:
    """Top-hat g, r, i, z images of a cube (nanomaggies per spaxel)."""
    wave = wavelength()
    step = np.gradient(wave)
    images = {}
    for band, (low, high) in _TOPHATS.items():
        inside = (wave >= low) & (wave <= high)
        weight = (wave * step)[inside]
        # <f_nu> = int f_lambda lambda dlambda / (c int dlambda / lambda), c in A/s.
        f_nu = np.tensordot(weight, model_flux[inside], axes=(0, 0)) * 1e-17
        f_nu /= 2.99792458e18 * np.sum(step[inside] / wave[inside])
        images[band] = np.where(covered, f_nu / 3.631e-29, 0.0).astype(np.float32)
    return images


def _psf_image(n: int, fwhm: float) -> np.ndarray:
    from scipy import special

    sigma = fwhm / 2.3548200450309493 / SPAXEL_ARCSEC
    edges = np.arange(n + 1) - 0.5 - n // 2
    profile = np.diff(special.ndtr(edges / sigma))
    image = profile[:, None] * profile[None, :]
    return (image / image.sum()).astype(np.float32)


def cube_hdulist(params: GalaxyParams, cube: CubeData, covered: np.ndarray) -> fits.HDUList:
    """The DR17 LOGCUBE `~astropy.io.fits.HDUList` of a mock galaxy (checksums not yet added).

    Parameters
    ----------
    params : GalaxyParams
    cube : CubeData
        From `ifsrepr.mock.synth.observe_cube`.
    covered : ndarray of bool
        The bundle footprint (the LSF and images are zero outside it).
    """
    n = cube.flux.shape[1]
    primary_list = primary_cards(params)
    primary = fits.PrimaryHDU()
    for card in primary_list:  # appended after creation so BSCALE/BZERO stay
        primary.header.append(card, end=True)
    wcs3 = [
        ("CTYPE3", "WAVE-LOG", ""),
        ("CRPIX3", 1, "Starting pixel (1-indexed)"),
        ("CRVAL3", 3621.59598486, "Central wavelength of first pixel"),
        ("CD3_3", 0.833903304339, "Initial dispersion per pixel"),
        ("CUNIT3", "Angstrom", ""),
    ]
    flux_cards = (
        primary_list
        + wcs3
        + celestial_header(params, n)
        + [
            ("HDUCLASS", "SDSS", "SDSS format class"),
            ("HDUCLAS1", "CUBE", ""),
            ("HDUCLAS2", "DATA", ""),
            ("ERRDATA", "IVAR", "Error extension name"),
            ("QUALDATA", "MASK", "Mask extension name"),
        ]
    )
    flux = image_hdu(cube.flux, flux_cards, "FLUX")
    ivar = image_hdu(
        cube.ivar,
        [
            ("HDUCLASS", "SDSS", "SDSS format class"),
            ("HDUCLAS1", "CUBE", ""),
            ("HDUCLAS2", "ERROR", ""),
            ("HDUCLAS3", "INVMSE", "Inverse variance"),
            ("SCIDATA", "FLUX", "Science extension name"),
            ("QUALDATA", "MASK", "Mask extension name"),
        ],
        "IVAR",
    )
    mask = image_hdu(
        cube.mask,
        [
            ("HDUCLASS", "SDSS", "SDSS format class"),
            ("HDUCLAS1", "CUBE", ""),
            ("HDUCLAS2", "QUALITY", ""),
            ("HDUCLAS3", "FLAG64BIT", ""),
            ("SCIDATA", "FLUX", "Science extension name"),
            ("ERRDATA", "IVAR", "Error extension name"),
        ],
        "MASK",
    )
    spatial = covered.astype(np.float32)[None]
    lsf_post = lsf_sigma(pre=False).astype(np.float32)[:, None, None] * spatial
    lsf_pre = lsf_sigma(pre=True).astype(np.float32)[:, None, None] * spatial
    library = load_library()
    wave = wavelength()
    pre_res = wave / lsf_sigma(pre=True) / 2.3548200450309493
    vectors = {
        "WAVE": np.asarray(wave, dtype=np.float64),
        "SPECRES": library.specres.astype(np.float64),
        "SPECRESD": library.specres_std.astype(np.float64),
        "PRESPECRES": pre_res.astype(np.float64),
        "PRESPECRESD": (library.specres_std * pre_res / library.specres).astype(np.float64),
    }
    hdus = [primary, flux, ivar, mask]
    hdus.append(image_hdu(lsf_post, [], "LSFPOST"))
    hdus.append(image_hdu(lsf_pre, [], "LSFPRE"))
    for name, vector in vectors.items():
        if vector.shape != (N_WAVE,):
            raise RuntimeError(f"{name} has shape {vector.shape}")
        hdus.append(image_hdu(vector, [], name))
    hdus.append(_obsinfo(params))
    images = _band_images(cube.model, covered)
    sky_cards = celestial_header(params, n) + [
        ("IFURA", params.ra, "IFU R.A. (J2000 deg.)"),
        ("IFUDEC", params.dec, "IFU Dec. (J2000 deg.)"),
        ("OBJRA", params.ra, "Object R.A. (J2000 deg.)"),
        ("OBJDEC", params.dec, "Object Dec. (J2000 deg.)"),
        ("BSCALE", 1.0, "Flux unit scaling"),
        ("BZERO", 0.0, "Flux zeropoint"),
        ("BUNIT", "nanomaggies/pixel", ""),
    ]
    fwhm = {band: float(psf_fwhm(BAND_WAVELENGTHS[band], params.psf_fwhm)) for band in _BANDS}
    for band in _BANDS:
        key = f"{band.upper()}FWHM"
        cards = sky_cards + [
            (key, round(fwhm[band], 5), f"Reconstructed FWHM in {band}-band (arcsec)")
        ]
        hdus.append(image_hdu(images[band], cards, f"{band.upper()}IMG"))
    for band in _BANDS:
        key = f"{band.upper()}FWHM"
        cards = sky_cards + [
            (key, round(fwhm[band], 5), f"Reconstructed FWHM in {band}-band (arcsec)")
        ]
        hdus.append(image_hdu(_psf_image(n, fwhm[band]), cards, f"{band.upper()}PSF"))
    return fits.HDUList(hdus)
