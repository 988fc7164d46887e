"""How well do the scores find known anomalies? Metrics on a labelled mock survey.

A mock survey (`ifsrepr.mock.make_survey`) has a truth table whose
``anomaly`` column labels every galaxy (``none`` or an anomaly class).
`evaluate_scores` matches any score columns to it by plate-IFU and computes,
overall and per anomaly class:

``roc_auc``
    Probability that a random anomaly scores above a random normal galaxy
    (0.5 = chance).
``average_precision``
    Area under the precision-recall curve (chance = the anomaly fraction).
``precision_at_k``
    Fraction of anomalies among the ``k`` top-scored galaxies; by default
    ``k`` is the number of anomalies evaluated (the "R-precision"), so 1 is
    a perfect ranking.

Overall, every anomaly counts as positive and ``none`` galaxies as negative;
per class, that class's galaxies are the positives and the ``none``
galaxies the negatives (other classes are left out).

`evaluate_mock` is the whole harness: it scores a survey dataset with an
encoder and `~ifsrepr.scoring.AnomalyScorer` and, in the same run, the
baselines of `BASELINES` on the same normalised maps, and returns all the
metrics side by side (``ifsrepr evaluate``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from ..exceptions import IFSReprError

__all__ = ["BASELINES", "detection_metrics", "evaluate_mock", "evaluate_scores", "format_metrics"]

#: Baselines `evaluate_mock` computes on the normalised pixels (masked pixels set to 0).
BASELINES = {
    "pca_recon_error": "reconstruction error of a PCA of the flattened maps, same weighting",
    "iforest_pixels": "Isolation Forest on the flattened maps",
    "lof_pixels": "Local Outlier Factor on the flattened maps",
    "iforest_pca": "Isolation Forest on the PCA components",
}


def detection_metrics(
    labels: Sequence[str] | np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    normal: str = "none",
    k: int | None = None,
) -> Table:
    """ROC-AUC, average precision and precision@k of several scores, overall and per class.

    Parameters
    ----------
    labels : sequence of str
        The true class of each galaxy (``normal`` for an ordinary one).
    scores : mapping
        Method name to scores (higher = more anomalous), aligned with ``labels``.
        NaN scores rank last.
    normal : str
        The label of ordinary galaxies.
    k : int, optional
        The ``k`` of precision@k; default the number of positives.

    Returns
    -------
    astropy.table.Table
        ``method, class, n_anomalies, n_normal, roc_auc, average_precision,
        precision_at_k, k``; class ``all`` first.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype=str)
    classes = ["all"] + sorted(set(labels) - {normal})
    rows = []
    for method, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != labels.shape:
            raise ValueError(f"{method}: {values.shape[0]} scores for {labels.shape[0]} labels")
        # NaN ranks last: below every real score.
        finite = np.where(np.isfinite(values), values, -np.inf)
        lowest = np.min(finite[np.isfinite(finite)]) if np.isfinite(finite).any() else 0.0
        finite = np.where(np.isfinite(finite), finite, lowest - 1.0)
        for name in classes:
            if name == "all":
                keep = np.ones(len(labels), dtype=bool)
                positive = labels != normal
            else:
                keep = (labels == name) | (labels == normal)
                positive = labels == name
            y, s = positive[keep], finite[keep]
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            if n_pos == 0 or n_neg == 0:
                auc = ap = p_at_k = np.nan
                kk = 0
            else:
                auc = float(roc_auc_score(y, s))
                ap = float(average_precision_score(y, s))
                kk = min(k or n_pos, len(y))
                top = np.argsort(-s, kind="stable")[:kk]
                p_at_k = float(y[top].mean())
            rows.append((method, name, n_pos, n_neg, auc, ap, p_at_k, kk))
    table = Table(
        rows=rows,
        names=(
            "method", "class", "n_anomalies", "n_normal", "roc_auc", "average_precision",
            "precision_at_k", "k",
        ),
        dtype=(str, str, int, int, float, float, float, int),
    )  # fmt: skip
    for name in ("roc_auc", "average_precision", "precision_at_k"):
        table[name].format = ".3f"
    return table


def _read_table(table: Table | str | os.PathLike) -> Table:
    if isinstance(table, Table):
        return table
    return Table.read(table, format="ascii.ecsv")


def evaluate_scores(
    scores: Table | str | os.PathLike,
    truth: Table | str | os.PathLike,
    *,
    columns: Sequence[str] | Mapping[str, str] = ("score",),
    label_column: str = "anomaly",
    normal: str = "none",
    k: int | None = None,
) -> Table:
    """Metrics of score columns against a mock survey's truth table.

    Parameters
    ----------
    scores : Table or path
        A scores table (`AnomalyScorer.score`, ``ifsrepr score``) or any
        table with ``plateifu`` and the score columns; rows whose ``status``
        is not ``scored`` are left out.
    truth : Table or path
        The truth table (``truth.ecsv``) with ``plateifu`` and ``label_column``.
    columns : sequence of str or mapping
        Score columns to evaluate, or a mapping of method name to column.
    label_column, normal : str
        The truth column with the class, and the label of normal galaxies.
    k : int, optional
        The ``k`` of precision@k (default: the number of anomalies).

    Returns
    -------
    astropy.table.Table
        See `detection_metrics`; ``meta`` counts the galaxies matched.

    Raises
    ------
    ifsrepr.IFSReprError
        If a scored galaxy has no truth row.

    Examples
    --------
    Two scores of five galaxies, one of them a known anomaly:

    >>> from astropy.table import Table
    >>> from ifsrepr.scoring import evaluate_scores
    >>> truth = Table({"plateifu": ["1-1", "1-2", "1-3", "1-4", "1-5"],
    ...                "anomaly": ["none", "blueberry", "none", "none", "none"]})
    >>> scores = Table({"plateifu": ["1-1", "1-2", "1-3", "1-4", "1-5"],
    ...                 "good": [0.1, 0.9, 0.3, 0.2, 0.4],
    ...                 "poor": [0.5, 0.2, 0.1, 0.3, 0.4]})
    >>> metrics = evaluate_scores(scores, truth, columns=["good", "poor"])
    >>> metrics["method", "class", "roc_auc", "precision_at_k"]
    <Table length=4>
    method   class   roc_auc precision_at_k
     str4    str9    float64    float64
    ------ --------- ------- --------------
      good       all     1.0            1.0
      good blueberry     1.0            1.0
      poor       all    0.25            0.0
      poor blueberry    0.25            0.0
    """
    scores, truth = _read_table(scores), _read_table(truth)
    if "status" in scores.colnames:
        scores = scores[np.asarray(scores["status"], dtype=str) == "scored"]
    for name, table, needed in (
        ("scores", scores, ["plateifu"]),
        ("truth", truth, ["plateifu", label_column]),
    ):
        missing = [c for c in needed if c not in table.colnames]
        if missing:
            raise IFSReprError(f"the {name} table has no column {', '.join(missing)}")
    lookup = {str(p): str(c) for p, c in zip(truth["plateifu"], truth[label_column], strict=True)}
    plateifu = np.asarray(scores["plateifu"], dtype=str)
    unmatched = [p for p in plateifu if p not in lookup]
    if unmatched:
        raise IFSReprError(
            f"{len(unmatched)} scored galaxies are not in the truth table: "
            f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}"
        )
    labels = np.asarray([lookup[p] for p in plateifu], dtype=str)
    mapping = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    values = {}
    for method, column in mapping.items():
        if column not in scores.colnames:
            raise IFSReprError(f"the scores table has no column {column!r}")
        values[method] = np.asarray(scores[column], dtype=np.float64)
    table = detection_metrics(labels, values, normal=normal, k=k)
    table.meta["n_evaluated"] = len(labels)
    table.meta["n_truth"] = len(truth)
    return table


def _pixels(dataset: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Flattened normalised maps (masked pixels 0), weights and plate-IFUs of a dataset."""
    from ..dataset import load_metadata

    n = len(dataset)
    first_x, _, _ = dataset[0]
    size = int(np.prod(first_x.shape))
    x = np.empty((n, size), dtype=np.float32)
    w = np.empty((n, size), dtype=np.float32)
    for i in range(n):
        xi, wi, _ = dataset[i]
        xi, wi = np.asarray(xi).reshape(-1), np.asarray(wi).reshape(-1)
        good = (wi > 0) & np.isfinite(xi) & np.isfinite(wi)
        x[i] = np.where(good, xi, 0.0)
        w[i] = np.where(good, wi, 0.0)
    table = load_metadata(dataset.path)
    plateifu = [str(p) for p in np.asarray(table["plateifu"], dtype=str)[dataset.indices]]
    return x, w, plateifu


def baseline_scores(
    x: np.ndarray,
    w: np.ndarray,
    *,
    n_components: int = 20,
    n_neighbors: int = 10,
    random_state: int = 0,
    baselines: Sequence[str] = tuple(BASELINES),
) -> dict[str, np.ndarray]:
    """The scores of `BASELINES` (higher = more anomalous) from flattened maps.

    Parameters
    ----------
    x, w : numpy.ndarray
        ``(n, n_features)`` normalised maps with masked pixels at 0, and
        their weights (0 where masked).
    n_components : int
        PCA components (at most ``n - 1``).
    n_neighbors : int
        LOF neighbours (at most ``n - 1``).
    random_state : int
        Seed of the PCA and the forests.
    baselines : sequence of str
        Which to compute.
    """
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {', '.join(BASELINES)}")
    n = len(x)
    out: dict[str, np.ndarray] = {}
    need_pca = {"pca_recon_error", "iforest_pca"} & set(baselines)
    if need_pca:
        pca = PCA(n_components=max(1, min(n_components, n - 1)), random_state=random_state)
        components = pca.fit_transform(x)
        if "pca_recon_error" in baselines:
            recon = pca.inverse_transform(components)
            chi = w * (recon - x) ** 2
            out["pca_recon_error"] = chi.sum(axis=1) / np.maximum((w > 0).sum(axis=1), 1)
        if "iforest_pca" in baselines:
            forest = IsolationForest(n_estimators=200, random_state=random_state)
            out["iforest_pca"] = -forest.fit(components).score_samples(components)
    if "iforest_pixels" in baselines:
        forest = IsolationForest(n_estimators=200, random_state=random_state)
        out["iforest_pixels"] = -forest.fit(x).score_samples(x)
    if "lof_pixels" in baselines:
        lof = LocalOutlierFactor(n_neighbors=max(1, min(n_neighbors, n - 1)))
        lof.fit(x)
        out["lof_pixels"] = -lof.negative_outlier_factor_
    return {name: out[name] for name in baselines}


def evaluate_mock(
    dataset: str | os.PathLike,
    truth: Table | str | os.PathLike,
    encoder: Any = None,
    *,
    scores: Table | str | os.PathLike | None = None,
    scorer: Any = None,
    baselines: Sequence[str] = tuple(BASELINES),
    components: bool = True,
    k: int | None = None,
    n_pca: int = 20,
    random_state: int = 0,
    progress: bool = False,
) -> tuple[Table, Table]:
    """Score a labelled mock survey and its baselines, and measure them all.

    Parameters
    ----------
    dataset : path-like
        The survey dataset (``ifsrepr extract`` of the mock survey).
    truth : Table or path
        The mock survey's ``truth.ecsv``.
    encoder : IFSEncoder, optional
        The model to score with (needed unless ``scores`` is given).
    scores : Table or path, optional
        Scores already computed for this dataset (then no encoding is done).
    scorer : AnomalyScorer, optional
        The scorer to fit on the dataset (default ``AnomalyScorer()``).
    baselines : sequence of str
        Baselines of `BASELINES` to compute on the same maps.
    components : bool
        Also evaluate each measure of the scorer on its own.
    k : int, optional
        The ``k`` of precision@k (default: the number of anomalies).
    n_pca : int
        Components of the PCA baselines.
    random_state : int
        Seed of the baselines.
    progress : bool
        Progress bars.

    Returns
    -------
    metrics, scores : astropy.table.Table
        The metrics (`detection_metrics`; the model's methods are named
        ``<architecture>:score``, ``<architecture>:recon_error``...) and the
        scores table with the baseline scores added as columns.

    Examples
    --------
    A mock survey of four galaxies, two of them anomalous, on a 16x16 grid,
    and a small PCA encoder fitted on it:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> from ifsrepr.scoring import AnomalyScorer, evaluate_mock
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name, anomaly_rate=0.5)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> metrics, scores = evaluate_mock(
    ...     dataset, truth, encoder, scorer=AnomalyScorer(n_neighbors=3, n_estimators=20),
    ...     baselines=["pca_recon_error"], n_pca=2)
    >>> sorted(set(metrics["class"].tolist()))
    ['all', 'blueberry', 'broad_line_agn']
    >>> metrics[metrics["class"] == "all"]["method"][[0, -1]].tolist()
    ['pca:score', 'pca_recon_error']
    >>> "pca_recon_error" in scores.colnames
    True
    >>> tmp.cleanup()
    """
    from ..dataset import SurveyDataset
    from .scorer import COMPONENTS, AnomalyScorer

    dataset = Path(dataset)
    truth = _read_table(truth)
    if scores is None:
        if encoder is None:
            raise IFSReprError("evaluate_mock needs an encoder, or scores already computed")
        scorer = scorer if scorer is not None else AnomalyScorer(progress=progress)
        scorer.progress = progress
        scores = scorer.fit(encoder, dataset).score()
        prefix = encoder.architecture
    else:
        scores = _read_table(scores)
        prefix = "model"
    preprocessor = None if encoder is None else encoder.preprocessor_
    data = SurveyDataset(dataset, preprocessor=preprocessor)
    x, w, plateifu = _pixels(data)
    values = baseline_scores(
        x, w, n_components=n_pca, random_state=random_state, baselines=baselines
    )
    del x, w
    scored = scores[np.asarray(scores["status"], dtype=str) == "scored"].copy()
    position = {}
    for i, uid in enumerate(_unique(plateifu)):
        position[uid] = i
    keys = np.asarray(scored["uid"] if "uid" in scored.colnames else scored["plateifu"], dtype=str)
    missing = [key for key in keys if key not in position]
    if missing:
        raise IFSReprError(
            f"{len(missing)} scored galaxies are not in {dataset.name}: {', '.join(missing[:5])}; "
            "were the scores computed for another dataset?"
        )
    rows = np.asarray([position[key] for key in keys])
    for name, array in values.items():
        scored[name] = array[rows]
    columns = {f"{prefix}:score": "score"}
    if components:
        columns.update({f"{prefix}:{name}": name for name in COMPONENTS if name in scored.colnames})
    columns.update({name: name for name in values})
    metrics = evaluate_scores(scored, truth, columns=columns, k=k)
    metrics.meta.update(
        {
            "dataset": str(dataset),
            "baselines": {name: BASELINES[name] for name in values},
            "model_name": scores.meta.get("model_name", ""),
            "model_sha256": scores.meta.get("model_sha256", ""),
            "n_not_scored": int(np.sum(np.asarray(scores["status"], dtype=str) != "scored")),
        }
    )
    return metrics, scored


def _unique(plateifu: Sequence[str]) -> list[str]:
    from .encoding import unique_ids

    return [str(u) for u in unique_ids(list(plateifu))]


def format_metrics(metrics: Table) -> str:
    """The metrics as a readable text table: one block per class, methods as rows."""
    lines = []
    for name in dict.fromkeys(str(c) for c in metrics["class"]):
        block = metrics[np.asarray(metrics["class"], dtype=str) == name]
        first = block[0]
        lines.append(
            f"{name}: {first['n_anomalies']} anomalies vs {first['n_normal']} normal galaxies"
        )
        width = max(len(str(m)) for m in block["method"])
        lines.append(f"  {'method':<{width}}  ROC-AUC  avg.prec  prec@k")
        for row in block:
            lines.append(
                f"  {row['method']:<{width}}  {_fmt(row['roc_auc']):>7}  "
                f"{_fmt(row['average_precision']):>8}  {_fmt(row['precision_at_k']):>6}"
            )
        lines.append("")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"
