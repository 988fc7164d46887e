"""The mock MaNGA survey: DR17 formats, determinism, truth, anomalies, noise, masks."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import ifsrepr
from ifsrepr.bitmask import bit_value
from ifsrepr.cli import main
from ifsrepr.lines import dap_line_table
from ifsrepr.mock import ANOMALY_CLASSES, GalaxyParams, draw_survey, make_survey, simulate_galaxy
from ifsrepr.mock.instrument import N_WAVE, footprint, wavelength
from ifsrepr.mock.nebular import CASE_B, line_index, star_forming_ratios
from ifsrepr.mock.survey import galaxy_rng
from ifsrepr.mock.synth import observe_cube, observe_lines, synthesize, true_line_maps

SEED = 11

CUBE_HDUS = [
    "PRIMARY", "FLUX", "IVAR", "MASK", "LSFPOST", "LSFPRE", "WAVE", "SPECRES", "SPECRESD",
    "PRESPECRES", "PRESPECRESD", "OBSINFO", "GIMG", "RIMG", "IIMG", "ZIMG",
    "GPSF", "RPSF", "IPSF", "ZPSF",
]  # fmt: skip
PRIMARY_KEYS = [
    "AUTHOR", "VERSDRP2", "VERSDRP3", "VERSPLDS", "VERSFLAT", "VERSCORE", "VERSPRIM", "VERSUTIL",
    "VERSIDL", "BSCALE", "BZERO", "BUNIT", "MASKNAME", "TELESCOP", "INSTRUME", "SRVYMODE",
    "PLATETYP", "OBJSYS", "EQUINOX", "RADESYS", "LAMPLIST", "TPLDATA", "NEXP", "EXPTIME",
    "BLUESN2", "REDSN2", "AIRMSMIN", "AIRMSMED", "AIRMSMAX", "SEEMIN", "SEEMED", "SEEMAX",
    "TRANSMIN", "TRANSMED", "TRANSMAX", "MJDMIN", "MJDMED", "MJDMAX", "DATE-OBS", "MJDRED",
    "DATERED", "MNGTARG1", "MNGTARG2", "MNGTARG3", "IFURA", "IFUDEC", "OBJRA", "OBJDEC",
    "CENRA", "CENDEC", "PLATEID", "DESIGNID", "IFUDSGN", "FRLPLUG", "PLATEIFU", "CARTID",
    "HARNAME", "METFILE", "MANGAID", "CATIDNUM", "PLTTARG", "DRP3QUAL", "IFUGLON", "IFUGLAT",
    "EBVGAL", "GFWHM", "RFWHM", "IFWHM", "ZFWHM",
]  # fmt: skip


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> tuple[Path, Table]:
    """Three 19-fibre galaxies with every product; two carry anomalies."""
    outdir = tmp_path_factory.mktemp("mock")
    truth = make_survey(
        outdir,
        3,
        SEED,
        products=["cube", "maps", "linestack"],
        anomaly_rate=0.67,
        anomaly_classes=["counter_rotating", "cosmic_ray"],
        fibres=[19],
    )
    return outdir, truth


def _cube(survey, index: int = 0) -> Path:
    outdir, truth = survey
    return outdir / truth["cube_file"][index]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- format ------------------------------------------------------------------
def test_cube_has_the_dr17_hdus_and_keys(survey):
    with fits.open(_cube(survey)) as hdus:
        assert [hdu.name for hdu in hdus] == CUBE_HDUS
        primary, flux = hdus[0].header, hdus["FLUX"].header
        for key in PRIMARY_KEYS:
            assert key in primary, key
            assert key in flux, key  # DR17 repeats the primary keys in FLUX
        assert primary["TELESCOP"] == "SDSS 2.5-M" and flux["INSTRUME"] == "MaNGA"
        assert flux["BUNIT"] == "1E-17 erg/s/cm^2/Angstrom/spaxel"
        assert flux["CTYPE3"] == "WAVE-LOG" and flux["CUNIT3"] == "Angstrom"
        assert flux["CRVAL3"] == 3621.59598486 and flux["CD3_3"] == 0.833903304339
        assert flux["CD1_1"] == -0.000138889 and flux["CD2_2"] == 0.000138889
        assert flux["CRPIX1"] == flux["CRPIX2"] == 18.0
        assert (flux["HDUCLASS"], flux["HDUCLAS2"], flux["ERRDATA"]) == ("SDSS", "DATA", "IVAR")
        assert hdus["IVAR"].header["HDUCLAS3"] == "INVMSE"
        assert hdus["MASK"].header["HDUCLAS2"] == "QUALITY"
        assert primary["MOCK"] is True and "redshift" not in primary
        assert hdus["FLUX"].data.shape == (N_WAVE, 34, 34)
        assert hdus["FLUX"].data.dtype == np.dtype(">f4")
        assert hdus["MASK"].data.dtype == np.dtype(">i4")
        np.testing.assert_allclose(hdus["WAVE"].data, wavelength(), rtol=1e-12)
        assert len(hdus["OBSINFO"].columns) == 65
        assert len(hdus["OBSINFO"].data) == primary["NEXP"]
        assert np.isclose(hdus["GPSF"].data.sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["cube_file", "maps_file", "linestack_file"])
def test_checksums_are_valid(survey, kind):
    outdir, truth = survey
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns on a checksum mismatch
        with fits.open(outdir / truth[kind][0], checksum=True) as hdus:
            assert all("CHECKSUM" in hdu.header for hdu in hdus)


def test_specutils_manga_loader_reads_the_cube(survey):
    # A real client nobody here wrote. FITSFixedWarning (integer PLATEID, as in
    # real DR17 headers) is ignored project-wide.
    from specutils import Spectrum

    path = _cube(survey)
    spectrum = Spectrum.read(path, format="MaNGA cube")
    assert spectrum.shape == (N_WAVE, 34, 34)
    with fits.open(path) as hdus:
        np.testing.assert_array_equal(spectrum.flux.value, hdus["FLUX"].data)
        np.testing.assert_array_equal(spectrum.uncertainty.array, hdus["IVAR"].data)
        np.testing.assert_array_equal(spectrum.mask, hdus["MASK"].data != 0)
    np.testing.assert_allclose(spectrum.spectral_axis.to_value("Angstrom"), wavelength(), rtol=1e-6)


def test_ifsrepr_read_agrees_with_specutils(survey):
    from specutils import Spectrum

    path = _cube(survey)
    cube = ifsrepr.read(path)
    assert isinstance(cube, ifsrepr.IFSCube) and cube.shape == (N_WAVE, 34, 34)
    spectrum = Spectrum.read(path, format="MaNGA cube")
    np.testing.assert_array_equal(cube.flux.value, spectrum.flux.value)
    np.testing.assert_array_equal(cube.ivar.value, spectrum.uncertainty.array)
    np.testing.assert_array_equal(cube.mask, spectrum.mask)


def test_maps_are_read_by_ifsrepr(survey):
    outdir, truth = survey
    maps = ifsrepr.read(outdir / truth["maps_file"][0])
    assert isinstance(maps, ifsrepr.LineStack)
    assert maps.line_names == [line.name for line in dap_line_table()]
    assert maps.redshift == pytest.approx(truth["z"][0], rel=1e-9)
    assert maps.meta["plateifu"] == truth["plateifu"][0]
    outside = ~footprint(int(truth["ifudesign"][0])).covered
    assert maps.mask[:, outside].all()
    with fits.open(outdir / truth["maps_file"][0]) as hdus:
        assert hdus[0].header["DAPFRMT"] == "MAPS"
        assert hdus["EMLINE_GFLUX"].header["C24"] == "Ha-6564"
        for name in ("SPX_ELLCOO", "BINID", "EMLINE_GVEL", "EMLINE_GSIGMA", "STELLAR_VEL"):
            assert name in hdus
        nocov = bit_value("MANGA_DAPPIXMASK", "NOCOV", "LOWCOV", "DONOTUSE")
        assert (hdus["EMLINE_GFLUX_MASK"].data[:, outside] == nocov).all()
        assert (hdus["BINID"].data[:, outside] == -1).all()


def test_line_stack_holds_the_maps_fluxes(survey):
    outdir, truth = survey
    stack = ifsrepr.LineStack.read(outdir / truth["linestack_file"][0])
    maps = ifsrepr.read(outdir / truth["maps_file"][0])
    assert stack.line_names == maps.line_names
    np.testing.assert_array_equal(stack.flux, maps.flux)
    np.testing.assert_array_equal(stack.ivar, maps.ivar)
    assert stack.redshift == pytest.approx(truth["z"][0])
    assert stack.meta["reff"] == pytest.approx(truth["reff"][0])  # usable without DRPall


# -- truth and catalogue -----------------------------------------------------
def test_truth_table_and_catalogue(survey):
    outdir, truth = survey
    on_disk = Table.read(outdir / "truth.ecsv")
    assert list(on_disk.colnames) == list(truth.colnames)
    for name in ("plateifu", "mangaid", "ra", "dec", "z", "ell", "pa", "reff", "ifudesign",
                 "catalogue_row", "galaxy_type", "agn_type", "logoh_centre", "v_max",
                 "psf_fwhm", "ebv_gal", "anomaly", "anomaly_params", "cube_file"):  # fmt: skip
        assert name in on_disk.colnames, name
    assert sorted(on_disk["anomaly"]) == ["cosmic_ray", "counter_rotating", "none"]
    with fits.open(outdir / "drpall-mock.fits") as hdus:
        catalogue = Table.read(hdus["MANGA"])
    for name in ("plateifu", "mangaid", "objra", "objdec", "nsa_z", "nsa_elpetro_ba",
                 "nsa_elpetro_phi", "nsa_elpetro_th50_r", "ifudesign", "drp3qual"):  # fmt: skip
        assert name in catalogue.colnames, name
    np.testing.assert_allclose(catalogue["nsa_z"], truth["z"])
    assert list(catalogue["plateifu"]) == list(truth["plateifu"])


def test_truth_row_rebuilds_the_galaxy(survey):
    outdir, truth = survey
    row = Table.read(outdir / "truth.ecsv")[0]
    params = GalaxyParams.from_row(row)
    assert params == draw_survey(3, SEED, anomaly_rate=0.67, fibres=[19],
                                 anomaly_classes=["counter_rotating", "cosmic_ray"])[0]  # fmt: skip


# -- determinism -------------------------------------------------------------
def test_same_seed_same_bytes(survey, tmp_path):
    outdir, truth = survey
    again = make_survey(
        tmp_path,
        3,
        SEED,
        products=["cube", "maps", "linestack"],
        anomaly_rate=0.67,
        anomaly_classes=["counter_rotating", "cosmic_ray"],
        fibres=[19],
    )
    assert list(again["plateifu"]) == list(truth["plateifu"])
    for name in sorted(p.name for p in outdir.iterdir()):
        assert _digest(outdir / name) == _digest(tmp_path / name), name


def test_products_and_workers_do_not_change_the_noise(survey, tmp_path):
    outdir, truth = survey
    make_survey(
        tmp_path, 3, SEED, products=["linestack"], anomaly_rate=0.67, fibres=[19],
        anomaly_classes=["counter_rotating", "cosmic_ray"], n_jobs=2,
    )  # fmt: skip
    for name in truth["linestack_file"]:
        assert _digest(outdir / name) == _digest(tmp_path / name)


def test_different_seeds_differ(tmp_path):
    a = draw_survey(2, 1, fibres=[19])
    b = draw_survey(2, 2, fibres=[19])
    assert [p.plateifu for p in a] != [p.plateifu for p in b]


# -- anomalies ---------------------------------------------------------------
def test_anomalies_at_the_requested_rate():
    params = draw_survey(60, 5, anomaly_rate=0.25)
    labels = [p.anomaly for p in params]
    assert sum(label != "none" for label in labels) == 15
    counts = {kind: labels.count(kind) for kind in ANOMALY_CLASSES}
    assert min(counts.values()) >= 2 and max(counts.values()) <= 3


def test_bad_anomaly_arguments():
    with pytest.raises(ValueError, match="anomaly_rate"):
        draw_survey(2, 0, anomaly_rate=1.5)
    with pytest.raises(ValueError, match="unknown anomaly"):
        draw_survey(2, 0, anomaly_rate=0.5, anomaly_classes=["dragons"])
    with pytest.raises(ValueError, match="products"):
        make_survey("/nonexistent", 1, products=["spectra"])


def _model_and_lines(kind: str, fibres=(37,)):
    params = draw_survey(1, 3, anomaly_rate=1.0, anomaly_classes=[kind], fibres=list(fibres))[0]
    model = simulate_galaxy(params)
    return params, model, observe_lines(model, galaxy_rng(params.seed, params.index, "lines"))


def test_broad_line_agn_has_broad_balmer_lines():
    params, model, lines = _model_and_lines("broad_line_agn")
    centre = model.n // 2
    assert params.anomaly_params["fwhm"] >= 2000
    assert lines.sigma[line_index("Ha-6564"), centre, centre] > 500
    assert lines.sigma[line_index("OIII-5008"), centre, centre] < 300


def test_blueberry_has_extreme_oiii():
    params, model, lines = _model_and_lines("blueberry")
    c = model.n // 2
    o3 = lines.flux[line_index("OIII-5008"), c, c] / lines.flux[line_index("Hb-4862"), c, c]
    assert np.log10(o3) > 0.6


def test_counter_rotating_gas_opposes_the_stars():
    params, model, lines = _model_and_lines("counter_rotating")
    disc = next(c for c in model.continuum if c.name == "disc")
    hii_or_dig = model.emission[0]
    moving = np.abs(disc.velocity) > 20
    assert np.all(np.sign(hii_or_dig.velocity[moving]) == -np.sign(disc.velocity[moving]))


def test_knot_is_off_nucleus_and_bright():
    params, model, lines = _model_and_lines("offnuclear_knot")
    halpha = np.where(lines.mask[line_index("Ha-6564")], 0, lines.flux[line_index("Ha-6564")])
    y, x = np.unravel_index(np.argmax(halpha), halpha.shape)
    assert np.hypot(y - model.n // 2, x - model.n // 2) * 0.5 > 1.5


def test_dead_fibre_and_cosmic_ray_artefacts():
    params, model, lines = _model_and_lines("dead_fibre")
    assert model.throughput.min() <= 0.31
    params, model, _ = _model_and_lines("cosmic_ray")
    ray = model.cosmic_rays[0]
    cube = synthesize(model, np.unique(ray.channels))
    assert cube.max() >= params.anomaly_params["amplitude"]


# -- physics -----------------------------------------------------------------
def test_abundance_moves_spaxels_along_the_star_forming_sequence():
    ratios = star_forming_ratios(np.array([8.1, 8.4, 8.7]))
    n2 = np.log10(ratios[line_index("NII-6585")])
    o3 = np.log10(ratios[line_index("OIII-5008")] / ratios[line_index("Hb-4862")])
    assert np.all(np.diff(n2) > 0) and np.all(np.diff(o3) < 0)
    # below the Kauffmann et al. (2003) line: star forming
    assert np.all(o3 < 0.61 / (n2 - 0.05) + 1.3)


def test_balmer_decrement_follows_the_dust():
    params = draw_survey(1, 4, fibres=[61], population=ifsrepr.mock.Population(star_forming=1.0))[0]
    model = simulate_galaxy(params)
    hii = next(c for c in model.emission if c.name == "hii")
    c = model.n // 2
    decrement = hii.flux[line_index("Ha-6564"), c, c] / hii.flux[line_index("Hb-4862"), c, c]
    expected = CASE_B["Ha-6564"] * 10 ** (0.4 * params.ebv_gas_centre * 1.0733)
    assert decrement == pytest.approx(expected, rel=2e-3)


def test_noise_is_consistent_with_ivar():
    params = draw_survey(1, 8, fibres=[19])[0]
    model = simulate_galaxy(params)
    cube = observe_cube(model, galaxy_rng(params.seed, params.index, "cube"))
    good = cube.ivar > 0
    chi2 = ((cube.flux - cube.model) ** 2 * cube.ivar)[good].mean()
    assert chi2 == pytest.approx(1.0, abs=0.02)
    lines = observe_lines(model, galaxy_rng(params.seed, params.index, "lines"))
    truth, _, _ = true_line_maps(model)
    good = ~lines.mask
    chi2_lines = ((lines.flux - truth) ** 2 * lines.ivar)[good].mean()
    assert chi2_lines == pytest.approx(1.0, abs=0.1)


def test_written_cube_noise_matches_its_ivar(survey):
    # Rebuild the noiseless model from the truth table and compare with the file.
    outdir, truth = survey
    params = GalaxyParams.from_row(Table.read(outdir / "truth.ecsv")[0])
    model = synthesize(simulate_galaxy(params))
    with fits.open(_cube(survey)) as hdus:
        flux, ivar = hdus["FLUX"].data, hdus["IVAR"].data
    good = ivar > 0
    assert ((flux - model) ** 2 * ivar)[good].mean() == pytest.approx(1.0, abs=0.03)


def test_masks_outside_the_footprint(survey):
    outdir, truth = survey
    foot = footprint(int(truth["ifudesign"][0]))
    with fits.open(_cube(survey)) as hdus:
        flux, ivar, mask = hdus["FLUX"].data, hdus["IVAR"].data, hdus["MASK"].data
    nocov = bit_value("MANGA_DRP3PIXMASK", "NOCOV", "LOWCOV", "DONOTUSE")
    lowcov = bit_value("MANGA_DRP3PIXMASK", "LOWCOV", "DONOTUSE")
    assert nocov == 1027 and lowcov == 1026
    outside = ~foot.covered
    assert (mask[:, outside] == nocov).all()
    assert (ivar[:, outside] == 0).all() and (flux[:, outside] == 0).all()
    assert (mask[:, foot.lowcov] & lowcov == lowcov).all()
    inner = foot.covered & ~foot.lowcov
    usable = wavelength() < 10343.0
    assert (mask[usable][:, inner] == 0).all() and (ivar[usable][:, inner] > 0).all()
    # A hexagon: area 3 sqrt(3)/2 R^2 in 0.25 arcsec^2 spaxels.
    expected = 1.5 * np.sqrt(3) * foot.radius**2 / 0.25
    assert foot.covered.sum() == pytest.approx(expected, rel=0.05)


def test_cli_writes_a_survey(tmp_path, capsys):
    code = main([
        "mock", str(tmp_path), "--n-galaxies", "2", "--seed", "1", "--products", "linestack",
        "--fibres", "19", "--anomaly-rate", "0.5",
    ])  # fmt: skip
    assert code == 0
    assert (tmp_path / "truth.ecsv").exists() and (tmp_path / "drpall-mock.fits").exists()
    assert len(list(tmp_path.glob("*LINESTACK.fits.gz"))) == 2
    assert "wrote 2 galaxies" in capsys.readouterr().out
