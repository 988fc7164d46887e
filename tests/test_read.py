"""`ifsrepr.read`: dispatch to readers, and clear errors for every kind of bad input."""

from __future__ import annotations

import gzip
import re
import shutil

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

import ifsrepr
from ifsrepr.io import read_primary_header


class ClaimEverything:
    name = "greedy"

    def identify(self, path, header):
        return True

    def read(self, path, **options):
        raise AssertionError("never reached")


class Returns:
    def __init__(self, name, suffix, outcome):
        self.name, self.suffix, self.outcome = name, suffix, outcome

    def identify(self, path, header):
        return path.name.endswith(self.suffix)

    def read(self, path, **options):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class Plugin:
    def __init__(self, *readers):
        self.readers = readers

    @ifsrepr.hookimpl
    def ifsrepr_register_readers(self, register):
        for reader in self.readers:
            register(reader)


def assert_names_file(excinfo, path):
    """Check the error names ``path``; return the rest of the message (the problem).

    Matching the problem on the rest keeps a word in pytest's tmp_path (which
    holds the test's name) from satisfying the match.
    """
    assert isinstance(excinfo.value, ifsrepr.IFSReprError)
    message = str(excinfo.value)
    assert str(path) in message
    return message.replace(str(path), "<file>")


def test_reads_the_bundled_maps_file(maps_path):
    stack = ifsrepr.read(maps_path)
    assert isinstance(stack, ifsrepr.LineStack)
    assert stack.meta["reader"] == "manga-maps"
    assert stack.meta["filename"] == maps_path.name


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere.fits"
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("no such file", assert_names_file(info, path))


def test_directory(tmp_path):
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(tmp_path)
    assert re.search("is a directory", assert_names_file(info, tmp_path))


def test_non_fits_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("these are not the data you are looking for\n" * 100)
    assert read_primary_header(path) is None
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    problem = assert_names_file(info, path)
    assert re.search(r"no reader recognises this file \(not a FITS file\)", problem)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.touch()
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("not a FITS file", assert_names_file(info, path))


def test_fits_file_no_reader_claims(tmp_path, fresh_plugins):
    path = tmp_path / "other.fits"
    header = fits.Header({"TELESCOP": "NOBODY-KNOWS", "OBJECT": "thing"})
    fits.PrimaryHDU(np.zeros((3, 4, 5), dtype=np.float32), header).writeto(path)
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    message = str(info.value)
    assert_names_file(info, path)
    assert "no reader recognises this file (a FITS file)" in message
    tried = ifsrepr.plugins.get_readers().names()
    assert "manga-maps" in tried
    assert f"tried: {', '.join(tried)}" in message
    assert "reader=NAME" in message


def test_ambiguous_claims(use_plugins, maps_path):
    use_plugins(greedy=Plugin(ClaimEverything()))
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(maps_path)
    assert re.search("several readers claim", assert_names_file(info, maps_path))
    assert "greedy" in str(info.value)
    assert "manga-maps" in str(info.value)
    # Naming the reader settles it.
    assert len(ifsrepr.read(maps_path, reader="manga-maps")) == 22


def test_unknown_reader_name(maps_path, fresh_plugins):
    with pytest.raises(ifsrepr.UnknownNameError) as info:
        ifsrepr.read(maps_path, reader="manga-mapz")
    message = str(info.value)
    assert "unknown reader 'manga-mapz'" in message
    for name in ifsrepr.plugins.get_readers().names():
        assert name in message


def test_reader_name_skips_identification(tmp_path, maps_path):
    renamed = tmp_path / "whatever.bin"
    shutil.copyfile(maps_path, renamed)
    assert len(ifsrepr.read(renamed, reader="manga-maps")) == 22


def test_reader_options_are_passed(maps_path, maps_hdus, channel_index):
    summed = ifsrepr.read(maps_path, extension="EMLINE_SFLUX")
    assert summed.meta["extension"] == "EMLINE_SFLUX"
    sflux = maps_hdus["EMLINE_SFLUX"]
    assert not np.array_equal(sflux.data, maps_hdus["EMLINE_GFLUX"].data)
    for name in summed.line_names:
        plane = sflux.data[channel_index(sflux.header, name)]
        assert np.array_equal(summed.flux[summed.index(name)], plane), name
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(maps_path, extension="emline_nope")
    assert re.search("no EMLINE_NOPE extension", assert_names_file(info, maps_path))


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.6, 0.999])
def test_truncated_fits_gz(tmp_path, maps_path, fraction):
    data = maps_path.read_bytes()
    cut = tmp_path / "cut-MAPS.fits.gz"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(cut)
    assert re.search("truncated", assert_names_file(info, cut))


@pytest.mark.parametrize("fraction", [0.05, 0.6, 0.999])
def test_truncated_plain_fits(tmp_path, maps_path, fraction):
    data = gzip.decompress(maps_path.read_bytes())
    cut = tmp_path / "cut-MAPS.fits"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(cut)
    assert re.search("truncated", assert_names_file(info, cut))


def test_uncompressed_copy_reads_the_same(tmp_path, maps_path):
    plain = tmp_path / "plain-MAPS.fits"
    plain.write_bytes(gzip.decompress(maps_path.read_bytes()))
    assert ifsrepr.read(plain).flux.tobytes() == ifsrepr.read(maps_path).flux.tobytes()


def test_gzip_with_bad_checksum(tmp_path, maps_path):
    data = bytearray(maps_path.read_bytes())
    data[-8:-4] = bytes(4)  # the gzip trailer's CRC32
    broken = tmp_path / "crc-MAPS.fits.gz"
    broken.write_bytes(bytes(data))
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(broken)
    assert re.search("corrupt", assert_names_file(info, broken))


def test_gzip_with_corrupt_start(tmp_path):
    path = tmp_path / "junk.fits.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("cannot read the file header", assert_names_file(info, path))


def test_corrupt_primary_header(tmp_path):
    path = tmp_path / "bad-header.fits"
    card = "SIMPLE  =                    T".ljust(80)
    path.write_bytes((card + "NOT A CARD \x00\x01 at all" * 200).encode("latin-1")[: 2880 * 2])
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("primary header is corrupt", assert_names_file(info, path))


def test_maps_missing_emline_gflux(tmp_path, maps_hdus, write_fits):
    del maps_hdus["EMLINE_GFLUX"]
    path = write_fits(maps_hdus, tmp_path / "noflux-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("no EMLINE_GFLUX extension", assert_names_file(info, path))


def test_maps_missing_ivar(tmp_path, maps_hdus, write_fits):
    del maps_hdus["EMLINE_GFLUX_IVAR"]
    path = write_fits(maps_hdus, tmp_path / "noivar-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("no EMLINE_GFLUX_IVAR extension", assert_names_file(info, path))


def test_maps_channel_name_that_does_not_parse(tmp_path, maps_hdus, write_fits, channel_index):
    header = maps_hdus["EMLINE_GFLUX"].header
    key = f"C{channel_index(header, 'Ha-6564') + 1:02d}"
    header[key] = "H alpha"
    path = write_fits(maps_hdus, tmp_path / "badname-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    message = str(info.value)
    assert_names_file(info, path)
    assert f"cannot parse channel name {key}='H alpha'" in message


def test_maps_channel_name_missing(tmp_path, maps_hdus, write_fits):
    header = maps_hdus["EMLINE_GFLUX"].header
    del header["C07"]
    path = write_fits(maps_hdus, tmp_path / "nokey-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("no C07 key naming channel 7", assert_names_file(info, path))


def test_maps_repeated_channel_name(tmp_path, maps_hdus, write_fits):
    header = maps_hdus["EMLINE_GFLUX"].header
    header["C02"] = header["C01"]
    path = write_fits(maps_hdus, tmp_path / "twice-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("repeated channel names", assert_names_file(info, path))


def test_maps_unknown_bunit(tmp_path, maps_hdus, write_fits):
    maps_hdus["EMLINE_GFLUX"].header["BUNIT"] = "1E-17 furlong/fortnight"
    path = write_fits(maps_hdus, tmp_path / "unit-MAPS.fits")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("unknown BUNIT", assert_names_file(info, path))


def test_reader_that_crashes_is_named(use_plugins, tmp_path):
    path = tmp_path / "data.crash"
    path.write_bytes(b"x")
    use_plugins(fragile=Plugin(Returns("crasher", ".crash", ZeroDivisionError("oops"))))
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    message = str(info.value)
    assert_names_file(info, path)
    assert "reader 'crasher' (plugin 'fragile') failed: ZeroDivisionError: oops" in message


def test_reader_returning_the_wrong_type(use_plugins, tmp_path):
    path = tmp_path / "data.odd"
    path.write_bytes(b"x")
    use_plugins(odd=Plugin(Returns("odd-reader", ".odd", {"not": "a cube"})))
    with pytest.raises(ifsrepr.FileFormatError) as info:
        ifsrepr.read(path)
    assert re.search("returned dict, not an IFSCube", assert_names_file(info, path))


def test_example_survey_read_through_entry_point(tmp_path, example_survey, fresh_plugins):
    rng = np.random.default_rng(7)
    flux = rng.normal(10.0, 1.0, size=(40, 5, 6))
    ivar = rng.uniform(0.5, 2.0, size=flux.shape)
    path = example_survey.write_example_cube(
        tmp_path / "galaxy.fits",
        flux,
        ivar,
        crval3=4500.0,
        cdelt3=1.5,
        ra=10.0,
        dec=-5.0,
        redshift=0.031,
    )
    cube = ifsrepr.read(path)
    assert isinstance(cube, ifsrepr.IFSCube)
    assert cube.meta["reader"] == "example-survey"
    assert ifsrepr.plugins.get_readers().registration("example-survey").plugin == "example-survey"
    assert np.array_equal(cube.flux.value, flux)
    assert cube.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)") / ifsrepr.units.spaxel
    assert np.array_equal(cube.ivar.value, ivar)
    with fits.open(path) as hdus:
        header = hdus[0].header
        expected_wave = header["CRVAL3"] + header["CDELT3"] * np.arange(header["NAXIS3"])
    np.testing.assert_allclose(cube.spectral_axis.to_value(u.AA), expected_wave, rtol=1e-12)
    assert cube.redshift == pytest.approx(0.031)
    assert tuple(cube.wcs.wcs.crval) == (10.0, -5.0)
    # The MaNGA reader does not claim it, and the example reader does not claim MaNGA files.
    assert ifsrepr.io.identify_readers(path, read_primary_header(path)) == ["example-survey"]


def test_example_survey_gzipped(tmp_path, example_survey):
    flux = np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5)
    path = example_survey.write_example_cube(tmp_path / "g.fits.gz", flux, np.ones_like(flux))
    assert np.array_equal(ifsrepr.read(path).flux.value, flux)


def test_data_model_errors_of_any_reader_name_the_file(use_plugins, tmp_path):
    class BrokenReader:
        name = "broken"

        def identify(self, path, header):
            return str(path).endswith(".broken")

        def read(self, path, **options):
            # A reader handing over arrays that do not fit together.
            return ifsrepr.LineStack(ifsrepr.lines.resolve_lines(["Ha-6564"]), np.zeros((2, 3, 3)))

    class Plugin:
        @ifsrepr.hookimpl
        def ifsrepr_register_readers(self, register):
            register(BrokenReader())

    use_plugins(broken=Plugin())
    path = tmp_path / "galaxy.broken"
    path.write_text("not FITS")
    with pytest.raises(ifsrepr.FileFormatError, match=r"galaxy\.broken: flux must be shaped"):
        ifsrepr.read(path)


class Records:
    """A reader that records the options it was given (``takes_ranges``: names the hint)."""

    def __init__(self, name, suffix, cube, takes_ranges):
        self.name, self.suffix, self.cube, self.seen = name, suffix, cube, []
        if takes_ranges:
            self.read = self._read_with_ranges

    def identify(self, path, header):
        return path.name.endswith(self.suffix)

    def read(self, path, **options):
        self.seen.append(options)
        return self.cube

    def _read_with_ranges(self, path, *, wavelength_ranges=None):
        self.seen.append({"wavelength_ranges": wavelength_ranges})
        return self.cube


def test_wavelength_hint_goes_only_to_readers_that_name_it(use_plugins, tmp_path):
    cube = ifsrepr.IFSCube(np.ones((5, 2, 2)) * u.Jy, np.linspace(6000.0, 6100.0, 5) * u.AA)
    hinted = Records("hinted", ".hint", cube, takes_ranges=True)
    plain = Records("plain", ".plain", cube, takes_ranges=False)
    use_plugins(recorders=Plugin(hinted, plain))
    ranges = [(6010.0, 6050.0)]
    for reader in (hinted, plain):
        path = tmp_path / f"cube{reader.suffix}"
        path.write_bytes(b"x")
        assert ifsrepr.read(path, wavelength_ranges=ranges) is cube
        ifsrepr.read(path)
    assert hinted.seen == [{"wavelength_ranges": ranges}, {"wavelength_ranges": None}]
    assert plain.seen == [{}, {}]  # a reader taking **options is not sent the hint


def test_gzipped_manga_cube_keeps_the_channels_asked_for(tmp_path):
    import cube_fixtures

    path = tmp_path / "manga-8485-1901-LOGCUBE.fits.gz"
    truth = cube_fixtures.write_manga_cube(path, n=5)
    wave = cube_fixtures.log_wavelengths()
    ranges = [(6500.0, 6600.0), (4800.0, 4900.0)]
    cube = ifsrepr.read(path, wavelength_ranges=ranges)
    kept = np.zeros(wave.size, dtype=bool)
    for start, stop in cube.meta["channels_read"]:
        kept[start:stop] = True
    for low, high in ranges:  # every channel asked for, and two either side
        inside = np.flatnonzero((wave >= low) & (wave <= high))
        assert kept[inside[0] - 2 : inside[-1] + 3].all()
    assert kept.sum() < 0.1 * wave.size
    np.testing.assert_array_equal(cube.flux.value[kept], truth.flux[kept])
    assert cube.mask[~kept].all() and not cube.ivar.value[~kept].any()
    # Uncompressed files are memory-mapped: nothing unused is read anyway.
    plain = tmp_path / "manga-8485-1901-LOGCUBE.fits"
    cube_fixtures.write_manga_cube(plain, n=5)
    assert "channels_read" not in ifsrepr.read(plain, wavelength_ranges=ranges).meta
    # Ranges outside the cube: it is read whole.
    assert "channels_read" not in ifsrepr.read(path, wavelength_ranges=[(100.0, 200.0)]).meta
