"""Tests of the evaluation harness: metrics, `evaluate_mock` and ``ifsrepr evaluate``."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from ifsrepr.cli import main
from ifsrepr.exceptions import IFSReprError
from ifsrepr.scoring import BASELINES, evaluate_mock, evaluate_scores
from ifsrepr.scoring._testing import fit_tiny_encoder, make_tiny_survey
from ifsrepr.scoring.evaluate import baseline_scores, detection_metrics, format_metrics

LABELS = np.array(["none"] * 6 + ["agn", "agn", "knot", "knot"])


def by(table, method, cls):
    return table[(table["method"] == method) & (table["class"] == cls)][0]


def test_metrics_of_perfect_and_reversed_rankings():
    perfect = np.array([0, 1, 2, 3, 4, 5, 10, 11, 12, 13], dtype=float)
    table = detection_metrics(LABELS, {"perfect": perfect, "reversed": -perfect})
    assert list(table["class"][:3]) == ["all", "agn", "knot"]
    for cls in ("all", "agn", "knot"):
        row = by(table, "perfect", cls)
        assert (row["roc_auc"], row["average_precision"], row["precision_at_k"]) == (1, 1, 1)
        assert by(table, "reversed", cls)["roc_auc"] == 0
    row = by(table, "perfect", "agn")
    assert (row["n_anomalies"], row["n_normal"], row["k"]) == (2, 6, 2)  # knots left out
    assert by(table, "perfect", "all")["n_anomalies"] == 4


def test_metrics_known_values_and_nan_scores():
    # One normal galaxy outranks one anomaly: AUC = 1 - 1/(2*2), AP by hand.
    labels = np.array(["none", "none", "x", "x"])
    table = detection_metrics(labels, {"m": np.array([0.1, 0.8, 0.9, 0.5])}, k=1)
    row = by(table, "m", "all")
    assert row["roc_auc"] == pytest.approx(0.75)
    assert row["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))
    assert row["precision_at_k"] == 1 and row["k"] == 1
    # NaN ranks last: an anomaly without a score counts as missed.
    row = by(detection_metrics(labels, {"m": np.array([0.1, 0.2, np.nan, 0.9])}), "m", "all")
    assert row["roc_auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 scores for 4 labels"):
        detection_metrics(labels, {"m": np.zeros(3)})


def test_evaluate_scores_matches_by_plateifu():
    truth = Table({"plateifu": ["1-1", "1-2", "1-3", "1-4"], "anomaly": ["none", "x", "none", "x"]})
    scores = Table(
        {
            "plateifu": ["1-4", "1-2", "1-3", "1-1", "9-9"],
            "score": [0.9, 0.8, 0.2, 0.1, np.nan],
            "status": ["scored"] * 4 + ["not scored"],
        }
    )
    table = evaluate_scores(scores, truth)
    assert by(table, "score", "all")["roc_auc"] == 1
    assert table.meta["n_evaluated"] == 4
    scores["status"][-1] = "scored"
    with pytest.raises(IFSReprError, match="not in the truth table: 9-9"):
        evaluate_scores(scores, truth)
    with pytest.raises(IFSReprError, match="no column 'magic'"):
        evaluate_scores(scores[:4], truth, columns=["magic"])


def test_baselines_see_planted_outliers():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 200))
    x = (rng.normal(size=(60, 3)) @ basis + 0.01 * rng.normal(size=(60, 200))).astype(np.float32)
    # Far off the 3-d subspace, and far along it.
    x[-3:] += rng.normal(scale=5.0, size=(3, 200)) + 10.0 * basis[0]
    w = np.ones_like(x)
    scores = baseline_scores(x, w, n_components=3)
    assert list(scores) == list(BASELINES)
    labels = np.array(["none"] * 57 + ["x"] * 3)
    table = detection_metrics(labels, scores)
    for name in BASELINES:
        assert by(table, name, "all")["roc_auc"] == 1.0, name


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_tiny_survey(tmp_path_factory.mktemp("evaluate"), n_galaxies=20, anomaly_rate=0.3)


def test_evaluate_mock_puts_the_model_beside_the_baselines(survey):
    encoder = fit_tiny_encoder(survey["dataset"])
    metrics, scores = evaluate_mock(survey["dataset"], survey["truth"], encoder)
    methods = list(dict.fromkeys(metrics["method"]))
    assert methods[:2] == ["pca:score", "pca:recon_error"]
    assert set(BASELINES) <= set(methods)
    truth = survey["truth_table"]
    classes = sorted(set(truth["anomaly"]) - {"none"})
    assert list(dict.fromkeys(metrics["class"])) == ["all", *classes]
    for row in metrics:
        assert 0 <= row["roc_auc"] <= 1 and 0 <= row["average_precision"] <= 1
    assert by(metrics, "pca:score", "all")["n_anomalies"] == 6
    assert set(BASELINES) <= set(scores.colnames)
    text = format_metrics(metrics)
    assert "all: 6 anomalies vs 14 normal galaxies" in text and "iforest_pca" in text
    assert metrics.meta["model_sha256"]


def test_evaluate_command(survey, tmp_path, capsys):
    model = fit_tiny_encoder(survey["dataset"]).save_pretrained(tmp_path / "model")
    out = tmp_path / "metrics.ecsv"
    code = main(["evaluate", str(survey["dataset"]), "--truth", str(survey["truth"]),
                 "--model", str(model), "-o", str(out), "--quiet",
                 "--baselines", "pca_recon_error", "lof_pixels"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "ROC-AUC" in printed and "pca:score" in printed and "lof_pixels" in printed
    table = Table.read(out)
    assert set(table["method"]) >= {"pca:score", "pca_recon_error", "lof_pixels"}
    assert "iforest_pixels" not in set(table["method"])
    # From scores already computed, without the model.
    scores = tmp_path / "scores.ecsv"
    assert main(["score", str(survey["dataset"]), "--model", str(model), "-o", str(scores),
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(survey["dataset"]), "--truth", str(survey["truth"]),
                 "--scores", str(scores), "--baselines"]) == 0  # fmt: skip
    assert "model:score" in capsys.readouterr().out
    assert main(["evaluate", str(survey["dataset"]), "--truth", str(survey["truth"])]) == 1
    assert "--model" in capsys.readouterr().err
