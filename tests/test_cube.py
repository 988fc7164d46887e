"""`IFSCube`: validation, masking of bad values, and conversion to specutils / spectral-cube."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance
from astropy.wcs import WCS

from ifsrepr import DataModelError, IFSCube

FLUX_UNIT = u.Unit("1e-17 erg / (s cm2 Angstrom)")
N_MANGA = 4563  # channels of a MaNGA LOGCUBE

# spectral-cube (0.7) imports a name astropy 8 marks as pending deprecation.
spectral_cube_import = pytest.mark.filterwarnings(
    "ignore:COPY_IF_NEEDED:astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)


def manga_wave(n=N_MANGA):
    """The MaNGA LOGCUBE grid: log10-spaced from 3621.596 Angstrom in steps of 1e-4 dex."""
    return 10 ** (np.log10(3621.596) + 1e-4 * np.arange(n)) * u.AA


def celestial(ny, nx, ra=184.5, dec=47.3):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    wcs.wcs.cdelt = [-0.5 / 3600, 0.5 / 3600]
    wcs.wcs.set()
    return wcs


def random_cube(shape=(30, 4, 5), wave=None, seed=0, mask_fraction=0.1):
    rng = np.random.default_rng(seed)
    n, ny, nx = shape
    wave = np.linspace(6400, 6700, n) * u.AA if wave is None else wave
    return IFSCube(
        rng.normal(5, 1, shape) * FLUX_UNIT,
        wave,
        ivar=rng.uniform(0.5, 2, shape),
        mask=rng.random(shape) < mask_fraction,
        wcs=celestial(ny, nx),
        redshift=0.025,
        meta={"plateifu": "0000-0000"},
    )


# -- validation -------------------------------------------------------------------

WAVE = np.linspace(6400, 6700, 10) * u.AA


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"flux": np.ones((10, 2, 3))}, "flux must be an astropy Quantity"),
        ({"flux": np.ones((10, 6)) * u.Jy}, r"flux must be 3-D .* got shape \(10, 6\)"),
        ({"flux": np.ones((10, 2, 3, 1)) * u.Jy}, "flux must be 3-D"),
        ({"spectral_axis": WAVE[:-1]}, "spectral_axis has 9 values but flux has 10 channels"),
        ({"spectral_axis": WAVE.value}, "spectral_axis must be an astropy Quantity"),
        ({"spectral_axis": np.arange(10) * u.s}, "is not a wavelength, frequency or energy"),
        ({"spectral_axis": np.r_[WAVE.value[:5], WAVE.value[:5]] * u.AA}, "strictly monotonic"),
        ({"ivar": np.ones((10, 3, 2))}, r"ivar shape \(10, 3, 2\) != flux shape \(10, 2, 3\)"),
        ({"ivar": np.ones((10, 2, 3)) * u.Jy**-1}, "not the inverse square of the flux unit"),
        ({"ivar": np.ones((10, 2, 3)) * u.Jy**2}, "not the inverse square of the flux unit"),
        ({"mask": np.zeros((10, 2), bool)}, r"mask shape \(10, 2\) != flux shape"),
        ({"mask": np.zeros((10, 2, 3), int)}, "mask must be boolean"),
        ({"wcs": "not a wcs"}, "must be an astropy.wcs.WCS or a FITS header"),
    ],
)
def test_validation(kwargs, pattern):
    arguments = {"flux": np.ones((10, 2, 3)) * u.Jy, "spectral_axis": WAVE, **kwargs}
    with pytest.raises(DataModelError, match=pattern):
        IFSCube(**arguments)


def test_wcs_whose_shape_disagrees_with_the_data():
    wcs = celestial(7, 7)
    wcs.array_shape = (7, 7)
    with pytest.raises(DataModelError, match=r"WCS describes a \(7, 7\) image"):
        IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE, wcs=wcs)


def test_wcs_without_celestial_axes():
    spectral = WCS(naxis=1)
    spectral.wcs.ctype = ["WAVE"]
    with pytest.raises(DataModelError, match="no celestial axes"):
        IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE, wcs=spectral)


def test_non_numeric_values():
    with pytest.raises(DataModelError, match="flux must be numeric, got dtype complex"):
        IFSCube(np.ones((10, 2, 3), complex) * u.Jy, WAVE)
    with pytest.raises(DataModelError, match="ivar must be numeric"):
        IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE, ivar=np.full((10, 2, 3), "x"))


def test_ivar_in_a_convertible_unit_is_converted():
    flux = np.ones((10, 2, 3)) * u.Jy
    cube = IFSCube(flux, WAVE, ivar=np.full((10, 2, 3), 4.0) * u.mJy**-2)
    assert cube.ivar.unit == u.Jy**-2
    np.testing.assert_allclose(cube.ivar.value, 4.0e6)


def test_defaults():
    cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE)
    assert np.array_equal(cube.ivar.value, np.ones((10, 2, 3)))
    assert cube.ivar.unit == cube.unit**-2
    assert not cube.mask.any()
    assert cube.wcs is None and cube.redshift is None
    assert cube.name == "unnamed cube"
    assert cube.shape == (10, 2, 3) and cube.spatial_shape == (2, 3)


def test_spectral_axis_in_other_units_is_stored_in_angstrom():
    frequencies = (WAVE[::-1]).to(u.THz, equivalencies=u.spectral())
    cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, frequencies)
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), WAVE.value[::-1], rtol=1e-12)


def test_nans_become_masked():
    flux = np.ones((10, 2, 3))
    ivar = np.ones((10, 2, 3))
    flux[2, 1, 1] = np.nan
    flux[3, 0, 0] = np.inf
    ivar[4, 0, 2] = np.nan
    given = np.zeros((10, 2, 3), bool)
    given[5, 1, 2] = True
    cube = IFSCube(flux * u.Jy, WAVE, ivar=ivar, mask=given)
    expected = given | ~np.isfinite(flux) | ~np.isfinite(ivar)
    assert np.array_equal(cube.mask, expected)
    assert cube.mask.sum() == 4


def test_channel_slab_agrees_with_the_mask_and_fills_given_buffers():
    """A slab is the cube's values, zeroed where masked, in native float64 columns."""
    from ifsrepr.cube import BitmaskView

    rng = np.random.default_rng(2)
    flux = rng.normal(size=(40, 3, 4)).astype(">f4")  # big-endian, as in FITS files
    ivar = rng.uniform(0.5, 2.0, size=flux.shape).astype(">f4")
    flux[7, 1, 1] = np.nan
    ivar[8, 0, 3] = 0.0
    bits = np.zeros(flux.shape, dtype=">i4")
    bits[9, 2, 2] = 1024
    cube = IFSCube(flux * u.Jy, np.linspace(6000.0, 6039.0, 40) * u.AA, ivar=ivar,
                   mask=BitmaskView(bits, 1024))  # fmt: skip
    buffers = (np.empty((30, 12)), np.empty((30, 12)), np.empty((30, 12), bool))
    wave, slab_flux, slab_ivar, usable = cube.channel_slab(5, 35, out=buffers)
    assert slab_flux is buffers[0] and usable is buffers[2]
    expected_usable = ~cube.mask[5:35].reshape(30, 12)
    np.testing.assert_array_equal(usable, expected_usable)
    assert (~usable).sum() == 3
    np.testing.assert_array_equal(
        slab_flux, np.where(expected_usable, flux[5:35].reshape(30, 12), 0)
    )
    np.testing.assert_array_equal(
        slab_ivar, np.where(expected_usable, ivar[5:35].reshape(30, 12), 0)
    )
    np.testing.assert_array_equal(wave, np.linspace(6000.0, 6039.0, 40)[5:35])
    with pytest.raises(ValueError, match="shape"):
        cube.channel_slab(5, 34, out=buffers)


def test_non_positive_ivar_is_masked():
    ivar = np.ones((10, 2, 3))
    ivar[1, 0, 0] = 0.0
    ivar[2, 1, 2] = -1.0
    cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE, ivar=ivar)
    assert np.array_equal(cube.mask, ivar <= 0)


def test_redshift_setter_and_repr():
    cube = random_cube()
    assert "z=0.02500" in repr(cube)
    cube.redshift = None
    assert "z=unknown" in repr(cube)
    cube.redshift = "0.1"
    assert cube.redshift == 0.1
    assert "0000-0000" in repr(cube)


# -- specutils ------------------------------------------------------------------


def test_to_specutils_round_trip():
    cube = random_cube(seed=1)
    spectrum = cube.to_specutils()
    assert spectrum.flux.shape == cube.shape
    assert np.array_equal(spectrum.flux.value, cube.flux.value)
    assert spectrum.flux.unit == cube.unit
    assert np.array_equal(spectrum.spectral_axis.to_value(u.AA), cube.spectral_axis.value)
    assert isinstance(spectrum.uncertainty, InverseVariance)
    assert np.array_equal(spectrum.uncertainty.array, cube.ivar.value)
    assert spectrum.uncertainty.unit == cube.unit**-2
    assert np.array_equal(spectrum.mask, cube.mask)
    assert spectrum.meta["redshift"] == cube.redshift

    back = IFSCube(
        spectrum.flux,
        spectrum.spectral_axis,
        ivar=spectrum.uncertainty.quantity,
        mask=np.asarray(spectrum.mask),
        wcs=cube.wcs,
    )
    for attribute in ("flux", "ivar", "spectral_axis"):
        ours, theirs = getattr(back, attribute), getattr(cube, attribute)
        assert ours.unit == theirs.unit, attribute
        assert np.array_equal(ours.value, theirs.value), attribute
    assert np.array_equal(back.mask, cube.mask)


# -- spectral-cube -----------------------------------------------------------------


@spectral_cube_import
def test_to_spectral_cube_on_the_manga_log_grid():
    wave = manga_wave()
    cube = random_cube((N_MANGA, 3, 4), wave=wave, seed=2)
    spectral = cube.to_spectral_cube()
    assert spectral.shape == cube.shape
    assert spectral.wcs.wcs.ctype[2] == "WAVE-LOG"
    np.testing.assert_allclose(spectral.spectral_axis.to_value(u.AA), wave.value, rtol=0, atol=1e-4)
    assert np.array_equal(spectral.mask.include(), ~cube.mask)
    filled = spectral.filled_data[:]
    assert filled.unit == cube.unit
    good = ~cube.mask
    assert np.array_equal(filled.value[good], cube.flux.value[good])
    assert np.isnan(filled.value[cube.mask]).all()


@spectral_cube_import
def test_to_spectral_cube_on_a_linear_grid():
    wave = (3600.0 + 1.25 * np.arange(2000)) * u.AA
    cube = random_cube((wave.size, 2, 3), wave=wave, seed=3)
    spectral = cube.to_spectral_cube()
    assert spectral.wcs.wcs.ctype[2] == "WAVE"
    np.testing.assert_allclose(spectral.spectral_axis.to_value(u.AA), wave.value, rtol=0, atol=1e-4)
    assert np.array_equal(spectral.mask.include(), ~cube.mask)


@spectral_cube_import
def test_to_spectral_cube_keeps_the_sky_position():
    cube = random_cube((50, 3, 4), seed=4)
    spectral = cube.to_spectral_cube()
    for y, x in [(0, 0), (2, 3), (1, 2)]:
        ours = cube.wcs.pixel_to_world(x, y)
        theirs = spectral.wcs.celestial.pixel_to_world(x, y)
        assert ours.separation(theirs).to_value(u.arcsec) < 1e-6


def test_to_spectral_cube_needs_a_wcs():
    cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, WAVE)
    with pytest.raises(DataModelError, match="celestial WCS is needed"):
        cube.to_spectral_cube()


def test_to_spectral_cube_refuses_an_irregular_grid():
    wave = np.sort(np.random.default_rng(5).uniform(4000, 5000, 10)) * u.AA
    cube = IFSCube(np.ones((10, 2, 3)) * u.Jy, wave, wcs=celestial(2, 3))
    with pytest.raises(DataModelError, match="neither linear nor logarithmic"):
        cube.to_spectral_cube()


def test_header_wcs_is_reduced_to_celestial():
    wcs3 = WCS(naxis=3)
    wcs3.wcs.ctype = ["RA---TAN", "DEC--TAN", "WAVE-LOG"]
    wcs3.wcs.crval = [10.0, 20.0, 3621.596e-10]
    wcs3.wcs.cdelt = [-1e-4, 1e-4, 1e-14]
    wcs3.wcs.crpix = [3, 2, 1]
    cube = IFSCube(np.ones((10, 3, 5)) * u.Jy, WAVE, wcs=wcs3.to_header())
    assert cube.wcs.naxis == 2
    assert tuple(cube.wcs.wcs.crval) == (10.0, 20.0)
