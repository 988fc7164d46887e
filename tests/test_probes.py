"""Tests of `ifsrepr.probes`: linear probes, baselines, catalogue matching, clusters,
neighbours, the compression view and ``ifsrepr probe``."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

import ifsrepr
from ifsrepr.cli import main
from ifsrepr.probes import (
    CatalogMatchError,
    ProbeColumnError,
    ProbeError,
    cluster_latents,
    cluster_purity,
    column_kind,
    compression_table,
    cube_bytes,
    feature_names,
    fraction_of_variance_explained,
    line_features,
    match_catalog,
    mock_targets,
    plot_neighbours,
    plot_probes,
    probe,
    probe_dataset,
    survey_features,
)

matplotlib.use("Agg")


# -- probes on synthetic data ---------------------------------------------------------------------


def synthetic(n=120, d=6, seed=0):
    """Latents, a noisy baseline, and properties: one linear in the latents, one a class."""
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(n, d))
    table = Table(
        {
            "mass": 2.0 * latents[:, 0] - latents[:, 1] + 0.1 * rng.normal(size=n),
            "kind": np.where(latents[:, 2] > 0, "disc", "spheroid"),
            "noise": rng.normal(size=n),
        }
    )
    weak = latents[:, :1] + 2.0 * rng.normal(size=(n, 1))  # sees `mass` only through noise
    return latents, table, {"weak": weak}


def test_probe_scores_latents_and_baselines_on_the_same_folds():
    latents, table, baselines = synthetic()
    result = probe(latents, table, ["mass", "kind", "noise"], cv=4, baselines=baselines)
    assert result.colnames == [
        "property", "kind", "n_used", "n_dropped", "n_classes", "metric", "chance",
        "latent", "latent_std", "weak", "weak_std", "best", "note",
    ]  # fmt: skip
    mass, kind, noise = result
    assert (mass["kind"], mass["metric"], mass["chance"]) == ("regression", "r2", 0.0)
    assert mass["latent"] > 0.95 and mass["weak"] < 0.5 and mass["best"] == "latent"
    assert (kind["kind"], kind["metric"], kind["n_classes"]) == (
        "classification", "balanced_accuracy", 2,
    )  # fmt: skip
    assert kind["chance"] == 0.5 and kind["latent"] > 0.85
    assert abs(noise["latent"]) < 0.2  # nothing to find: R2 near zero, not above
    assert all(result["n_used"] == 120) and all(result["n_dropped"] == 0)
    assert result.meta["feature_sets"] == {"latent": 6, "weak": 1}
    assert result.meta["cv"] == 4
    # Deterministic for a given seed.
    again = probe(latents, table, ["mass"], cv=4, baselines=baselines)
    assert again["latent"][0] == mass["latent"]


def test_missing_values_are_dropped_per_column_and_counted():
    latents, table, _ = synthetic()
    mass = np.array(table["mass"])
    mass[:7] = np.nan
    mass[7] = np.inf
    table["mass"] = mass
    table["kind"] = MaskedColumn(table["kind"], mask=np.arange(120) < 3)
    text = np.array(table["kind"], dtype="U8")
    text[3:5] = ""
    table["kind_text"] = text
    result = probe(latents, table, ["mass", "kind", "kind_text", "noise"], cv=3)
    assert list(result["n_dropped"]) == [8, 3, 2, 0]
    assert list(result["n_used"]) == [112, 117, 118, 120]
    assert result["note"][0] == "8 missing" and result["note"][3] == ""
    assert result["latent"][0] > 0.95  # the remaining rows are still probed


def test_rare_classes_are_dropped_and_named():
    latents, table, _ = synthetic()
    kind = np.array(table["kind"], dtype="U10")
    kind[:2] = "merger"
    table["kind"] = kind
    row = probe(latents, table, ["kind"], cv=3)[0]
    assert row["n_dropped"] == 2 and row["n_classes"] == 2
    assert "'merger' (2)" in row["note"]


def test_non_numeric_regression_is_refused_with_the_column_named():
    latents, table, _ = synthetic()
    with pytest.raises(ProbeColumnError, match="kind: not numeric") as info:
        probe(latents, table, ["mass", "kind"], kinds={"kind": "regression"})
    assert isinstance(info.value, ifsrepr.IFSReprError)
    # Text with many values is an identifier, not a class, unless asked.
    table["name"] = [f"group-{i % 12}" for i in range(120)]
    with pytest.raises(ProbeColumnError, match="name: not numeric .* 12 distinct values"):
        probe(latents, table, ["name"])
    asked = probe(latents, table, ["name"], kinds={"name": "classification"}, cv=3)
    assert asked["n_classes"][0] == 12
    with pytest.raises(ProbeColumnError, match="'missing_column'"):
        probe(latents, table, ["mass", "missing_column"])
    with pytest.raises(ProbeColumnError, match="unknown probe kind 'categorical'"):
        probe(latents, table, ["mass"], kinds={"mass": "categorical"})


def test_kinds_follow_the_dtype():
    assert column_kind(np.array([1, 2, 3])) == "regression"
    assert column_kind(np.array([1, 2, 3]), "classification") == "classification"
    assert column_kind(np.array([True, False])) == "classification"
    assert column_kind(np.array(["a", "b"], dtype=object)) == "classification"
    assert column_kind(np.array([1.5, "2"], dtype=object)) == "regression"  # numbers as objects
    with pytest.raises(ProbeColumnError, match="flag: boolean"):
        column_kind(np.array([True, False]), "regression", name="flag")
    with pytest.raises(ProbeColumnError, match="one value per galaxy"):
        column_kind(np.zeros((3, 2)))


def test_unprobeable_columns_get_nan_and_a_reason():
    latents, table, _ = synthetic(n=40)
    table["constant"] = np.ones(40)
    sparse = np.full(40, np.nan)
    sparse[:5] = np.arange(5.0)
    table["sparse"] = sparse
    table["one_class"] = np.where(np.arange(40) < 2, "rare", "common")
    result = probe(latents, table, ["constant", "sparse", "one_class"], cv=3)
    assert np.isnan(result["latent"]).all() and list(result["best"]) == ["", "", ""]
    assert "same for every galaxy" in result["note"][0]
    assert "only 5 usable galaxies" in result["note"][1]
    assert "fewer than two classes" in result["note"][2]


def test_bad_feature_sets_are_refused():
    latents, table, _ = synthetic()
    with pytest.raises(ProbeError, match="'short' must be shaped"):
        probe(latents, table, ["mass"], baselines={"short": latents[:10]})
    bad = latents.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ProbeError, match="latents must be finite"):
        probe(bad, table, ["mass"])
    with pytest.raises(ProbeError, match="cv must be"):
        probe(latents, table, ["mass"], cv=1)
    # Baselines may have holes: they are filled inside each training fold.
    holes = latents.copy()
    holes[::3, 0] = np.nan
    assert probe(latents, table, ["mass"], baselines={"holes": holes})["holes"][0] > 0.5


def test_plot_probes_draws_one_bar_per_set_and_property():
    latents, table, baselines = synthetic()
    result = probe(latents, table, ["mass", "kind"], cv=3, baselines=baselines)
    ax = plot_probes(result)
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mass (R²)", "kind (bal. acc.)"]
    matplotlib.pyplot.close(ax.figure)


# -- catalogues ----------------------------------------------------------------------------------


def test_match_catalog_aligns_by_plateifu():
    catalog = Table(
        {
            "PLATEIFU": [b"8485-1901 ", b"7443-12703", b"9000-3701"],
            "mass": [10.2, -9999.0, 9.5],
            "kind": ["disc", "spheroid", "disc"],
        }
    )
    table = match_catalog(["7443-12703", "8485-1901", "8485-1901"], catalog)
    assert list(table["kind"]) == ["spheroid", "disc", "disc"]
    assert table["mass"].mask.tolist() == [True, False, False]  # DRPall's -9999
    assert table.meta["n_matched"] == 3
    partial = match_catalog(["8485-1901", "1-2"], catalog, min_fraction=0.5)
    assert partial["mass"].mask.tolist() == [False, True]


def test_a_catalogue_of_other_galaxies_is_refused_with_the_count():
    catalog = Table({"plateifu": ["8485-1901", "9000-3701"], "mass": [1.0, 2.0]})
    with pytest.raises(CatalogMatchError, match="0 of 3 galaxies") as info:
        match_catalog(["1-1", "1-2", "1-3"], catalog)
    assert isinstance(info.value, ifsrepr.IFSReprError)
    with pytest.raises(CatalogMatchError, match="1 of 2 galaxies .* unmatched e.g. 1-2"):
        match_catalog(["8485-1901", "1-2"], catalog)
    with pytest.raises(CatalogMatchError, match="no plate-IFU column"):
        match_catalog(["8485-1901"], Table({"name": ["x"]}))
    twice = Table({"plateifu": ["8485-1901", "8485-1901"], "mass": [1.0, 2.0]})
    with pytest.raises(CatalogMatchError, match="several rows"):
        match_catalog(["8485-1901"], twice)


# -- hand-made features --------------------------------------------------------------------------


def test_line_features_are_log_fluxes_and_ratios():
    names = ["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"]
    flux = np.zeros((4, 16, 16))
    flux[:, 6:10, 6:10] = np.array([1.0, 3.0, 2.86, 1.43])[:, None, None]  # the centre only
    mask = np.zeros(flux.shape, dtype=bool)
    mask[1] = True  # [OIII] undetected
    values = dict(zip(feature_names(names), line_features(flux, mask, names), strict=True))
    assert values["logF_Ha-6564"] == pytest.approx(np.log10(16 * 2.86))
    assert np.isnan(values["logF_OIII-5008"]) and np.isnan(values["log_O3Hb_all"])
    assert values["log_N2Ha_all"] == pytest.approx(np.log10(0.5))
    assert values["log_HaHb_centre"] == pytest.approx(np.log10(2.86))
    assert np.isnan(values["log_N2Ha_outer"])  # no flux beyond 1 Re
    # Inside 0.5 Re = 2 pixels: all but the block's four corners.
    assert values["Ha_concentration"] == pytest.approx(np.log10(12 / 16))
    # Several galaxies at once, with a pixel area.
    both = line_features(np.stack([flux, 2 * flux]), np.stack([mask, mask]), names, pixel_area=4)
    assert both.shape == (2, len(values))
    assert both[1, 2] - both[0, 2] == pytest.approx(np.log10(2))
    with pytest.raises(ProbeError, match="3 line names for 4 line maps"):
        line_features(flux, mask, names[:3])


# -- clusters ------------------------------------------------------------------------------------


def test_clusters_follow_separated_groups():
    rng = np.random.default_rng(2)
    latents = np.vstack([rng.normal(0, 1, (60, 16)), rng.normal(6, 1, (60, 16))])
    classes = np.repeat(["star_forming", "retired"], 60)
    labels = cluster_latents(latents, n_components=4)
    table = cluster_purity(labels, classes)
    assert table.meta["n_clusters"] == 2 and table.meta["purity"] > 0.95
    assert table.meta["chance_purity"] == pytest.approx(0.5, abs=0.05)
    assert table.meta["ari"] > 0.9 and set(table["majority"]) == {"star_forming", "retired"}
    assert all(table["enrichment"] > 1.8)
    with pytest.raises(ProbeError, match="finite"):
        cluster_latents(np.full((5, 2), np.nan))


def test_cluster_purity_leaves_noise_and_unknown_classes_out():
    classes = MaskedColumn(["a", "a", "b", "b", "b", "a", "a"], mask=[0, 0, 0, 0, 0, 0, 1])
    table = cluster_purity([0, 0, 0, 1, 1, -1, 1], classes)
    assert list(table["n"]) == [3, 2]
    assert table.meta["noise_fraction"] == pytest.approx(1 / 6)
    assert table.meta["purity"] == pytest.approx(0.8)
    # Chance: the commonest class's share among all galaxies of known class (3 of 6).
    assert table.meta["chance_purity"] == pytest.approx(0.5)
    assert list(table["enrichment"]) == pytest.approx([(2 / 3) / 0.5, 1.0 / 0.5])


# -- the compression view ------------------------------------------------------------------------


def test_cube_bytes_follow_the_ifu_design():
    sizes = cube_bytes(["8485-1901", "7443-12703", "7443-12703#2"])
    assert list(sizes) == [34 * 34 * 4563 * 12, 74 * 74 * 4563 * 12, 74 * 74 * 4563 * 12]
    with pytest.raises(ProbeError, match="not a MaNGA plate-IFU"):
        cube_bytes(["galaxy"])


def test_fraction_of_variance_explained():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 4, 4))
    w = np.ones_like(x)
    per_line, overall = fraction_of_variance_explained(x, x, w)
    assert overall == pytest.approx(1.0) and np.allclose(per_line, 1.0)
    line_means = (x.mean(axis=(0, 2, 3)))[None, :, None, None] * np.ones_like(x)
    assert fraction_of_variance_explained(x, line_means, w)[1] == pytest.approx(0.0, abs=1e-12)


# -- on a small mock survey ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """24 mock line-stack galaxies, their dataset on a 16x16 grid and a tiny PCA encoder."""
    from ifsrepr.dataset import extract_survey
    from ifsrepr.mock import make_survey
    from ifsrepr.preprocess import Preprocessor
    from ifsrepr.scoring._testing import fit_tiny_encoder

    directory = tmp_path_factory.mktemp("probes")
    inputs = directory / "in"
    make_survey(inputs, 24, seed=8, products=["linestack"], anomaly_rate=0.1, fibres=[19, 37])
    dataset = directory / "survey.h5"
    extract_survey(
        [inputs],
        dataset,
        catalog=inputs / "drpall-mock.fits",
        preprocessor=Preprocessor("manga19", size=16),
        progress=False,
    )
    encoder = fit_tiny_encoder(dataset)
    return {"dataset": dataset, "truth": inputs / "truth.ecsv", "encoder": encoder}


def test_mock_targets_keep_only_what_lines_can_show(survey):
    truth = Table.read(survey["truth"])
    targets = mock_targets(truth)
    star_forming = np.asarray(truth["galaxy_type"]) == "star_forming"
    assert list(targets["plateifu"]) == list(truth["plateifu"])
    assert np.isnan(targets["logoh_centre"][~star_forming]).all()
    assert np.isfinite(targets["logoh_centre"][star_forming]).all()
    assert np.isfinite(targets["log_halpha_lum"]).all()
    assert (targets["log_halpha_lum"] > 36).all() and (targets["log_halpha_lum"] < 45).all()
    agn = np.asarray(truth["agn_type"])
    expected = np.where(agn != "none", agn, np.asarray(truth["galaxy_type"]))
    assert list(targets["class"]) == list(expected)
    assert np.allclose(targets["v_proj"], truth["v_max"] * np.sin(np.radians(truth["inclination"])))


def test_probe_dataset_on_a_mock_survey(survey):
    features = survey_features(
        survey["dataset"], preprocessor=survey["encoder"].preprocessor_, n_pca=6
    )
    assert features.pca.shape == (24, 6) and features.features.shape[0] == 24
    assert features.feature_names[:1] == ["logF_Heta-3836"]
    result = probe_dataset(
        survey["dataset"],
        survey["truth"],
        ["z", "ebv_gas_centre", "galaxy_type"],
        encoder=survey["encoder"],
        features=features,
        cv=3,
    )
    assert list(result["property"]) == ["z", "ebv_gas_centre", "galaxy_type"]
    assert list(result["kind"]) == ["regression", "regression", "classification"]
    assert {"latent", "pca", "features"} <= set(result.colnames)
    assert result.meta["n_matched"] == 24 and result.meta["feature_sets"]["pca"] == 6
    assert np.isfinite(result["latent"]).all() and np.isfinite(result["features"]).all()
    # Star formation shows in the line ratios of even 24 tiny galaxies.
    assert result["features"][2] > 0.7


def test_probe_dataset_refuses_a_foreign_catalogue(survey, tmp_path):
    other = Table({"plateifu": ["1-1", "1-2"], "z": [0.1, 0.2]})
    with pytest.raises(CatalogMatchError, match="0 of 24 galaxies"):
        probe_dataset(survey["dataset"], other, ["z"], encoder=survey["encoder"])


def test_compression_table(survey):
    table = compression_table(survey["dataset"], {"pca-6": survey["encoder"]})
    assert len(table) == 3
    cubes, stacks, latents = table
    assert cubes["bytes"] == cube_bytes(Table.read(survey["truth"])["plateifu"]).sum()
    assert stacks["bytes"] == 24 * 19 * 16 * 16 * 9 and stacks["fve"] == 1.0
    assert latents["bytes"] == 24 * 6 * 4 and latents["fixed_bytes"] > 0
    assert latents["vs_cubes"] == pytest.approx(cubes["bytes"] / latents["bytes"])
    assert 0 < latents["fve"] < 1  # six components of a 24-galaxy survey
    assert table.meta["dataset_disk_bytes"] > 0


def test_cli_probe(survey, tmp_path, capsys):
    model = survey["encoder"].save_pretrained(tmp_path / "model")
    output, plot = tmp_path / "probes.ecsv", tmp_path / "probes.png"
    code = main([
        "probe", str(survey["dataset"]), "--model", str(model), "--catalog", str(survey["truth"]),
        "--columns", "z", "agn_type", "--kind", "agn_type=classification", "--cv", "3",
        "-o", str(output), "--plot", str(plot), "--quiet",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr()
    assert "latent" in out.out and "probed 2 properties on 24 galaxies" in out.err
    written = Table.read(output)
    assert list(written["property"]) == ["z", "agn_type"] and plot.stat().st_size > 0
    # A catalogue of other galaxies: an error that says how many matched.
    foreign = tmp_path / "foreign.ecsv"
    Table({"plateifu": ["1-1"], "z": [0.1]}).write(foreign)
    code = main(["probe", str(survey["dataset"]), "--model", str(model), "--catalog",
                 str(foreign), "--columns", "z", "--quiet"])  # fmt: skip
    assert code == 1 and "0 of 24 galaxies" in capsys.readouterr().err
    # A text column asked for as a regression.
    code = main(["probe", str(survey["dataset"]), "--model", str(model), "--catalog",
                 str(survey["truth"]), "--columns", "agn_type", "--kind", "agn_type=regression",
                 "--quiet"])  # fmt: skip
    assert code == 1 and "agn_type: not numeric" in capsys.readouterr().err
    assert main(["probe", str(survey["dataset"]), "--catalog", str(survey["truth"]),
                 "--columns", "z"]) == 1  # fmt: skip
    assert "--model" in capsys.readouterr().err


def test_cli_probe_reuses_an_encoding(survey, tmp_path, capsys):
    encoded = tmp_path / "encoded.h5"
    model = survey["encoder"].save_pretrained(tmp_path / "model")
    assert main(["encode", str(survey["dataset"]), "--model", str(model), "-o", str(encoded),
                 "--quiet", "--no-spaxel-errors"]) == 0  # fmt: skip
    output = tmp_path / "probes.ecsv"
    code = main(["probe", str(survey["dataset"]), "--encoding", str(encoded), "--catalog",
                 str(survey["truth"]), "--columns", "z", "--cv", "3", "--n-pca", "4",
                 "-o", str(output), "--quiet"])  # fmt: skip
    assert code == 0
    written = Table.read(output)
    assert written.meta["feature_sets"] == {"latent": 6, "pca": 4, "features": 41}
    capsys.readouterr()


def test_neighbours_of_the_real_galaxy_side_by_side(survey, maps_path):
    from ifsrepr.dataset import SurveyDataset

    encoder = survey["encoder"]
    maps = ifsrepr.read(maps_path)
    data = SurveyDataset(survey["dataset"])
    stacks = [data.stack(i) for i in range(3)]
    figure = plot_neighbours(
        maps, stacks, labels=["7815-3702", "a", "b", "c"], preprocessor=encoder.preprocessor_
    )
    assert len(figure.axes) == 2 * 4 + 1  # two rows of panels and the ratio colour bar
    assert figure.axes[0].get_title() == "7815-3702"
    matplotlib.pyplot.close(figure)
