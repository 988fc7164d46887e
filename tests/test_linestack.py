"""`LineStack`: validation, selection by name, and the FITS round trip."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import ifsrepr
from ifsrepr import DataModelError, EmissionLine, LineStack, UnknownNameError
from ifsrepr.lines import find_line, get_line_set, resolve_lines

UNIT = "1E-17 erg/s/cm^2/spaxel"


def celestial(ny, nx):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [317.9032, 11.496943]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    wcs.wcs.pc = [[-0.000138889, 0.0], [0.0, 0.000138889]]
    wcs.wcs.set()
    return wcs


def make_stack(*, redshift=0.0293, meta=None, seed=0, wcs=True):
    """Four lines: three from the DAP table (with side-bands), one custom without."""
    lines = (
        *resolve_lines(["Hb-4862", "OIII-5008", "Ha-6564"]),
        EmissionLine("Custom-7000", 7000.25 * u.AA),
    )
    rng = np.random.default_rng(seed)
    shape = (len(lines), 6, 7)
    flux = rng.normal(2.0, 1.0, shape).astype(np.float32)
    flux[1, 2, 3] = np.nan
    ivar = rng.uniform(0.1, 3.0, shape).astype(np.float32)
    mask = rng.random(shape) < 0.2
    return LineStack(
        lines,
        flux,
        UNIT,
        ivar,
        mask,
        wcs=celestial(6, 7) if wcs else None,
        redshift=redshift,
        meta={"plateifu": "7815-3702", "nested": {"a": [1, 2.5, None]}, "ok": True}
        if meta is None
        else meta,
    )


# -- validation --------------------------------------------------------------------


def test_construction_validates():
    lines = resolve_lines(["Hb-4862", "Ha-6564"])
    with pytest.raises(DataModelError, match="EmissionLine objects"):
        LineStack(["Hb-4862", "Ha-6564"], np.ones((2, 3, 3)))
    with pytest.raises(DataModelError, match="more than once"):
        LineStack([lines[0], lines[0]], np.ones((2, 3, 3)))
    with pytest.raises(DataModelError, match="plain array"):
        LineStack(lines, np.ones((2, 3, 3)) * u.Jy)
    with pytest.raises(DataModelError, match=r"n_lines=2, ny, nx\), got \(3, 3, 3\)"):
        LineStack(lines, np.ones((3, 3, 3)))
    with pytest.raises(DataModelError, match="numeric"):
        LineStack(lines, np.full((2, 3, 3), "x"))
    with pytest.raises(DataModelError, match="ivar shape"):
        LineStack(lines, np.ones((2, 3, 3)), ivar=np.ones((2, 3, 2)))
    with pytest.raises(DataModelError, match="mask shape"):
        LineStack(lines, np.ones((2, 3, 3)), mask=np.zeros((2, 3), bool))
    with pytest.raises(DataModelError, match="boolean"):
        LineStack(lines, np.ones((2, 3, 3)), mask=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataModelError, match="WCS describes"):
        wcs = celestial(5, 5)
        wcs.array_shape = (5, 5)
        LineStack(lines, np.ones((2, 3, 3)), wcs=wcs)


def test_non_finite_values_are_masked():
    stack = make_stack()
    assert np.isnan(stack.flux[1, 2, 3])
    assert stack.mask[1, 2, 3]
    assert stack.mask.sum() >= 1
    assert stack["OIII-5008"].mask[2, 3]


def test_line_table_statistics():
    stack = make_stack()
    table = stack.line_table()
    assert list(table["name"]) == stack.line_names
    for i, row in enumerate(table):
        good = ~stack.mask[i]
        assert row["n_good"] == good.sum()
        assert row["median_flux"] == pytest.approx(np.median(stack.flux[i][good]))
        snr = stack.flux[i][good] * np.sqrt(stack.ivar[i][good])
        assert row["median_snr"] == pytest.approx(np.median(snr))
    assert table["median_flux"].unit == stack.unit


# -- selection ---------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["Ha-6564", "Ha", "ha_6564", "HA-6564", "ha"])
def test_index_by_name_and_aliases(alias):
    stack = make_stack()
    assert stack.index(alias) == stack.line_names.index("Ha-6564")
    assert np.array_equal(stack[alias].unmasked.value, stack.flux[stack.index("Ha-6564")])


def test_getitem_is_a_masked_quantity():
    stack = make_stack()
    i = stack.index("Hb")
    halpha = stack["Hb"]
    assert halpha.unit == stack.unit
    assert np.array_equal(halpha.mask, stack.mask[i])
    with pytest.raises(TypeError, match="by line name"):
        stack[0]


def test_ambiguous_species(maps_path):
    stack = ifsrepr.read(maps_path)
    with pytest.raises(UnknownNameError) as info:
        stack.index("SII")
    message = str(info.value)
    assert "'SII' is ambiguous" in message
    sulphur = [name for name in stack.line_names if name.startswith("SII-")]
    assert len(sulphur) == 2
    for name in sulphur:
        assert name in message


def test_unknown_line_lists_the_lines():
    stack = make_stack()
    with pytest.raises(UnknownNameError) as info:
        stack.index("NII-6585")
    for name in stack.line_names:
        assert name in str(info.value)


def test_select_in_the_order_given():
    stack = make_stack()
    chosen = stack.select(["ha_6564", "Hb"])
    assert chosen.line_names == ["Ha-6564", "Hb-4862"]
    for name in chosen.line_names:
        i, j = chosen.index(name), stack.index(name)
        assert np.array_equal(chosen.flux[i], stack.flux[j], equal_nan=True)
        assert np.array_equal(chosen.ivar[i], stack.ivar[j])
        assert np.array_equal(chosen.mask[i], stack.mask[j])
    assert chosen.unit == stack.unit and chosen.redshift == stack.redshift
    assert chosen.wcs.to_header() == stack.wcs.to_header()
    with pytest.raises(UnknownNameError):
        stack.select(["Ha-6564", "NII-6585"])


@pytest.mark.parametrize("as_names", [False, True])
def test_select_missing_mask(as_names):
    stack = make_stack()
    wanted = [find_line("NII-6585"), find_line("Ha-6564"), find_line("SII-6718")]
    chosen = stack.select([line.name for line in wanted] if as_names else wanted, missing="mask")
    assert chosen.line_names == ["NII-6585", "Ha-6564", "SII-6718"]
    assert chosen.meta["missing_lines"] == ["NII-6585", "SII-6718"]
    for name in ("NII-6585", "SII-6718"):
        i = chosen.index(name)
        assert chosen.mask[i].all()
        assert not chosen.flux[i].any() and not chosen.ivar[i].any()
        assert chosen.lines[i].rest_wavelength == find_line(name).rest_wavelength
    i = chosen.index("Ha-6564")
    assert np.array_equal(chosen.flux[i], stack.flux[stack.index("Ha-6564")])


def test_select_missing_mask_on_real_dr15_maps(maps_path):
    stack = ifsrepr.read(maps_path)
    manga19 = get_line_set("manga19")
    chosen = stack.select(manga19, missing="mask")
    assert chosen.lines == manga19
    absent = sorted({line.name for line in manga19} - set(stack.line_names))
    assert absent  # DR15 fits 22 lines, not all of manga19
    assert chosen.meta["missing_lines"] == absent
    by_name = stack.select([line.name for line in manga19], missing="mask")
    assert by_name == chosen


def test_select_missing_rules():
    stack = make_stack()
    with pytest.raises(ValueError, match="'raise' or 'mask'"):
        stack.select(["Ha"], missing="ignore")
    with pytest.raises(UnknownNameError):  # not a line anyone knows: nothing to mask
        stack.select(["Zz-1234"], missing="mask")


# -- FITS round trip ---------------------------------------------------------------


def assert_same(read, written):
    assert read.line_names == written.line_names
    for ours, theirs in zip(read.lines, written.lines, strict=True):
        assert ours.rest_wavelength == theirs.rest_wavelength
        assert ours.blueside == theirs.blueside
        assert ours.redside == theirs.redside
    assert read.flux.dtype == written.flux.dtype
    assert np.array_equal(read.flux, written.flux, equal_nan=True)
    assert np.array_equal(read.ivar, written.ivar)
    assert np.array_equal(read.mask, written.mask)
    assert read.unit == written.unit
    assert read.redshift == written.redshift
    assert read.meta == written.meta
    if written.wcs is None:
        assert read.wcs is None
    else:
        assert read.wcs.to_header() == written.wcs.to_header()
    assert read == written


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
@pytest.mark.parametrize(
    "options",
    [{}, {"redshift": None}, {"meta": {}}, {"wcs": False}],
    ids=["full", "no-redshift", "empty-meta", "no-wcs"],
)
def test_round_trip(tmp_path, suffix, options):
    stack = make_stack(**options)
    path = stack.write(tmp_path / f"stack{suffix}")
    assert path == tmp_path / f"stack{suffix}"
    assert_same(LineStack.read(path), stack)
    if suffix == ".fits.gz":
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_round_trip_of_real_maps(tmp_path, maps_path):
    stack = ifsrepr.read(maps_path)
    assert_same(LineStack.read(stack.write(tmp_path / "real.fits.gz")), stack)


def test_side_bands_are_kept(tmp_path):
    stack = make_stack()
    read = LineStack.read(stack.write(tmp_path / "s.fits"))
    hb = read.lines[read.index("Hb-4862")]
    assert hb.blueside == find_line("Hb-4862").blueside is not None
    assert read.lines[read.index("Custom-7000")].blueside is None


def test_write_leaves_no_temporary_files(tmp_path):
    make_stack().write(tmp_path / "a.fits.gz")
    make_stack(seed=1).write(tmp_path / "a.fits.gz", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["a.fits.gz"]


def test_existing_file_untouched_without_overwrite(tmp_path):
    path = make_stack().write(tmp_path / "a.fits")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_stack(seed=1).write(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.fits"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = make_stack().write(tmp_path / "a.fits")
    before = path.read_bytes()

    def crash_midway(self, name, *args, **kwargs):
        with open(name, "wb") as handle:
            handle.write(before[:1000])  # a partial file, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        make_stack(seed=1).write(path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.fits"]


def test_meta_must_be_json(tmp_path):
    stack = make_stack(meta={"when": object()})
    with pytest.raises(DataModelError, match="JSON"):
        stack.write(tmp_path / "x.fits")
    assert not list(tmp_path.iterdir())


def test_reading_a_non_linestack_file(tmp_path, maps_path):
    with pytest.raises(ifsrepr.FileFormatError, match="not an ifsrepr line-stack file") as info:
        LineStack.read(maps_path)
    assert str(maps_path) in str(info.value)
    text = tmp_path / "text.fits"
    text.write_text("hello")
    with pytest.raises(ifsrepr.FileFormatError) as info:
        LineStack.read(text)
    assert str(text) in str(info.value)
    with pytest.raises(ifsrepr.FileFormatError, match="no such file"):
        LineStack.read(tmp_path / "absent.fits")


def test_newer_format_version_is_refused(tmp_path):
    path = make_stack().write(tmp_path / "v.fits")
    with fits.open(path, mode="update") as hdus:
        hdus[0].header["FMTVERS"] = hdus[0].header["FMTVERS"] + 1
    with pytest.raises(ifsrepr.FileFormatError, match="newer ifsrepr"):
        LineStack.read(path)


def test_damaged_linestack_file(tmp_path):
    path = make_stack().write(tmp_path / "d.fits")
    with fits.open(path) as hdus:
        kept = fits.HDUList([hdu.copy() for hdu in hdus if hdu.name != "IVAR"])
    kept.writeto(path, overwrite=True)
    with pytest.raises(ifsrepr.FileFormatError, match="cannot read line stack"):
        LineStack.read(path)


def test_equality_notices_differences():
    stack = make_stack()
    assert stack == make_stack()
    assert stack != make_stack(seed=1)
    assert stack != make_stack(redshift=0.1)
    assert stack != make_stack(meta={})
    assert stack != make_stack(wcs=False)
    assert stack.__eq__("not a stack") is NotImplemented
