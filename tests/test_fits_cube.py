"""The ``fits-cube`` reader (MUSE-, CALIFA-, SAMI-like cubes) and `FitsStream`."""

from __future__ import annotations

import gzip
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from cube_fixtures import write_fits_cube, write_manga_cube

import ifsrepr
from ifsrepr.io import identify_readers, read_primary_header
from ifsrepr.io.fits_cube import (
    CubeReadWarning,
    FitsCubeReader,
    FitsStream,
    MissingExtensionError,
    NoValidDataError,
    TruncatedFileError,
    UnknownUnitError,
)


def claims(path: Path) -> list[str]:
    return identify_readers(path, read_primary_header(path))


def assert_names_file(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert message.startswith(str(path)), message
    return message


# -- identification -------------------------------------------------------------------
@pytest.mark.parametrize("style", ["MUSE", "CALIFA", "SAMI", "BARE"])
def test_cube_styles_are_claimed(tmp_path, style):
    truth = write_fits_cube(tmp_path / f"{style.lower()}.fits", style=style)
    assert claims(truth.path) == ["fits-cube"]


def test_muse_without_eso_keys_is_not_claimed_but_can_be_forced(tmp_path):
    """An empty primary says nothing about a cube in extension 1: no claim."""
    truth = write_fits_cube(
        tmp_path / "cube.fits", style="MUSE", extra_primary={"HIERARCH ESO PRO CATG": "OTHER"}
    )
    assert claims(truth.path) == []
    cube = ifsrepr.read(truth.path, reader="fits-cube")
    np.testing.assert_array_equal(cube.flux.value[~truth.mask], truth.flux[~truth.mask])


def test_eso_phase3_prodcatg_is_claimed(tmp_path):
    truth = write_fits_cube(
        tmp_path / "ADP.2017-01-01T00:00:00.000.fits",
        style="MUSE",
        extra_primary={"HIERARCH ESO PRO CATG": "OTHER", "PRODCATG": "SCIENCE.CUBE.IFS"},
    )
    assert claims(truth.path) == ["fits-cube"]


def test_manga_files_are_not_claimed(tmp_path, maps_path):
    reader = FitsCubeReader()
    manga = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", n=4, n_wave=30)
    assert not reader.identify(manga.path, read_primary_header(manga.path))
    assert not reader.identify(maps_path, read_primary_header(maps_path))
    # Even a MaNGA-like cube in a primary HDU is left alone.
    header = fits.Header({"NAXIS": 3, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN"})
    header["CTYPE3"] = "WAVE-LOG"
    assert reader.identify(Path("x.fits"), header)
    header["INSTRUME"] = "MaNGA"
    assert not reader.identify(Path("x.fits"), header)
    del header["INSTRUME"]
    header["TELESCOP"] = "SDSS 2.5-M"
    assert not reader.identify(Path("x.fits"), header)


def test_non_spectral_cubes_are_not_claimed():
    reader = FitsCubeReader()
    header = fits.Header({"NAXIS": 3, "CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"})
    header["CTYPE3"] = "VRAD"  # a radio velocity cube
    assert not reader.identify(Path("x.fits"), header)
    header["CTYPE3"] = "FREQ"
    assert reader.identify(Path("x.fits"), header)
    header["CTYPE1"] = "PIXEL"
    assert not reader.identify(Path("x.fits"), header)
    assert not reader.identify(Path("x.fits"), None)
    assert not reader.identify(Path("x.fits"), fits.Header({"NAXIS": 2}))


def test_gives_way_to_a_specific_reader(tmp_path, example_survey):
    """The example plugin's files are 3-D spectral cubes too; fits-cube defers."""
    flux = np.ones((10, 3, 4))
    path = example_survey.write_example_cube(tmp_path / "g.fits", flux, np.ones_like(flux))
    assert FitsCubeReader().identify.__self__.fallback is True
    assert claims(path) == ["example-survey"]
    forced = ifsrepr.read(path, reader="fits-cube")
    assert forced.meta["reader"] == "fits-cube"
    np.testing.assert_array_equal(forced.ivar.value, np.ones_like(flux))


# -- reading -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_muse_like(tmp_path, suffix):
    truth = write_fits_cube(tmp_path / f"DATACUBE_FINAL{suffix}", style="MUSE")
    cube = ifsrepr.read(truth.path)
    assert cube.meta["reader"] == "fits-cube"
    assert cube.meta["hdu"] == "DATA"
    assert cube.meta["uncertainty"] == "variance"
    assert cube.meta["air_wavelengths"] is True
    assert cube.meta["instrume"] == "MUSE"
    assert cube.unit == u.Unit("1e-20 erg / (s cm2 Angstrom)")
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), truth.wave)
    np.testing.assert_array_equal(cube.mask, truth.mask)  # NaN edge + DQ flag
    np.testing.assert_allclose(cube.ivar.value, truth.ivar, rtol=1e-6)
    good = ~truth.mask
    np.testing.assert_array_equal(cube.flux.value[good], truth.flux[good])
    assert tuple(cube.wcs.wcs.crval) == pytest.approx((150.1, 2.2))


def test_califa_like(tmp_path):
    truth = write_fits_cube(tmp_path / "UGC00005.V500.rscube.fits.gz", style="CALIFA")
    cube = ifsrepr.read(truth.path)
    assert cube.meta["hdu"] == "PRIMARY"
    assert cube.meta["uncertainty"] == "stddev"
    assert cube.unit == u.Unit("1e-16 erg / (s cm2 Angstrom)")
    np.testing.assert_array_equal(cube.mask, truth.mask)  # BADPIX
    np.testing.assert_allclose(cube.ivar.value, truth.ivar, rtol=1e-6)
    assert cube.meta["air_wavelengths"] is False


def test_sami_like(tmp_path):
    truth = write_fits_cube(tmp_path / "sami_cube_blue.fits", style="SAMI")
    cube = ifsrepr.read(truth.path)
    assert cube.meta["uncertainty"] == "variance"
    assert cube.unit == u.Unit("1e-16 erg / (s cm2 Angstrom pix)")
    np.testing.assert_array_equal(cube.mask, truth.mask)  # NaN column


def test_no_uncertainty_warns(tmp_path):
    truth = write_fits_cube(tmp_path / "bare.fits", style="BARE")
    with pytest.warns(CubeReadWarning, match="no uncertainty extension") as record:
        cube = ifsrepr.read(truth.path)
    assert str(truth.path) in str(record[0].message)
    np.testing.assert_array_equal(cube.ivar.value, 1.0)
    assert cube.meta["uncertainty"] is None


def test_explicit_extension_options(tmp_path):
    truth = write_fits_cube(tmp_path / "califa.fits", style="CALIFA")
    cube = ifsrepr.read(truth.path, hdu=0, error_hdu="ERROR", error_type="variance")
    # Declared a variance, the sigma extension gives 1/sigma (= 2 here), not 1/sigma**2.
    np.testing.assert_allclose(cube.ivar.value[~truth.mask], 2.0)
    with pytest.raises(ValueError, match="error_type"):
        ifsrepr.read(truth.path, error_type="weights")
    with pytest.raises(MissingExtensionError) as info:
        ifsrepr.read(truth.path, error_hdu="NOPE")
    assert_names_file(info, truth.path)
    with pytest.raises(MissingExtensionError):
        ifsrepr.read(truth.path, hdu="NOPE")


def test_redshift_from_header_or_option(tmp_path):
    truth = write_fits_cube(tmp_path / "c.fits", style="CALIFA", extra_primary={"Z": 0.0123})
    assert ifsrepr.read(truth.path).redshift == pytest.approx(0.0123)
    assert ifsrepr.read(truth.path, redshift=0.5).redshift == pytest.approx(0.5)


def test_unknown_and_missing_bunit(tmp_path):
    truth = write_fits_cube(tmp_path / "c.fits", style="CALIFA", bunit="counts per blob")
    with pytest.raises(UnknownUnitError) as info:
        ifsrepr.read(truth.path)
    assert "unit=" in assert_names_file(info, truth.path)
    assert ifsrepr.read(truth.path, unit="adu").unit == u.adu
    truth = write_fits_cube(tmp_path / "d.fits", style="CALIFA", bunit=" ")
    with pytest.warns(CubeReadWarning, match="no BUNIT"):
        assert ifsrepr.read(truth.path).unit == u.dimensionless_unscaled


def test_everything_masked_is_an_error(tmp_path):
    path = tmp_path / "nan.fits"
    header = write_fits_cube(tmp_path / "c.fits", style="BARE").primary
    fits.PrimaryHDU(np.full((5, 3, 3), np.nan, dtype=np.float32), header).writeto(path)
    with pytest.warns(CubeReadWarning), pytest.raises(NoValidDataError) as info:
        ifsrepr.read(path)
    assert_names_file(info, path)


def test_spectral_axis_must_be_axis_3(tmp_path):
    path = tmp_path / "wrong.fits"
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"], header["CTYPE3"] = "WAVE", "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CDELT1"], header["CUNIT1"] = 5000.0, 1.0, "Angstrom"
    header["BUNIT"] = "erg/s/cm2/Angstrom"
    fits.PrimaryHDU(np.ones((3, 4, 20), dtype=np.float32), header).writeto(path)
    with pytest.raises(ifsrepr.FileFormatError, match="axis 3"):
        ifsrepr.read(path, reader="fits-cube")


def test_forced_on_a_manga_cube(tmp_path):
    """reader='fits-cube' reads a MaNGA cube generically (ERRDATA/QUALDATA in its header)."""
    truth = write_manga_cube(tmp_path / "manga-8485-1901-LOGCUBE.fits", n=4, n_wave=50)
    cube = ifsrepr.read(truth.path, reader="fits-cube")
    assert cube.meta["hdu"] == "FLUX" and cube.meta["uncertainty"] == "ivar"
    np.testing.assert_array_equal(cube.mask, (truth.mask != 0) | (truth.ivar <= 0))
    np.testing.assert_array_equal(cube.ivar.value, truth.ivar)


def test_truncated_gzip_cube(tmp_path):
    truth = write_fits_cube(tmp_path / "DATACUBE.fits.gz", style="MUSE", shape=(400, 20, 20))
    data = truth.path.read_bytes()
    path = tmp_path / "DATACUBE_cut.fits.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError) as info:
        ifsrepr.read(path)
    assert_names_file(info, path)


# -- FitsStream ------------------------------------------------------------------------
@pytest.fixture
def mixed_file(tmp_path) -> Path:
    """Images of every BITPIX, a scaled one, a table, and an empty extension."""
    rng = np.random.default_rng(3)
    hdus = fits.HDUList([fits.PrimaryHDU(rng.normal(size=(3, 4)).astype(np.float32))])
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64):
        hdus.append(
            fits.ImageHDU((rng.random((5, 6, 7)) * 100).astype(dtype), name=f"A{dtype.__name__}")
        )
    hdus.append(fits.ImageHDU(np.arange(12, dtype=np.uint16).reshape(3, 4), name="UNSIGNED"))
    scaled = fits.ImageHDU(np.arange(6, dtype=np.float64).reshape(2, 3), name="SCALED")
    scaled.scale("int16", bscale=0.5, bzero=10)
    hdus.append(scaled)
    hdus.append(fits.BinTableHDU.from_columns([fits.Column("X", "E", array=np.arange(3.0))]))
    hdus.append(fits.ImageHDU(name="EMPTY"))
    path = tmp_path / "mixed.fits"
    hdus.writeto(path)
    return path


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("memmap", [False, True])
def test_stream_matches_astropy(tmp_path, mixed_file, compressed, memmap):
    path = mixed_file
    if compressed:
        path = tmp_path / "mixed.fits.gz"
        path.write_bytes(gzip.compress(mixed_file.read_bytes()))
    with fits.open(mixed_file) as reference, FitsStream(path, memmap=memmap) as stream:
        seen = []
        for hdu in stream:
            seen.append(hdu.name)
            expected = reference[hdu.index]
            assert hdu.header == expected.header
            if hdu.is_image and hdu.shape:
                np.testing.assert_array_equal(stream.read_data(hdu), expected.data)
        assert stream.compressed is compressed
        assert len(seen) == len(reference)
        assert seen[0] == "PRIMARY" and seen[-1] == "EMPTY"


def test_stream_read_data_rules(mixed_file):
    with FitsStream(mixed_file) as stream:
        hdus = iter(stream)
        first = next(hdus)
        stream.read_data(first)
        with pytest.raises(RuntimeError):
            stream.read_data(first)
        second = next(hdus)
        next(hdus)
        with pytest.raises(RuntimeError):
            stream.read_data(second)
    with pytest.raises(RuntimeError):
        iter(FitsStream(mixed_file)).__next__()


def test_stream_bad_files(tmp_path):
    empty = tmp_path / "empty.fits"
    empty.touch()
    text = tmp_path / "text.fits"
    text.write_text("hello " * 1000)
    junk = tmp_path / "junk.fits"
    fits.PrimaryHDU(np.ones(3)).writeto(junk)
    junk.write_bytes(junk.read_bytes() + b"\0" * 2880)  # trailing padding: tolerated
    for path, problem in ((empty, "empty"), (text, "not a FITS file")):
        with pytest.raises(ifsrepr.FileFormatError, match=problem), FitsStream(path) as stream:
            list(stream)
    with FitsStream(junk) as stream:
        assert [hdu.name for hdu in stream] == ["PRIMARY"]
    with pytest.raises(ifsrepr.FileFormatError, match="cannot open"):
        FitsStream(tmp_path / "missing.fits").__enter__()


def test_stream_stops_early_without_reading_the_rest(tmp_path):
    """Breaking out after the first HDUs never touches a broken tail.

    (The decompressor reads ahead by a few megabytes, so the tail must be
    further away than that.)
    """
    rng = np.random.default_rng(0)
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(np.arange(10, dtype=np.int16), name="SMALL"),
            fits.ImageHDU(rng.random(1_000_000), name="BIG"),  # 8 MB of noise
        ]
    )
    plain = tmp_path / "big.fits"
    hdus.writeto(plain)
    data = gzip.compress(plain.read_bytes(), compresslevel=1)
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(data[: len(data) - 200])
    with FitsStream(path) as stream:
        for hdu in stream:
            if hdu.name == "SMALL":
                np.testing.assert_array_equal(stream.read_data(hdu), np.arange(10))
                break
    with pytest.raises(TruncatedFileError), FitsStream(path) as stream:
        for hdu in stream:
            if hdu.is_image and hdu.shape:
                stream.read_data(hdu)


@pytest.mark.parametrize("compressed", [False, True])
def test_stream_reads_only_the_planes_asked_for(tmp_path, compressed):
    """``planes`` keeps some channels of a cube and leaves the others zero."""
    cube = np.random.default_rng(3).normal(size=(50, 4, 5)).astype(">f4")
    plain = tmp_path / "cube.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, name="FLUX")]).writeto(plain)
    path = plain
    if compressed:
        path = tmp_path / "cube.fits.gz"
        path.write_bytes(gzip.compress(plain.read_bytes()))
    planes = [(30, 45), (2, 5), (40, 52), (-3, 1)]  # unsorted, overlapping, off the ends
    with FitsStream(path, memmap=False) as stream:
        for hdu in stream:
            if hdu.name == "FLUX":
                data = stream.read_data(hdu, planes)
    kept = np.zeros(50, dtype=bool)
    kept[[*range(0, 1), *range(2, 5), *range(30, 50)]] = True
    np.testing.assert_array_equal(data[kept], cube[kept])
    assert not data[~kept].any()
    assert data.dtype.isnative
    # A memory map reads nothing until used anyway: planes change nothing there.
    if not compressed:
        with FitsStream(path, memmap=True) as stream:
            for hdu in stream:
                if hdu.name == "FLUX":
                    np.testing.assert_array_equal(stream.read_data(hdu, planes), cube)


def test_stream_planes_in_a_truncated_file(tmp_path):
    """Planes before the cut are read; asking for one after it is a clear error.

    (The decompressing thread reads ahead by some megabytes: 26 MB of noise
    keeps the cut far enough from the first planes.)
    """
    cube = np.random.default_rng(4).normal(size=(40, 300, 270))
    plain = tmp_path / "cube.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, name="FLUX")]).writeto(plain)
    path = tmp_path / "cut.fits.gz"
    data = gzip.compress(plain.read_bytes(), compresslevel=1)
    path.write_bytes(data[: len(data) // 2])
    with FitsStream(path) as stream:
        for hdu in stream:
            if hdu.name == "FLUX":
                stream.read_data(hdu, [(0, 5)])  # well before the cut: fine
                break
    with pytest.raises(TruncatedFileError, match="truncated"), FitsStream(path) as stream:
        for hdu in stream:
            if hdu.name == "FLUX":
                stream.read_data(hdu, [(0, 5), (35, 40)])
