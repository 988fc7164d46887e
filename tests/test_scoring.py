"""Tests of `ifsrepr.scoring`: encodings, `AnomalyScorer`, ``ifsrepr encode``, ``ifsrepr score``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.table import Table

import ifsrepr
from ifsrepr.cli import main
from ifsrepr.dataset import SurveyDataset
from ifsrepr.exceptions import FileFormatError, IFSReprError
from ifsrepr.scoring import (
    COMPONENTS,
    DEFAULT_COMPONENTS,
    AnomalyScorer,
    DuplicatePlateIFUWarning,
    Encoding,
    ModelMismatchError,
    ScoringWarning,
    encode_dataset,
    model_identity,
    region_of,
)
from ifsrepr.scoring._testing import SIZE, fit_tiny_encoder, make_tiny_survey

LINES = [f"L{i}" for i in range(5)]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """16 mock galaxies, one of them twice, plus a file that fails extraction."""
    return make_tiny_survey(tmp_path_factory.mktemp("survey"), duplicate=True, broken=True)


@pytest.fixture(scope="module")
def encoder(survey):
    return fit_tiny_encoder(survey["dataset"])


@pytest.fixture(scope="module")
def encoding(survey, encoder):
    with pytest.warns(DuplicatePlateIFUWarning, match="occur more than once"):
        return encode_dataset(encoder, survey["dataset"], batch_size=5, progress=False)


def synthetic(n=300, d=8, seed=0, outliers=0, name="synthetic", sha="a" * 64) -> Encoding:
    """An encoding of Gaussian latents; the last ``outliers`` rows are far away and badly fit."""
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(n, d))
    error = rng.lognormal(0.0, 0.2, n)
    line_errors = error[:, None] * rng.lognormal(0.0, 0.1, (n, len(LINES)))
    peak = np.full((n, 2), 8)
    if outliers:
        latents[-outliers:] += 12.0
        error[-outliers:] *= 30
        line_errors[-outliers:, 2] *= 200
        peak[-outliers:] = [8, 14]
    return Encoding(
        plateifu=[f"1000-{1901 + i}" for i in range(n)],
        latents=latents,
        error=error,
        line_errors=line_errors,
        n_good=np.full(n, 1000),
        line_names=LINES,
        model_name=name,
        model_sha256=sha,
        peak=peak,
        peak_error=error * 3,
        peak_contrast=np.full(n, 3.0),
        pixels_per_reff=np.full(n, 4.0),
        grid={"grid": "reff", "size": 16, "n_reff": 2.0},
        source=name,
    )


# -- encodings -------------------------------------------------------------------------------


def test_encoding_holds_every_galaxy_and_lists_the_failed(encoding, encoder, survey):
    n = 17  # 16 galaxies + the repeated one; the truncated file failed
    assert len(encoding) == n
    assert encoding.latents.shape == (n, 6) and encoding.latents.dtype == np.float32
    assert encoding.line_errors.shape == (n, 19)
    assert encoding.spaxel_errors.shape == (n, SIZE, SIZE)
    assert encoding.spaxel_errors.dtype == np.float16
    assert np.isfinite(encoding.error).all() and (encoding.error > 0).all()
    assert (encoding.n_good > 0).all()
    assert encoding.line_names == ifsrepr.preprocess.Preprocessor("manga19").line_names
    # The repeated plate-IFU: both rows kept, told apart by uid.
    first = survey["truth_table"]["plateifu"][np.argsort(survey["truth_table"]["plateifu"])][0]
    rows = np.flatnonzero(encoding.plateifu == first)
    assert len(rows) == 2
    assert sorted(encoding.uid[rows]) == [first, f"{first}#2"]
    assert len(set(encoding.uid)) == n
    # The broken file is carried along, with why.
    assert list(encoding.not_scored["plateifu"]) == ["9999-1901"]
    assert encoding.not_scored["reason"][0]
    assert encoding.model_sha256 == model_identity(encoder)[1]
    assert (encoding.pixels_per_reff == SIZE / 4.0).all()  # 16 pixels span +-2 Re


def test_errors_follow_their_definition(encoding, encoder, survey):
    data = SurveyDataset(survey["dataset"], preprocessor=encoder.preprocessor_)
    x, w, _ = data[3]
    with torch.no_grad():
        x_hat = encoder.network_(x[None], w[None])[0][0].numpy()
    x, w = x.numpy().astype(np.float64), w.numpy().astype(np.float64)
    good = w > 0
    chi = np.where(good, w * (x_hat - x) ** 2, 0.0)
    assert encoding.error[3] == pytest.approx(chi.sum() / good.sum(), rel=1e-5)
    per_line = chi.sum(axis=(1, 2)) / np.maximum(good.sum(axis=(1, 2)), 1)
    observed = good.any(axis=(1, 2))
    np.testing.assert_allclose(encoding.line_errors[3][observed], per_line[observed], rtol=1e-5)
    assert np.isnan(encoding.line_errors[3][~observed]).all()
    count = good.sum(axis=0)
    spaxel = np.where(count > 0, chi.sum(axis=0) / np.maximum(count, 1), np.nan)
    np.testing.assert_allclose(encoding.spaxel_errors[3], spaxel, rtol=2e-3, equal_nan=True)
    assert encoding.n_good[3] == good.sum()
    with torch.no_grad():
        latent = encoder.network_.encode(
            torch.from_numpy(x[None]).float(), torch.from_numpy(w[None]).float()
        )
    np.testing.assert_allclose(encoding.latents[3], latent[0].numpy(), rtol=1e-5, atol=1e-5)


def test_encoding_save_and_load(encoding, tmp_path):
    path = encoding.save(tmp_path / "encoded.h5")
    loaded = Encoding.load(path)
    for name in ("plateifu", "uid", "latents", "error", "n_good", "peak", "row", "galaxy_source"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(encoding, name))
    np.testing.assert_array_equal(loaded.line_errors, encoding.line_errors)
    np.testing.assert_array_equal(loaded.spaxel_errors, encoding.spaxel_errors)
    assert loaded.line_names == encoding.line_names
    assert loaded.model_sha256 == encoding.model_sha256
    assert loaded.grid == encoding.grid
    assert list(loaded.not_scored["plateifu"]) == ["9999-1901"]
    light = Encoding.load(path, spaxel_errors=False)
    assert light.spaxel_errors is None
    (tmp_path / "other.h5").write_bytes(b"not hdf5")
    with pytest.raises(FileFormatError, match="not a readable HDF5"):
        Encoding.load(tmp_path / "other.h5")


def test_model_identity_follows_the_weights_not_the_directory(encoder, tmp_path):
    name, sha = model_identity(encoder)
    assert name == "unsaved pca model"
    encoder.save_pretrained(tmp_path / "a")
    loaded = ifsrepr.encoder.IFSEncoder.from_pretrained(tmp_path / "a", device="cpu")
    loaded_name, loaded_sha = model_identity(loaded)
    assert loaded_sha == sha
    assert loaded_name == str((tmp_path / "a").resolve())
    with torch.no_grad():
        loaded.network_.components_[0, 0] += 1.0
    assert model_identity(loaded)[1] != sha


def test_encoding_of_line_stacks_lists_the_unusable(encoder, survey):
    stacks = [ifsrepr.read(path) for path in survey["files"][:3]]
    blank = ifsrepr.read(survey["files"][3])
    blank.mask[:] = True
    blank.meta["plateifu"] = "blank-1"
    encoding = encode_dataset(encoder, [*stacks, blank], progress=False)
    assert len(encoding) == 3
    assert list(encoding.plateifu) == [s.meta["plateifu"] for s in stacks]
    assert list(encoding.not_scored["plateifu"]) == ["blank-1"]
    assert "masked" in encoding.not_scored["reason"][0]


# -- the scorer ---------------------------------------------------------------------------------


def test_scores_rank_the_obvious_outliers_first():
    encoding = synthetic(outliers=3)
    table = AnomalyScorer(n_neighbors=10).fit(encoding).score()
    assert len(table) == len(encoding)
    assert list(table["rank"]) == list(range(1, len(encoding) + 1))
    assert set(table["plateifu"][:3]) == set(encoding.plateifu[-3:])
    assert np.all(np.diff(table["score"]) <= 1e-12)  # most anomalous first
    for name in COMPONENTS:
        # Every measure puts the outliers above every normal galaxy: higher = more anomalous.
        outlier = np.isin(table["plateifu"], encoding.plateifu[-3:])
        assert table[name][outlier].min() > table[name][~outlier].max(), name
        assert ((table[f"pct_{name}"] >= 0) & (table[f"pct_{name}"] <= 1)).all()
    top = table[0]
    assert top["top_line"] == "L2"
    assert top["top_lines"].startswith("L2 x")
    assert top["region"] == "outer"  # 6.5 pixels at 4 pixels per Re
    assert top["peak_dx"] == pytest.approx(6.5) and top["peak_dy"] == pytest.approx(0.5)
    assert top["peak_radius_reff"] == pytest.approx(np.hypot(6.5, 0.5) / 4)
    assert [f"err_{line}" for line in LINES] == [c for c in table.colnames if c.startswith("err_")]
    assert set(table["status"]) == {"scored"}
    assert table.meta["model_sha256"] == "a" * 64
    assert table.meta["components"] == list(DEFAULT_COMPONENTS)


def test_scoring_new_galaxies_against_a_reference():
    reference = synthetic(n=200, seed=1)
    new = synthetic(n=50, seed=2, outliers=2)
    scorer = AnomalyScorer(n_neighbors=5, random_state=3).fit(reference)
    table = scorer.score(new)
    assert set(table["plateifu"][:2]) == set(new.plateifu[-2:])
    # Beyond every reference galaxy on every measure: percentile 1, ties broken by zscore.
    assert (table["score"][:2] == 1.0).all()
    assert table["zscore"][0] >= table["zscore"][1]
    assert table.meta["reference"] == "synthetic"
    # The same call twice gives the same table.
    again = scorer.score(new)
    np.testing.assert_array_equal(again["score"], table["score"])


def test_lof_is_scikit_learns_novelty_lof():
    from sklearn.neighbors import LocalOutlierFactor

    reference, new = synthetic(n=150, seed=4), synthetic(n=40, seed=5, outliers=4)
    scorer = AnomalyScorer(n_neighbors=7, n_components=None).fit(reference)
    standard = (reference.latents - scorer.latent_mean_) / scorer.latent_scale_
    lof = LocalOutlierFactor(n_neighbors=7, novelty=True).fit(standard)
    expected = -lof.score_samples((new.latents - scorer.latent_mean_) / scorer.latent_scale_)
    table = scorer.score(new)
    got = dict(zip(table["plateifu"], table["lof"], strict=True))
    np.testing.assert_allclose([got[p] for p in new.plateifu], expected, rtol=1e-6)
    # In-sample: the training LOF scikit-learn computes in fit.
    inside = scorer.score()
    got = dict(zip(inside["plateifu"], inside["lof"], strict=True))
    np.testing.assert_allclose(
        [got[p] for p in reference.plateifu], -lof.negative_outlier_factor_, rtol=1e-6
    )


def test_percentiles_are_mid_ranks_of_the_reference():
    scorer = AnomalyScorer(n_neighbors=3).fit(synthetic(n=20))
    values = scorer.reference_values_["recon_error"]
    assert scorer.percentile("recon_error", values[:1])[0] == pytest.approx(0.5 / 20)
    assert scorer.percentile("recon_error", [values[-1] * 10, -1.0, np.nan]).tolist()[:2] == [1, 0]
    assert np.isnan(scorer.percentile("recon_error", [np.nan])[0])


def test_large_references_are_subsampled():
    encoding = synthetic(n=400, outliers=2)
    scorer = AnomalyScorer(max_reference=100).fit(encoding)
    assert len(scorer.subset_) == 100
    assert len(scorer.reference_values_["lof"]) == 100
    table = scorer.score()
    assert len(table) == 400
    assert set(table["plateifu"][:2]) == set(encoding.plateifu[-2:])


def test_small_reference_uses_fewer_neighbours_and_says_so():
    with pytest.warns(ScoringWarning, match="using 4 neighbours"):
        scorer = AnomalyScorer(n_neighbors=10).fit(synthetic(n=5))
    assert scorer.n_neighbors_ == 4
    with pytest.raises(IFSReprError, match="at least 3"):
        AnomalyScorer().fit(synthetic(n=2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_neighbors": 0}, "n_neighbors must be at least 1"),
        ({"components": ["recon_error", "magic"]}, "components must be some of"),
        ({"n_components": 0}, "n_components"),
        ({"max_reference": 1}, "max_reference"),
    ],
)
def test_bad_parameters_are_refused_at_fit(options, message):
    scorer = AnomalyScorer(**options)  # stored as given, checked by fit (scikit-learn habit)
    with pytest.raises(ValueError, match=message):
        scorer.fit(synthetic(n=20))


def test_components_choose_what_the_score_averages():
    encoding = synthetic(n=100)
    table = AnomalyScorer(components=["recon_error"]).fit(encoding).score()
    np.testing.assert_allclose(table["score"], table["pct_recon_error"])


def test_region_of():
    assert region_of([0.1, 0.3, 0.99, 1.0, np.nan]).tolist() == [
        "nucleus", "inner disc", "inner disc", "outer", "unknown",
    ]  # fmt: skip
    assert region_of([np.nan, np.nan], [1.0, 6.0]).tolist() == ["nucleus", "outer"]


# -- bad input -------------------------------------------------------------------------------------


def test_encodings_of_another_model_are_refused_naming_both():
    scorer = AnomalyScorer(n_neighbors=3).fit(synthetic(name="model-A", sha="a" * 64))
    other = synthetic(name="model-B", sha="b" * 64)
    with pytest.raises(ModelMismatchError) as error:
        scorer.score(other)
    assert "model-A" in str(error.value) and "model-B" in str(error.value)


def test_duplicates_are_scored_separately(encoding):
    table = AnomalyScorer(n_neighbors=5).fit(encoding).score()
    counts = {p: list(table["plateifu"]).count(p) for p in set(table["plateifu"])}
    repeated = [p for p, c in counts.items() if c == 2]
    assert len(repeated) == 1
    rows = table[table["plateifu"] == repeated[0]]
    assert sorted(rows["uid"]) == [repeated[0], f"{repeated[0]}#2"]
    assert (rows["status"] == "scored").all()


def test_failed_galaxies_are_listed_as_not_scored(encoding, tmp_path):
    table = AnomalyScorer(n_neighbors=5).fit(encoding).score()
    assert len(table) == len(encoding) + 1
    last = table[-1]
    assert last["plateifu"] == "9999-1901"
    assert last["status"] == "not scored"
    assert last["reason"]
    assert np.ma.is_masked(last["rank"]) and np.isnan(last["score"])
    table.write(tmp_path / "scores.ecsv")
    back = Table.read(tmp_path / "scores.ecsv")
    assert back["status"][-1] == "not scored" and np.ma.is_masked(back["rank"][-1])
    assert back.meta["model_sha256"] == encoding.model_sha256


def test_design_api_with_line_stacks(survey):
    encoder = fit_tiny_encoder(survey["dataset"], "convlstm")
    stacks = [ifsrepr.read(path) for path in survey["files"]]
    scores = AnomalyScorer(n_neighbors=3).fit(encoder, stacks[:10]).score(stacks[10:])
    assert isinstance(scores, Table)
    assert sorted(scores["plateifu"]) == sorted(s.meta["plateifu"] for s in stacks[10:])
    assert np.isfinite(scores["score"]).all()
    # An encoding from another model is refused as a reference for this encoder.
    other = encode_dataset(fit_tiny_encoder(survey["dataset"]), stacks[:5], progress=False)
    with pytest.raises(ModelMismatchError, match="unsaved pca model"):
        AnomalyScorer(n_neighbors=3).fit(encoder, other)
    with pytest.raises(IFSReprError, match="fitted without an encoder"):
        AnomalyScorer(n_neighbors=3).fit(other).score(stacks[:2])


# -- command line ----------------------------------------------------------------------------------


def test_encode_and_score_commands(survey, encoder, tmp_path, capsys):
    model = encoder.save_pretrained(tmp_path / "model")
    encoded = tmp_path / "encoded.h5"
    assert main(["encode", str(survey["dataset"]), "--model", str(model), "-o", str(encoded),
                 "--quiet"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning:" in err and "occur more than once" in err
    assert "encoded 17 galaxies (1 not encoded)" in err
    scores = tmp_path / "scores.ecsv"
    assert main(["score", str(encoded), "--model", str(model), "-o", str(scores)]) == 0
    out, err = capsys.readouterr()
    assert "scores written to" in out and "#1 " in err
    table = Table.read(scores)
    assert len(table) == 18 and table["status"][-1] == "not scored"
    # Straight from the dataset, encoding it on the way.
    again = tmp_path / "again.ecsv"
    assert main(["score", str(survey["dataset"]), "--model", str(model), "-o", str(again),
                 "--quiet", "--save-encoding", str(tmp_path / "e2.h5")]) == 0  # fmt: skip
    np.testing.assert_allclose(Table.read(again)["score"], table["score"], equal_nan=True)
    assert (tmp_path / "e2.h5").is_file()


def test_score_command_refuses_an_encoding_from_another_model(survey, encoder, tmp_path, capsys):
    model = encoder.save_pretrained(tmp_path / "model")
    other = fit_tiny_encoder(survey["dataset"], n_components=4).save_pretrained(tmp_path / "other")
    encoded = tmp_path / "encoded.h5"
    loaded = ifsrepr.encoder.IFSEncoder.from_pretrained(model, device="cpu")
    with pytest.warns(DuplicatePlateIFUWarning):
        encode_dataset(loaded, survey["dataset"], progress=False).save(encoded)
    code = main(["score", str(encoded), "--model", str(other), "-o", str(tmp_path / "s.ecsv")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{encoded} (an encoding of" in err
    assert str(model.resolve()) in err and str(other.resolve()) in err
    assert not (tmp_path / "s.ecsv").exists()
    code = main(["score", str(survey["dataset"]), "-o", str(tmp_path / "s.ecsv")])
    assert code == 1 and "--model is needed" in capsys.readouterr().err


def test_an_encoding_without_peak_errors_is_scored_on_the_other_measures():
    # Saved without spaxel maps: no peak error anywhere.
    encoding = synthetic(n=120, outliers=3)
    encoding.peak_error = np.full(len(encoding), np.nan)
    scorer = AnomalyScorer().fit(encoding)  # no warning (warnings are errors here)
    table = scorer.score(encoding)
    assert scorer.reference_spread_["peak_error"] == 1.0
    assert set(table["plateifu"][:3]) == set(encoding.plateifu[-3:])
