"""Parsing survey BUNIT strings, including MaNGA's ``spaxel`` and ``(...)^{-2}`` forms."""

from __future__ import annotations

import astropy.units as u
import pytest
from astropy.io import fits

from ifsrepr import FileFormatError
from ifsrepr.units import parse_bunit, spaxel, unit_to_string

LINE_FLUX = 1e-17 * u.erg / u.s / u.cm**2 / spaxel
FLUX_DENSITY = LINE_FLUX / u.AA


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # DAP MAPS line maps and their IVAR
        ("1E-17 erg/s/cm^2/spaxel", LINE_FLUX),
        ("(1E-17 erg/s/cm^2/spaxel)^{-2}", LINE_FLUX**-2),
        # DRP LOGCUBE FLUX and IVAR, and the DAP's spelling of Angstrom
        ("1E-17 erg/s/cm^2/Angstrom/spaxel", FLUX_DENSITY),
        ("(1E-17 erg/s/cm^2/Angstrom/spaxel)^{-2}", FLUX_DENSITY**-2),
        ("1E-17 erg/s/cm^2/ang/spaxel", FLUX_DENSITY),
        ("(1E-17 erg/s/cm^2/ang/spaxel)^{-2}", FLUX_DENSITY**-2),
        # kinematics, equivalent widths, coordinates, broad-band images
        ("km/s", u.km / u.s),
        ("(km/s)^{-2}", (u.km / u.s) ** -2),
        ("ang", u.AA),
        ("(ang)^{-2}", u.AA**-2),
        ("arcsec^2", u.arcsec**2),
        ("nanomaggies/pixel", u.nanomaggy / u.pix),
        ("", u.dimensionless_unscaled),
        ("  ", u.dimensionless_unscaled),
    ],
)
def test_parse_manga_bunits(text, expected):
    unit = parse_bunit(text)
    assert unit == expected
    assert unit.is_equivalent(expected) and unit.to(expected) == pytest.approx(1.0)
    assert parse_bunit(unit_to_string(unit)) == unit


def test_every_bunit_of_the_real_maps_file_parses(maps_path):
    with fits.open(maps_path) as hdus:
        found = {str(hdu.header["BUNIT"]) for hdu in hdus if "BUNIT" in hdu.header}
    assert "1E-17 erg/s/cm^2/spaxel" in found
    for text in found:
        unit = parse_bunit(text, filename=str(maps_path))
        assert parse_bunit(unit_to_string(unit)) == unit, text
        if text.startswith("(") and text.endswith("^{-2}"):
            inner = text[1 : text.rindex(")")]
            assert unit == parse_bunit(inner) ** -2, text


def test_ivar_is_inverse_square_of_flux():
    flux = parse_bunit("1E-17 erg/s/cm^2/spaxel")
    ivar = parse_bunit("(1E-17 erg/s/cm^2/spaxel)^{-2}")
    assert (1 * flux) ** 2 * (1 * ivar) == 1 * u.dimensionless_unscaled


def test_spaxel_does_not_leak_into_the_global_registry():
    with pytest.raises(ValueError):
        u.Unit("spaxel", parse_strict="raise")
    assert parse_bunit("spaxel") == spaxel


@pytest.mark.parametrize("text", ["1E-17 furlong/fortnight", "erg/s/cm^2/parsnip", "((("])
def test_unknown_bunit(text):
    with pytest.raises(FileFormatError) as info:
        parse_bunit(text, filename="galaxy.fits")
    message = str(info.value)
    assert message.startswith("galaxy.fits: unknown BUNIT")
    assert repr(text) in message


def test_unknown_bunit_without_a_filename():
    with pytest.raises(FileFormatError, match="^unknown BUNIT 'parsnip'"):
        parse_bunit("parsnip")
