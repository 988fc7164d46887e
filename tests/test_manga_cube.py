"""The ``manga-cube`` reader: DR17 and older LOGCUBE/LINCUBE files, and bad input."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from cube_fixtures import (
    CRITICAL_DRP3QUAL,
    DONOTUSE,
    FORESTAR,
    LOG_CD3_3,
    LOWCOV,
    NOCOV,
    log_wavelengths,
    manga_primary_header,
    write_manga_cube,
)

import ifsrepr
from ifsrepr.io import identify_readers, read_primary_header
from ifsrepr.io.fits_cube import (
    CubeReadWarning,
    FitsStream,
    MissingExtensionError,
    NoValidDataError,
    TruncatedFileError,
    UnknownUnitError,
    WavelengthMismatchError,
)
from ifsrepr.io.manga_cube import MangaCubeReader
from ifsrepr.units import parse_bunit

DATA = Path(__file__).parent / "data"
OLD_CUBE = DATA / "manga-7495-12704-LOGCUBE.fits"
MANGA_UNIT = parse_bunit("1E-17 erg/s/cm^2/Angstrom/spaxel")
# spectral-cube 0.7 imports a name astropy 8 deprecates; harmless for these tests.
spectral_cube_import = pytest.mark.filterwarnings(
    "ignore:COPY_IF_NEEDED:astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)


@pytest.fixture(scope="module")
def dr17(tmp_path_factory):
    """A DR17-layout LOGCUBE, plain and gzipped, with the same content."""
    folder = tmp_path_factory.mktemp("dr17")
    plain = write_manga_cube(folder / "manga-8485-1901-LOGCUBE.fits", n=6)
    gz = write_manga_cube(folder / "manga-8485-1901-LOGCUBE.fits.gz", n=6)
    return plain, gz


def assert_names_file(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert isinstance(error.value, ifsrepr.IFSReprError)
    return message


# -- identification ----------------------------------------------------------------
@pytest.mark.parametrize("which", [0, 1], ids=["fits", "fits.gz"])
def test_identified_as_manga_cube_only(dr17, which):
    path = dr17[which].path
    assert identify_readers(path, read_primary_header(path)) == ["manga-cube"]


def test_identify_rules():
    reader = MangaCubeReader()
    primary = manga_primary_header()
    assert reader.identify(Path("manga-1-2-LOGCUBE.fits.gz"), primary)
    assert reader.identify(Path("renamed.fits"), primary)
    assert not reader.identify(Path("manga-8485-1901-LOGRSS.fits.gz"), primary)
    assert not reader.identify(Path("x.fits"), None)
    dap = primary.copy()
    dap["DAPTYPE"] = "HYB10-MILESHC-MASTARSSP"
    assert not reader.identify(Path("manga-8485-1901-LOGCUBE-HYB10.fits.gz"), dap)
    other = primary.copy()
    other["INSTRUME"] = "MUSE"
    assert not reader.identify(Path("cube.fits"), other)


def test_maps_file_not_claimed(maps_path):
    assert identify_readers(maps_path, read_primary_header(maps_path)) == ["manga-maps"]


# -- reading a DR17 cube -------------------------------------------------------------
@pytest.mark.parametrize("which", [0, 1], ids=["fits", "fits.gz"])
def test_read_dr17(dr17, which):
    truth = dr17[which]
    cube = ifsrepr.read(truth.path)
    assert isinstance(cube, ifsrepr.IFSCube)
    assert cube.meta["reader"] == "manga-cube"
    assert cube.shape == (4563, 6, 6)
    assert cube.unit == MANGA_UNIT
    np.testing.assert_array_equal(cube.flux.value, truth.flux)
    np.testing.assert_array_equal(cube.ivar.value, truth.ivar)
    assert cube.ivar.unit == MANGA_UNIT**-2
    expected_mask = truth.donotuse | (truth.ivar <= 0)
    np.testing.assert_array_equal(cube.mask, expected_mask)
    if which == 0:  # uncompressed: the WAVE extension
        np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave, rtol=0, atol=1e-9)
    else:  # gzipped: the header WCS, within 2e-4 of a channel of WAVE
        width = np.gradient(truth.wave)
        assert np.all(np.abs(cube.spectral_axis.to_value(u.AA) - truth.wave) < 2e-4 * width)
    assert cube.redshift is None  # LOGCUBE headers carry none
    assert tuple(cube.wcs.wcs.crval) == pytest.approx((232.5447, 48.690201))
    assert tuple(cube.wcs.wcs.crpix) == (4.0, 4.0)
    assert cube.wcs.wcs.ctype[0] == "RA---TAN"
    meta = cube.meta
    assert meta["plateifu"] == "8485-1901"
    assert meta["mangaid"] == "1-209232"
    assert meta["objra"] == pytest.approx(232.5447)
    assert meta["ifudec"] == pytest.approx(48.690201)
    assert meta["ebvgal"] == pytest.approx(0.0144335)
    assert meta["drp3qual"] == 0 and meta["drp3qual_flags"] == []
    assert meta["mngtarg1"] == 2336
    assert meta["versdrp3"] == "v3_1_1"
    assert meta["wave_source"] == ("WAVE" if which == 0 else "wcs")
    assert meta["wavelength_type"] == "log"
    assert meta["vacuum_wavelengths"] is True


def test_plain_file_is_memory_mapped(dr17):
    cube = ifsrepr.read(dr17[0].path)
    # Memory-mapped FITS data: read-only and in the file's big-endian order.
    assert not cube.flux.value.flags.writeable
    assert cube.flux.value.dtype == np.dtype(">f4")
    assert not cube.ivar.value.flags.writeable


def test_gzip_and_no_memmap_give_native_arrays(dr17):
    for cube in (ifsrepr.read(dr17[1].path), ifsrepr.read(dr17[0].path, memmap=False)):
        assert cube.flux.value.dtype == np.dtype("float32")
        assert cube.flux.value.dtype.isnative
        np.testing.assert_array_equal(cube.flux.value, dr17[0].flux)


def test_redshift_option(dr17):
    cube = ifsrepr.read(dr17[0].path, redshift=0.0407447)
    assert cube.redshift == pytest.approx(0.0407447)


def test_mask_flags_option(dr17):
    truth = dr17[0]
    cube = ifsrepr.read(truth.path, mask_flags=("NOCOV",))
    expected = ((truth.mask & NOCOV) != 0) | (truth.ivar <= 0)
    np.testing.assert_array_equal(cube.mask, expected)
    # The rim (LOWCOV|DONOTUSE) and the star (FORESTAR|DONOTUSE) are no longer masked.
    rim = (truth.mask[0] == LOWCOV | DONOTUSE) | (truth.mask[0] == FORESTAR | DONOTUSE)
    assert rim.any() and not cube.mask[0][rim].any()
    with pytest.raises(ifsrepr.UnknownNameError, match="NOSUCHFLAG"):
        ifsrepr.read(truth.path, mask_flags=("NOSUCHFLAG",))


def test_lincube(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LINCUBE.fits.gz", kind="LIN", n=5)
    cube = ifsrepr.read(truth.path)
    assert cube.meta["reader"] == "manga-cube"
    assert cube.meta["wavelength_type"] == "linear"
    assert cube.shape == (6732, 5, 5)
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave)
    np.testing.assert_array_equal(cube.flux.value, truth.flux)


def test_dr15_layout(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-7815-3702-LOGCUBE.fits.gz", layout="DR15")
    assert "DISP" in truth.extensions and "LSFPOST" not in truth.extensions
    cube = ifsrepr.read(truth.path)
    np.testing.assert_array_equal(cube.ivar.value, truth.ivar)


def test_full_size_channels_and_wcs_agree(dr17):
    """The reader's check: WAVE and the WAVE-LOG WCS agree to a tiny fraction of a channel."""
    cube = ifsrepr.read(dr17[0].path, wavelength="wcs")
    assert cube.meta["wave_source"] == "wcs"
    wave = cube.spectral_axis.to_value(u.AA)
    assert np.max(np.abs(wave - log_wavelengths())) < 2e-4


# -- the older (DR13) layout with genuine headers -----------------------------------------
def test_old_layout_random_wave_is_a_mismatch():
    """The header fixture's WAVE holds random numbers: the check catches it."""
    assert identify_readers(OLD_CUBE, read_primary_header(OLD_CUBE)) == ["manga-cube"]
    with pytest.raises(WavelengthMismatchError) as info:
        ifsrepr.read(OLD_CUBE)
    message = assert_names_file(info, OLD_CUBE)
    assert "wavelength='wcs'" in message


def test_old_layout_read_from_the_header_wcs():
    cube = ifsrepr.read(OLD_CUBE, wavelength="wcs")
    assert cube.shape == (10, 10, 10)
    assert cube.unit == MANGA_UNIT  # BUNIT there says '.../Ang/spaxel'
    np.testing.assert_allclose(
        cube.spectral_axis.to_value(u.AA), log_wavelengths(10), rtol=0, atol=2e-4
    )
    assert tuple(cube.wcs.wcs.crpix) == (38.0, 38.0)
    meta = cube.meta
    assert meta["plateifu"] == "7495-12704"
    assert meta["mangaid"] == "12-129618"
    assert meta["mngtarg1"] == 10  # from the DR13 spelling MNGTRG1
    assert meta["objglon"] == pytest.approx(35.1732317202)
    assert "ifura" not in meta  # DR13 headers lack it
    assert meta["drp3qual"] == 1
    with fits.open(OLD_CUBE) as hdus:
        np.testing.assert_array_equal(cube.flux.value, hdus["FLUX"].data)
        np.testing.assert_array_equal(cube.ivar.value, hdus["IVAR"].data)


def test_old_layout_trust_wave_without_check():
    # Trusting the random WAVE gets as far as IFSCube, which refuses a
    # non-monotonic spectral axis; the error still names the file.
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(OLD_CUBE, check_wavelength=False)
    assert "monotonic" in assert_names_file(info, OLD_CUBE)


# -- only the needed HDUs are read --------------------------------------------------------
def test_reader_stops_after_wave(tmp_path, dr17):
    """A file cut off after WAVE still reads: nothing after it is looked at."""
    source = dr17[0].path
    with FitsStream(source) as stream:
        end = next(h.offset + h.padded_nbytes for h in stream if h.name == "WAVE")
    cut = tmp_path / "manga-8485-1901-LOGCUBE.fits"
    cut.write_bytes(source.read_bytes()[:end])
    cube = ifsrepr.read(cut)
    np.testing.assert_array_equal(cube.flux.value, dr17[0].flux)
    gz = tmp_path / "manga-8485-1901-LOGCUBE.fits.gz"
    gz.write_bytes(gzip.compress(cut.read_bytes()))
    np.testing.assert_array_equal(ifsrepr.read(gz).ivar.value, dr17[0].ivar)


# -- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.02, 0.5])
def test_truncated_gzip(tmp_path, dr17, keep):
    data = dr17[1].path.read_bytes()
    path = tmp_path / "manga-8485-1901-LOGCUBE.fits.gz"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(TruncatedFileError) as info:
        ifsrepr.read(path)
    assert "truncated" in assert_names_file(info, path)


def test_truncated_gzip_header(tmp_path, dr17):
    path = tmp_path / "manga-8485-1901-LOGCUBE.fits.gz"
    path.write_bytes(dr17[1].path.read_bytes()[:200])
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert_names_file(info, path)


def test_corrupt_gzip(tmp_path, dr17):
    data = bytearray(dr17[1].path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 64] = b"\xff" * 64
    path = tmp_path / "manga-8485-1901-LOGCUBE.fits.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert_names_file(info, path)


def test_truncated_plain_file(tmp_path, dr17):
    data = dr17[0].path.read_bytes()
    path = tmp_path / "manga-8485-1901-LOGCUBE.fits"
    path.write_bytes(data[: len(data) // 10])  # inside FLUX
    with pytest.raises(TruncatedFileError) as info:
        ifsrepr.read(path)
    assert "FLUX" in assert_names_file(info, path)


@pytest.mark.parametrize("missing", ["IVAR", "FLUX"])
def test_missing_required_extension(tmp_path, missing):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", omit={missing})
    with pytest.raises(MissingExtensionError) as info:
        ifsrepr.read(truth.path)
    assert f"no {missing} extension" in assert_names_file(info, truth.path)


def test_missing_mask_warns_and_masks_only_bad_values(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", omit={"MASK"})
    with pytest.warns(CubeReadWarning, match="no MASK extension") as record:
        cube = ifsrepr.read(truth.path)
    assert str(truth.path) in str(record[0].message)
    # Only zero-weight voxels (the uncovered corners) are masked, not the DONOTUSE rim.
    np.testing.assert_array_equal(cube.mask, truth.ivar <= 0)
    assert not np.array_equal(cube.mask, truth.donotuse)


def test_missing_wave_uses_the_wcs(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", omit={"WAVE"})
    with pytest.warns(CubeReadWarning, match="no WAVE extension"):
        cube = ifsrepr.read(truth.path)
    assert cube.meta["wave_source"] == "wcs"
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave, atol=2e-4)


def test_wave_disagreeing_with_wcs(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", wave_shift=0.5)
    with pytest.raises(WavelengthMismatchError) as info:
        ifsrepr.read(truth.path)
    message = assert_names_file(info, truth.path)
    assert "WAVE-LOG" in message and "channel" in message
    # The user can choose either source explicitly.
    from_wave = ifsrepr.read(truth.path, check_wavelength=False)
    np.testing.assert_allclose(from_wave.spectral_axis.to_value(u.AA), truth.wave + 0.5)
    from_wcs = ifsrepr.read(truth.path, wavelength="wcs")
    np.testing.assert_allclose(from_wcs.spectral_axis.to_value(u.AA), truth.wave, atol=2e-4)


def test_gzipped_cube_takes_the_header_grid_unless_wave_is_asked_for(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", wave_shift=0.5)
    # The default stops the streaming pass after MASK: WAVE (behind the LSF
    # cubes) is never decompressed, so its shift goes unseen.
    cube = ifsrepr.read(truth.path)
    assert cube.meta["wave_source"] == "wcs"
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave, atol=2e-4)
    with pytest.raises(WavelengthMismatchError) as info:
        ifsrepr.read(truth.path, wavelength="WAVE")
    assert "WAVE-LOG" in assert_names_file(info, truth.path)


def test_wave_within_tolerance(tmp_path):
    # 0.001 Angstrom is about 0.1% of the bluest channel: well inside the 1% tolerance.
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", wave_shift=0.001)
    cube = ifsrepr.read(truth.path)
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave + 0.001)


def test_bad_wavelength_option(dr17):
    with pytest.raises(ifsrepr.FileFormatError, match="wavelength must be"):
        ifsrepr.read(dr17[0].path, wavelength="header")


def test_nan_flux_is_masked_with_a_warning(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", nan_flux=7)
    with pytest.warns(CubeReadWarning, match="7 FLUX and 0 IVAR values are NaN"):
        cube = ifsrepr.read(truth.path)
    nan = np.isnan(truth.flux)
    assert nan.sum() == 7
    assert cube.mask[nan].all()
    np.testing.assert_array_equal(cube.mask, truth.donotuse | (truth.ivar <= 0) | nan)


def test_all_zero_ivar_is_an_error(tmp_path):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", zero_ivar=True)
    with pytest.raises(NoValidDataError) as info:
        ifsrepr.read(truth.path)
    assert "IVAR is zero" in assert_names_file(info, truth.path)


def test_negative_ivar_is_an_error(tmp_path):
    flux = np.ones((20, 4, 4), dtype=np.float32)
    ivar = np.ones_like(flux)
    ivar[3, 1, 1] = -2.0
    mask = np.zeros(flux.shape, dtype=np.int32)
    truth = write_manga_cube(
        tmp_path / "manga-8485-1901-LOGCUBE.fits", n_wave=20, arrays=(flux, ivar, mask)
    )
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(truth.path)
    assert "negative" in assert_names_file(info, truth.path)


def test_unknown_bunit(tmp_path):
    truth = write_manga_cube(
        tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", bunit="1E-17 erg/s/cm^2/Angstrom/blob"
    )
    with pytest.raises(UnknownUnitError) as info:
        ifsrepr.read(truth.path)
    message = assert_names_file(info, truth.path)
    assert "blob" in message and "unit=" in message
    cube = ifsrepr.read(truth.path, unit="1e-17 erg / (s cm2 Angstrom)")
    assert cube.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")


def test_critical_cube_warns(tmp_path):
    truth = write_manga_cube(
        tmp_path / "manga-8485-1901-LOGCUBE.fits", drp3qual=CRITICAL_DRP3QUAL | 2
    )
    with pytest.warns(CubeReadWarning, match="CRITICAL"):
        cube = ifsrepr.read(truth.path)
    assert cube.meta["drp3qual_flags"] == ["BADDEPTH", "CRITICAL"]


def test_row_stacked_spectra_refused(tmp_path):
    path = tmp_path / "cube.fits"
    primary = manga_primary_header()
    flux = fits.ImageHDU(np.ones((19, 30), dtype=np.float32), name="FLUX")
    fits.HDUList(
        [fits.PrimaryHDU(header=primary), flux, fits.ImageHDU(flux.data, name="IVAR")]
    ).writeto(path)
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert "not cubes" in assert_names_file(info, path)


def test_errors_name_the_file_through_the_cli(tmp_path, capsys):
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits.gz", omit={"IVAR"})
    from ifsrepr.cli import main

    assert main(["info", str(truth.path)]) == 1
    assert str(truth.path) in capsys.readouterr().err


# -- interoperability ---------------------------------------------------------------------
def _specutils_read(path: Path):
    specutils = pytest.importorskip("specutils")
    with warnings.catch_warnings():
        # astropy notes on MaNGA's integer PLATEID and the like; not our concern here.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        return specutils.Spectrum.read(path, format="MaNGA cube")


@pytest.mark.parametrize("which", [0, 1], ids=["fits", "fits.gz"])
def test_specutils_manga_loader_agrees(dr17, which):
    """specutils' own 'MaNGA cube' loader and ifsrepr.read see the same cube."""
    truth = dr17[which]
    theirs = _specutils_read(truth.path)
    ours = ifsrepr.read(truth.path)
    assert theirs.flux.shape == ours.shape
    np.testing.assert_array_equal(theirs.flux.value, ours.flux.value)
    assert theirs.flux.unit.to_string() == ours.unit.to_string()
    np.testing.assert_array_equal(theirs.uncertainty.array, ours.ivar.value)
    # specutils masks every non-zero bit; ifsrepr masks DONOTUSE|NOCOV and zero weight.
    # In DRP output every flag comes with DONOTUSE, so the two agree voxel for voxel.
    np.testing.assert_array_equal(theirs.mask, ours.mask)
    # specutils takes wavelengths from the header WCS, ifsrepr from WAVE: they
    # differ by the DRP's rounding of CD3_3, at most 1.5e-4 Angstrom.
    np.testing.assert_allclose(
        theirs.spectral_axis.to_value(u.AA), ours.spectral_axis.to_value(u.AA), atol=2e-4
    )


def test_specutils_disagrees_on_flags_without_donotuse(tmp_path, dr17):
    """A flag the DRP would pair with DONOTUSE, here alone: specutils masks it, we do not."""
    truth = dr17[0]
    mask = truth.mask.copy()
    mask[:, 3, 3] |= 4  # DEADFIBER without DONOTUSE
    path = tmp_path / "manga-8485-1901-LOGCUBE.fits"
    write_manga_cube(path, arrays=(truth.flux.copy(), truth.ivar.copy(), mask))
    theirs = _specutils_read(path)
    ours = ifsrepr.read(path)
    assert theirs.mask[:, 3, 3].all() and not ours.mask[:, 3, 3].any()


def test_to_specutils_matches_the_loader(dr17):
    ours = ifsrepr.read(dr17[0].path).to_specutils()
    theirs = _specutils_read(dr17[0].path)
    np.testing.assert_array_equal(ours.flux.value, theirs.flux.value)
    np.testing.assert_array_equal(ours.mask, theirs.mask)
    np.testing.assert_array_equal(ours.uncertainty.array, theirs.uncertainty.array)


@spectral_cube_import
def test_spectral_cube_moment0_uses_a_constant_channel_width(dr17):
    """What docs/reading.rst says about spectral-cube on MaNGA's log-lambda axis.

    ``moment0`` multiplies every channel by |CD3_3| (the width of the *first*
    channel), while log-lambda channels widen from 0.83 to 2.38 Angstrom.
    """
    cube = ifsrepr.read(dr17[0].path)
    ones = ifsrepr.IFSCube(
        np.ones(cube.shape, dtype=np.float32) * u.Jy, cube.spectral_axis, wcs=cube.wcs
    )
    spectral_cube = ones.to_spectral_cube()
    moment0 = spectral_cube.moment0().to_value(u.Jy * u.AA)[2, 2]
    assert moment0 == pytest.approx(cube.shape[0] * LOG_CD3_3, rel=1e-6)
    true_integral = np.gradient(cube.spectral_axis.to_value(u.AA)).sum()
    assert moment0 / true_integral == pytest.approx(0.565, abs=0.001)


@spectral_cube_import
def test_spectral_cube_cannot_parse_manga_bunit(dr17):
    spectral_cube = pytest.importorskip("spectral_cube")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cube = spectral_cube.SpectralCube.read(dr17[0].path, hdu="FLUX")
    assert cube.unit == u.dimensionless_unscaled
    assert any("spaxel" in str(w.message) for w in record), [str(w.message) for w in record]


# -- a cube from the project's mock survey ----------------------------------------------
@pytest.mark.slow
def test_reads_a_mock_survey_cube(tmp_path):
    """A cube written by ``ifsrepr mock`` (the project's DR17-format generator)."""
    from ifsrepr.cli import main

    assert main(["mock", str(tmp_path), "--n-galaxies", "1", "--seed", "1"]) == 0
    cubes = sorted(tmp_path.rglob("*-LOGCUBE.fits*"))
    assert cubes, "`ifsrepr mock` wrote no LOGCUBE with its default products"
    assert identify_readers(cubes[0], read_primary_header(cubes[0])) == ["manga-cube"]
    cube = ifsrepr.read(cubes[0])
    assert cube.meta["reader"] == "manga-cube"
    assert cube.shape[0] == 4563
    assert cube.redshift is None  # as in real LOGCUBE headers
    assert 0 < cube.mask.mean() < 1
    theirs = _specutils_read(cubes[0])
    np.testing.assert_array_equal(theirs.flux.value, cube.flux.value)
    np.testing.assert_array_equal(theirs.uncertainty.array, cube.ivar.value)


def _mock_cube(folder: Path) -> Path:
    """One 19-fibre cube from the mock's own building blocks."""
    from ifsrepr.mock import _fitsio, catalog, drp_format, synth
    from ifsrepr.mock import model as mock_model
    from ifsrepr.mock import params as mock_params

    source = catalog.draw_from_catalogue(1, np.random.default_rng(1), fibres=(19,))[0]
    params = mock_params.draw_params(source, np.random.default_rng(2))
    model = mock_model.build_model(params, np.random.default_rng(3))
    cube = synth.observe_cube(model, np.random.default_rng(4))
    hdus = drp_format.cube_hdulist(params, cube, model.footprint.covered)
    return _fitsio.write_fits(hdus, folder / drp_format.cube_filename(params.plateifu))


def test_reads_a_mock_cube_built_by_ifsrepr_mock(tmp_path):
    """The mock's DR17-format writer and this reader (and specutils) agree."""
    path = _mock_cube(tmp_path)
    assert identify_readers(path, read_primary_header(path)) == ["manga-cube"]
    cube = ifsrepr.read(path)
    assert cube.shape == (4563, 34, 34)
    assert cube.unit == MANGA_UNIT
    assert cube.redshift is None
    assert 0 < cube.mask.mean() < 1
    theirs = _specutils_read(path)
    np.testing.assert_array_equal(theirs.flux.value, cube.flux.value)
    np.testing.assert_array_equal(theirs.uncertainty.array, cube.ivar.value)
    np.testing.assert_array_equal(theirs.mask, cube.mask)


def test_copy_is_unchanged():
    """The committed header fixture is byte-identical to its provenance record."""
    import hashlib

    digest = hashlib.sha256(OLD_CUBE.read_bytes()).hexdigest()
    assert digest == "835ad6d8262e9066a88ede80dfbf1a86ad01cd92a33201b12861b7bd7e59165a"
