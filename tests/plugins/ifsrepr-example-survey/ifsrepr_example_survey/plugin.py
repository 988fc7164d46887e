"""Reader plugin ``example-survey`` for EXAMPLE-IFU cubes.

An EXAMPLE-IFU file is a FITS file whose primary header has
``TELESCOP = 'EXAMPLE-IFU'``, whose primary image is the flux cube shaped
``(wave, y, x)`` with a linear spectral axis (``CRVAL3``/``CDELT3``/``CUNIT3``,
``CRPIX3``) and a celestial WCS on axes 1-2, and which has an ``IVAR``
extension of the same shape.
"""

from __future__ import annotations

import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits

import ifsrepr
from ifsrepr.units import parse_bunit

__all__ = ["ExampleSurveyReader", "write_example_cube", "TELESCOPE"]

TELESCOPE = "EXAMPLE-IFU"


class ExampleSurveyReader:
    """Read EXAMPLE-IFU cubes into `ifsrepr.IFSCube`."""

    name = "example-survey"

    def identify(self, path: Path, header: fits.Header | None) -> bool:
        """Claim files whose primary header says ``TELESCOP = 'EXAMPLE-IFU'``."""
        return header is not None and str(header.get("TELESCOP", "")).strip() == TELESCOPE

    def read(self, path: str | os.PathLike) -> ifsrepr.IFSCube:
        """Read the flux cube, its IVAR extension and the WCS."""
        path = Path(path)
        with fits.open(path) as hdus:
            header = hdus[0].header
            if hdus[0].data is None or hdus[0].data.ndim != 3:
                raise ifsrepr.FileFormatError(f"{path}: the primary HDU holds no 3-D cube")
            if "IVAR" not in hdus:
                raise ifsrepr.FileFormatError(f"{path}: no IVAR extension")
            flux = np.asarray(hdus[0].data, dtype=np.float64)
            ivar = np.asarray(hdus["IVAR"].data, dtype=np.float64)
            unit = parse_bunit(header.get("BUNIT", ""), filename=str(path))
            n_wave = flux.shape[0]
            pixel = np.arange(1, n_wave + 1) - header.get("CRPIX3", 1.0)
            spectral_unit = u.Unit(header.get("CUNIT3", "Angstrom"))
            wave = (header["CRVAL3"] + header["CDELT3"] * pixel) * spectral_unit
            return ifsrepr.IFSCube(
                flux * unit,
                wave,
                ivar=ivar,
                wcs=header,
                redshift=header.get("Z"),
                meta={"name": str(header.get("OBJECT", "")).strip(), "telescop": TELESCOPE},
            )


def write_example_cube(
    path: str | os.PathLike,
    flux: np.ndarray,
    ivar: np.ndarray,
    *,
    crval3: float = 4000.0,
    cdelt3: float = 2.0,
    ra: float = 150.0,
    dec: float = 2.0,
    redshift: float | None = None,
    name: str = "example-galaxy",
    bunit: str = "1E-17 erg/s/cm^2/Angstrom/spaxel",
) -> Path:
    """Write an EXAMPLE-IFU file (used by the ifsrepr test suite and as a demo).

    Parameters
    ----------
    path : path-like
        Output file (``.fits`` or ``.fits.gz``); overwritten if it exists.
    flux, ivar : array
        Shaped ``(n_wave, ny, nx)``.
    crval3, cdelt3 : float
        First wavelength and step, in Angstrom.
    ra, dec : float
        Sky position of the cube's central spaxel, in degrees.
    redshift : float, optional
        Written as ``Z`` when given.
    """
    path = Path(path)
    flux = np.asarray(flux)
    n_wave, ny, nx = flux.shape
    header = fits.Header()
    header["TELESCOP"] = TELESCOPE
    header["OBJECT"] = name
    header["BUNIT"] = bunit
    header["CTYPE1"], header["CTYPE2"], header["CTYPE3"] = "RA---TAN", "DEC--TAN", "WAVE"
    header["CUNIT1"], header["CUNIT2"], header["CUNIT3"] = "deg", "deg", "Angstrom"
    header["CRPIX1"], header["CRPIX2"], header["CRPIX3"] = (nx + 1) / 2, (ny + 1) / 2, 1.0
    header["CRVAL1"], header["CRVAL2"], header["CRVAL3"] = ra, dec, crval3
    header["CDELT1"], header["CDELT2"], header["CDELT3"] = -0.5 / 3600, 0.5 / 3600, cdelt3
    header["RADESYS"] = "ICRS"
    if redshift is not None:
        header["Z"] = redshift
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(flux, header),
            fits.ImageHDU(np.asarray(ivar), name="IVAR"),
        ]
    )
    hdus.writeto(path, overwrite=True)
    return path


@ifsrepr.hookimpl
def ifsrepr_register_readers(register):
    """Register the EXAMPLE-IFU reader."""
    register(ExampleSurveyReader())
