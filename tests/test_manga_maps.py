"""The ``manga-maps`` reader on the bundled real DAP MAPS file and DR17-layout variants."""

from __future__ import annotations

import astropy.constants as const
import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import ifsrepr
from ifsrepr.lines import dap_line_table
from ifsrepr.units import spaxel

DONOTUSE = 1 << 30  # bit 30 of MANGA_DAPPIXMASK (DAP data model)


@pytest.fixture(scope="module")
def stack(maps_path):
    return ifsrepr.read(maps_path)


def channel_names(header):
    """Channel names from the Cnn keys, in plane order."""
    n = header["NAXIS3"]
    return [str(header[f"C{i:02d}"]).strip() for i in range(1, n + 1)]


def test_halpha_map_is_the_ha_channel(stack, maps_hdus, channel_index):
    header = maps_hdus["EMLINE_GFLUX"].header
    k = channel_index(header, "Ha-6564")
    flux = maps_hdus["EMLINE_GFLUX"].data[k]
    ivar = maps_hdus["EMLINE_GFLUX_IVAR"].data[k]
    bits = maps_hdus["EMLINE_GFLUX_MASK"].data[k]
    donotuse = (bits & DONOTUSE) != 0
    assert donotuse.any() and not donotuse.all()  # the comparison below can fail

    halpha = stack["Ha-6564"]
    assert np.array_equal(halpha.unmasked.value, flux)
    assert np.array_equal(halpha.mask, donotuse)
    i = stack.index("Ha-6564")
    assert np.array_equal(stack.ivar[i], ivar)


def test_every_channel_follows_its_name(stack, maps_hdus, channel_index):
    header = maps_hdus["EMLINE_GFLUX"].header
    names = channel_names(header)
    assert sorted(stack.line_names) == sorted(names)
    for name in names:
        k = channel_index(header, name)
        i = stack.index(name)
        assert np.array_equal(stack.flux[i], maps_hdus["EMLINE_GFLUX"].data[k]), name
        assert np.array_equal(stack.ivar[i], maps_hdus["EMLINE_GFLUX_IVAR"].data[k]), name
        bits = maps_hdus["EMLINE_GFLUX_MASK"].data[k]
        assert np.array_equal(stack.mask[i], (bits & DONOTUSE) != 0), name


def test_channels_are_wavelength_ordered(stack, maps_hdus):
    assert len(stack) == maps_hdus["EMLINE_GFLUX"].header["NAXIS3"] == 22
    waves = [line.rest_wavelength.to_value(u.AA) for line in stack.lines]
    assert np.all(np.diff(waves) > 0)
    # Each name carries the integer part of its rest wavelength (the DAP convention).
    for line in stack.lines:
        assert int(line.name.rsplit("-", 1)[1]) == int(line.rest_wavelength.to_value(u.AA))


def test_units_come_from_bunit(stack, maps_hdus):
    bunit = maps_hdus["EMLINE_GFLUX"].header["BUNIT"]
    assert bunit == "1E-17 erg/s/cm^2/spaxel"
    assert stack.unit == 1e-17 * u.erg / u.s / u.cm**2 / spaxel
    assert maps_hdus["EMLINE_GFLUX_IVAR"].header["BUNIT"] == f"({bunit})^{{-2}}"


def test_a_different_bunit_is_followed(tmp_path, maps_hdus, write_fits):
    maps_hdus["EMLINE_GFLUX"].header["BUNIT"] = "1E-16 erg/s/cm^2/spaxel"
    changed = ifsrepr.read(write_fits(maps_hdus, tmp_path / "unit-MAPS.fits"))
    assert changed.unit == 1e-16 * u.erg / u.s / u.cm**2 / spaxel


def test_wcs_is_celestial_with_the_header_reference(stack, maps_hdus):
    header = maps_hdus["EMLINE_GFLUX"].header
    assert stack.wcs.naxis == 2
    assert stack.wcs.has_celestial
    assert list(stack.wcs.wcs.ctype) == [header["CTYPE1"], header["CTYPE2"]]
    assert tuple(stack.wcs.wcs.crval) == (header["CRVAL1"], header["CRVAL2"])
    # Pixel -> sky agrees with the full 3-D header WCS for a few spaxels.
    full = WCS(header).celestial
    for y, x in [(0, 0), (21, 21), (41, 5)]:
        ours = stack.wcs.pixel_to_world(x, y)
        theirs = full.pixel_to_world(x, y)
        assert ours.separation(theirs).to_value(u.arcsec) < 1e-6


def test_redshift_is_scinpvel_over_c(stack, maps_hdus):
    cz = maps_hdus[0].header["SCINPVEL"]
    assert stack.redshift == pytest.approx(cz / const.c.to_value(u.km / u.s), rel=1e-12)
    assert 0 < stack.redshift < 0.2


def test_metadata_from_the_primary_header(stack, maps_hdus):
    primary = maps_hdus[0].header
    assert stack.meta["plateifu"] == primary["PLATEIFU"].strip()
    assert stack.name == primary["PLATEIFU"].strip()
    assert stack.meta["daptype"] == primary["DAPTYPE"].strip()
    assert stack.meta["extension"] == "EMLINE_GFLUX"


def test_no_scinpvel_means_unknown_redshift(tmp_path, maps_hdus, write_fits):
    del maps_hdus[0].header["SCINPVEL"]
    assert ifsrepr.read(write_fits(maps_hdus, tmp_path / "noz-MAPS.fits")).redshift is None


def test_identified_without_dapfrmt_by_instrument_and_name(tmp_path, maps_hdus, write_fits):
    del maps_hdus[0].header["DAPFRMT"]
    path = write_fits(maps_hdus, tmp_path / "manga-7815-3702-MAPS-old.fits")
    assert ifsrepr.read(path).meta["reader"] == "manga-maps"
    elsewhere = write_fits(maps_hdus, tmp_path / "renamed.fits")
    with pytest.raises(ifsrepr.FileFormatError, match="no reader recognises"):
        ifsrepr.read(elsewhere)


# -- DR17 layout ------------------------------------------------------------------


def build_dr17(maps_hdus, order, rng):
    """A 35-channel DR17-layout MAPS file: real DR15 planes by name, 13 synthetic ones.

    ``order`` is a permutation of the 35 DR17 names giving the plane order in
    the file. Returns the HDUList and, by name, the (flux, ivar, bits) written.
    """
    gflux, givar, gmask = (
        maps_hdus[ext] for ext in ("EMLINE_GFLUX", "EMLINE_GFLUX_IVAR", "EMLINE_GFLUX_MASK")
    )
    dr15 = channel_names(gflux.header)
    ny, nx = gflux.data.shape[1:]
    planes = {}
    for name in order:
        if name in dr15:
            k = dr15.index(name)
            planes[name] = (gflux.data[k], givar.data[k], gmask.data[k])
        else:
            bits = np.where(rng.random((ny, nx)) < 0.3, DONOTUSE, 0).astype(np.int32)
            bits |= np.where(rng.random((ny, nx)) < 0.3, 1 << 4, 0).astype(np.int32)
            planes[name] = (
                rng.normal(1.0, 0.5, (ny, nx)).astype(np.float32),
                rng.uniform(0.1, 5.0, (ny, nx)).astype(np.float32),
                bits,
            )
    out = fits.HDUList([maps_hdus[0].copy()])
    for ext, what in zip((gflux, givar, gmask), range(3), strict=True):
        header = ext.header.copy()
        for key in [key for key in header if key[:1] == "C" and key[1:].isdigit()]:
            del header[key]
        for i, name in enumerate(order, start=1):
            header[f"C{i:02d}"] = (name, f"Data in channel {i}")
        data = np.stack([planes[name][what] for name in order])
        out.append(fits.ImageHDU(data, header, name=ext.name))
    return out, planes


@pytest.mark.parametrize("seed", [0, 1])
def test_dr17_layout_takes_names_from_header_keys(tmp_path, maps_hdus, write_fits, seed):
    dr17 = [line.name for line in dap_line_table()]
    dr15 = channel_names(maps_hdus["EMLINE_GFLUX"].header)
    assert len(dr17) == 35
    assert set(dr15) <= set(dr17)
    assert len(set(dr17) - set(dr15)) == 13

    rng = np.random.default_rng(seed)
    order = [dr17[i] for i in rng.permutation(len(dr17))]
    assert order != dr17  # shuffled: positions say nothing about names
    hdus, planes = build_dr17(maps_hdus, order, rng)
    stack = ifsrepr.read(write_fits(hdus, tmp_path / "dr17-MAPS.fits"))

    assert stack.line_names == dr17  # wavelength order, whatever the file order
    for name, (flux, ivar, bits) in planes.items():
        i = stack.index(name)
        assert np.array_equal(stack.flux[i], flux), name
        assert np.array_equal(stack.ivar[i], ivar), name
        assert np.array_equal(stack.mask[i], (bits & DONOTUSE) != 0), name
    # Other bits alone (the synthetic planes set bit 4 at random) leave a spaxel usable.
    extra = next(name for name in order if name not in dr15)
    bits = planes[extra][2]
    other_only = (bits != 0) & ((bits & DONOTUSE) == 0)
    assert other_only.any()
    assert not stack.mask[stack.index(extra)][other_only].any()
    # Lines known to the DR17 table carry its rest wavelengths and side-bands.
    table = {line.name: line for line in dap_line_table()}
    for line in stack.lines:
        assert line.rest_wavelength == table[line.name].rest_wavelength
        assert line.blueside == table[line.name].blueside


def test_real_planes_survive_the_dr17_rewrite(tmp_path, maps_hdus, write_fits, maps_path):
    dr17 = [line.name for line in dap_line_table()]
    hdus, _ = build_dr17(maps_hdus, dr17[::-1], np.random.default_rng(3))
    rewritten = ifsrepr.read(write_fits(hdus, tmp_path / "dr17r-MAPS.fits"))
    original = ifsrepr.read(maps_path)
    for name in original.line_names:
        i, j = rewritten.index(name), original.index(name)
        assert np.array_equal(rewritten.flux[i], original.flux[j])
        assert np.array_equal(rewritten.mask[i], original.mask[j])


def test_channel_outside_the_table_keeps_its_name(tmp_path, maps_hdus, write_fits):
    header = maps_hdus["EMLINE_GFLUX"].header
    header["C03"] = "Xx-5555"  # a custom DAP line: only the name's wavelength is known
    stack = ifsrepr.read(write_fits(maps_hdus, tmp_path / "custom-MAPS.fits"))
    line = stack.lines[stack.index("Xx-5555")]
    assert line.rest_wavelength == 5555 * u.AA
    assert line.blueside is None
    waves = [line.rest_wavelength.value for line in stack.lines]
    assert waves == sorted(waves)
