"""Linear probes: how much of a property a linear model can read off a representation.

A *probe* fits the simplest model that could use a feature set, a linear
one, to predict a known property of each galaxy, and measures it on galaxies
it was not fitted on. A high score means the property is linearly decodable
from the features; comparing feature sets on the same folds says which one
carries more of it. `probe` does this for several properties and feature sets
at once:

* continuous properties: ridge regression on standardised features, the
  penalty chosen by efficient leave-one-out inside each training fold
  (`~sklearn.linear_model.RidgeCV`, so the choice never sees the test fold),
  scored by the coefficient of determination R² (0 = no better than
  predicting the mean, 1 = perfect);
* class labels: logistic regression with class-balanced weights on
  standardised features, the inverse penalty ``C`` chosen by a 3-fold
  stratified search inside each training fold, scored by balanced accuracy (the mean
  recall over classes, so a rare class counts as much as a common one;
  chance is ``1 / n_classes``).

Before fitting, each feature is imputed (training median), clipped to the
training fold's 0.5-99.5 percentile range and standardised, with statistics
of the training fold alone. Every feature set is scored on the same outer
folds, so their differences are not fold-to-fold luck; the spread across
folds is reported with each mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from .errors import ProbeColumnError, ProbeError

__all__ = ["KINDS", "column_kind", "plot_probes", "probe"]

#: The probe kinds, by the model they fit.
KINDS = ("regression", "classification")

#: Ridge penalties tried (on standardised features, so one grid fits all).
RIDGE_ALPHAS = np.logspace(-2, 5, 22)
#: Inverse logistic penalties tried.
LOGISTIC_CS = np.logspace(-3, 1, 5)
#: Text values read as missing (besides masked entries).
MISSING_TEXT = ("", "--", "nan", "NaN", "N/A")


def column_kind(
    column: Any, requested: str | None = None, *, max_classes: int = 10, name: str = "column"
) -> str:
    """How a column is probed: ``"regression"`` or ``"classification"``.

    The rule, by dtype (so that it never depends on the values' luck):

    * a ``requested`` kind is used when the dtype allows it; a non-numeric
      column cannot be regressed on (`ProbeColumnError`, naming it);
    * booleans are classes;
    * numbers (integer or float) are regressed on; pass
      ``requested="classification"`` for integer class codes;
    * text is classes when it has at most ``max_classes`` distinct values
      (missing ones aside), and refused otherwise: text with many values is
      more likely an identifier than a class label.

    Parameters
    ----------
    column : array-like
        The values.
    requested : {'regression', 'classification'}, optional
        The kind asked for (None or ``"auto"``: decide by dtype).
    max_classes : int
        Most distinct text values read as classes without being asked.
    name : str
        The column's name, for messages.

    Returns
    -------
    str
        ``"regression"`` or ``"classification"``.

    Raises
    ------
    ProbeColumnError
        For an unknown kind, a multi-dimensional column, regression on text,
        or text with too many distinct values to be classes.

    Examples
    --------
    >>> column_kind([0.5, 1.2, 3.0])
    'regression'
    >>> column_kind(["SF", "AGN", "SF"])
    'classification'
    """
    if requested in (None, "auto"):
        requested = None
    elif requested not in KINDS:
        raise ProbeColumnError(
            f"{name}: unknown probe kind {requested!r}; use 'regression' or 'classification'"
        )
    values = np.asanyarray(column)
    if values.ndim != 1:
        raise ProbeColumnError(
            f"{name}: a probe column must hold one value per galaxy, got shape {values.shape}"
        )
    kind = values.dtype.kind
    if kind == "O":
        # An object column of numbers (a catalogue read without types) is numeric.
        try:
            values = np.asarray(values, dtype=np.float64)
            kind = "f"
        except (TypeError, ValueError):
            kind = "U"
    if kind == "b":
        if requested == "regression":
            raise ProbeColumnError(
                f"{name}: boolean values cannot be regressed on; probe it as classes "
                f"(kinds={{{name!r}: 'classification'}})"
            )
        return "classification"
    if kind in "iuf":
        return requested or "regression"
    if kind in "USO":
        if requested == "regression":
            raise ProbeColumnError(
                f"{name}: not numeric (dtype {values.dtype}), so a ridge regression cannot "
                f"predict it; probe it as classes with kinds={{{name!r}: 'classification'}}"
            )
        if requested == "classification":
            return requested
        distinct = {str(v) for v in _present_text(values)}
        if len(distinct) > max_classes:
            raise ProbeColumnError(
                f"{name}: not numeric (dtype {values.dtype}) and {len(distinct)} distinct values, "
                f"more than max_classes={max_classes} for a class label; probe it as classes "
                f"anyway with kinds={{{name!r}: 'classification'}}"
            )
        return "classification"
    raise ProbeColumnError(f"{name}: values of dtype {values.dtype} cannot be probed")


def _present_text(values: np.ndarray) -> np.ndarray:
    mask = np.ma.getmaskarray(values)
    text = np.asarray(np.ma.getdata(values)).astype(str)
    return text[~mask & ~np.isin(text, MISSING_TEXT)]


def _target(column: Any, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, usable) of a column: masked, NaN, infinite or empty-text entries are unusable."""
    mask = np.ma.getmaskarray(column)
    data = np.asarray(np.ma.getdata(column))
    if kind == "regression":
        values = data.astype(np.float64)
        return values, ~mask & np.isfinite(values)
    if data.dtype.kind == "f":
        usable = ~mask & np.isfinite(data)
        text = np.where(usable, data, 0).astype(str)
    else:
        text = data.astype(str)
        usable = ~mask & ~np.isin(text, MISSING_TEXT)
    return text, usable


def _feature_sets(
    latents: np.ndarray, baselines: Mapping[str, Any] | None, n: int
) -> dict[str, np.ndarray]:
    sets = {"latent": np.asarray(latents, dtype=np.float64)}
    for key, value in (baselines or {}).items():
        if key == "latent":
            raise ProbeError("'latent' names the latents; give the baseline another name")
        sets[str(key)] = np.asarray(value, dtype=np.float64)
    for key, value in sets.items():
        if value.ndim != 2 or len(value) != n:
            raise ProbeError(
                f"feature set {key!r} must be shaped (n_galaxies, n_features) with "
                f"n_galaxies = {n} (the table's rows), got {value.shape}"
            )
        if value.shape[1] == 0:
            raise ProbeError(f"feature set {key!r} has no features")
    if not np.isfinite(sets["latent"]).all():
        raise ProbeError("the latents must be finite (NaN or infinite values found)")
    return sets


def _prepare(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Impute, clip and standardise features with statistics of the training fold only.

    Hand-made features can be undefined (the log ratio of an undetected
    line): the training median stands in for them. They can also be wild (a
    ratio over a line barely above zero): clipping at the training fold's
    0.5 and 99.5 percentiles keeps one such galaxy from deciding a fold. The
    same steps are applied to every feature set, latents included (where
    they change next to nothing), so the comparison stays even.
    """
    observed = ~np.isnan(train).all(axis=0)
    median = np.zeros(train.shape[1])
    median[observed] = np.nanmedian(train[:, observed], axis=0)
    train = np.where(np.isnan(train), median, train)
    test = np.where(np.isnan(test), median, test)
    low, high = np.percentile(train, [0.5, 99.5], axis=0)
    train, test = np.clip(train, low, high), np.clip(test, low, high)
    mean, spread = train.mean(axis=0), train.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    return (train - mean) / spread, (test - mean) / spread


def _fit_ridge(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import RidgeCV

    # RidgeCV's efficient leave-one-out picks the penalty inside the
    # training fold: the nested choice at the cost of one fit.
    return RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)


def _fit_logistic(x: np.ndarray, y: np.ndarray, random_state: int):
    """Logistic regression with ``C`` chosen by an inner stratified CV on (x, y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    inner = min(3, int(counts.min()))
    best_c = 1.0
    if inner >= 2:
        # The regularisation path by warm starts (weak to strong fits, each
        # starting from the last), as LogisticRegressionCV does, whose
        # defaults are changing across scikit-learn releases.
        scores = np.zeros(len(LOGISTIC_CS))
        splitter = StratifiedKFold(inner, shuffle=True, random_state=random_state)
        for train, test in splitter.split(x, y):
            model = LogisticRegression(class_weight="balanced", max_iter=5000, warm_start=True)
            for j, c in enumerate(LOGISTIC_CS):
                model.set_params(C=c).fit(x[train], y[train])
                scores[j] += balanced_accuracy_score(y[test], model.predict(x[test]))
        best_c = float(LOGISTIC_CS[int(np.argmax(scores))])
    return LogisticRegression(C=best_c, class_weight="balanced", max_iter=5000).fit(x, y)


def _score_folds(
    kind: str,
    features: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    random_state: int,
) -> tuple[np.ndarray, bool]:
    """Per-fold scores and whether every fit converged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import balanced_accuracy_score, r2_score

    scores = []
    converged = True
    for train, test in folds:
        x_train, x_test = _prepare(features[train], features[test])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if kind == "regression":
                model = _fit_ridge(x_train, y[train])
                scores.append(r2_score(y[test], model.predict(x_test)))
            else:
                model = _fit_logistic(x_train, y[train], random_state)
                scores.append(balanced_accuracy_score(y[test], model.predict(x_test)))
        # A fit that stopped early is still a valid (if less tuned) probe;
        # say so in the note instead of failing or hiding it.
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for item in caught:
            if not issubclass(item.category, ConvergenceWarning):
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return np.asarray(scores, dtype=np.float64), converged


def probe(
    latents: np.ndarray,
    table: Table | Mapping[str, Any],
    columns: Sequence[str],
    *,
    kinds: Mapping[str, str] | None = None,
    cv: int = 5,
    random_state: int = 0,
    baselines: Mapping[str, np.ndarray] | None = None,
    max_classes: int = 10,
) -> Table:
    """Cross-validated linear probes from latents (and baseline features) to properties.

    Parameters
    ----------
    latents : array
        ``(n, d)`` latent vectors, row ``i`` describing the galaxy of row
        ``i`` of ``table``.
    table : astropy.table.Table or mapping
        The properties, one row per galaxy (`match_catalog` aligns a
        catalogue to a dataset).
    columns : sequence of str
        The properties to probe.
    kinds : mapping, optional
        ``{column: 'regression' | 'classification'}`` where the dtype rule
        of `column_kind` is not what you want (integer class codes, text
        with many classes).
    cv : int
        Outer folds (shuffled; stratified for classes). Each class needs at
        least ``cv`` galaxies: rarer classes are dropped, and counted.
    random_state : int
        Seed of the folds.
    baselines : mapping, optional
        Other feature sets ``{name: (n, k) array}`` probed on the same folds,
        e.g. ``{"pca": ..., "features": ...}`` from `survey_features`. Their
        missing values (NaN) are filled with the training fold's median.
    max_classes : int
        See `column_kind`.

    Returns
    -------
    astropy.table.Table
        One row per property: ``property``, ``kind``, ``n_used`` (galaxies
        probed), ``n_dropped`` (missing values, and members of classes with
        fewer than ``cv`` galaxies), ``n_classes`` (0 for regression),
        ``metric`` (``r2`` or ``balanced_accuracy``), ``chance`` (the score
        of a probe that learned nothing), then for each feature set
        (``latent`` first, then the baselines in order) its mean score over
        the folds and ``<name>_std``, their standard deviation; ``best`` (the
        feature set with the highest mean) and ``note`` (what was dropped,
        why a score is missing). A property that cannot be probed (fewer
        than ``2 * cv`` usable galaxies, one class, a constant value) gets
        NaN scores and a note rather than stopping the others. ``meta``
        holds ``cv``, ``random_state`` and the feature sets' dimensions.

    Raises
    ------
    ProbeColumnError
        For a column absent from ``table``, or that cannot be probed as
        asked (see `column_kind`).
    ProbeError
        For feature sets whose rows do not match the table's, non-finite
        latents, or ``cv < 2``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from ifsrepr.probes import probe
    >>> rng = np.random.default_rng(0)
    >>> latents = rng.normal(size=(200, 8))
    >>> truth = Table({"mass": latents[:, 0] + 0.1 * rng.normal(size=200),
    ...                "type": np.where(latents[:, 1] > 0, "disc", "elliptical")})
    >>> result = probe(latents, truth, ["mass", "type"])
    >>> result["metric"].tolist(), bool(result["latent"][0] > 0.9)
    (['r2', 'balanced_accuracy'], True)
    """
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ProbeError(f"cv must be an integer of at least 2, got {cv!r}")
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise ProbeColumnError("no columns to probe")
    table = table if isinstance(table, Table) else Table(dict(table))
    kinds = dict(kinds or {})
    absent = [c for c in list(columns) + list(kinds) if c not in table.colnames]
    if absent:
        raise ProbeColumnError(
            f"column(s) {', '.join(map(repr, dict.fromkeys(absent)))} not in the table; it has: "
            f"{', '.join(table.colnames[:40])}{' ...' if len(table.colnames) > 40 else ''}"
        )
    n = len(table)
    sets = _feature_sets(latents, baselines, n)
    # Decide every kind before fitting anything, so a bad column fails fast.
    resolved = {
        c: column_kind(table[c], kinds.get(c), max_classes=max_classes, name=c) for c in columns
    }
    rows = []
    for name in columns:
        rows.append(_probe_column(name, table[name], resolved[name], sets, cv, random_state))
    return _results_table(rows, sets, cv, random_state)


def _probe_column(
    name: str,
    column: Any,
    kind: str,
    sets: dict[str, np.ndarray],
    cv: int,
    random_state: int,
) -> dict[str, Any]:
    from sklearn.model_selection import KFold, StratifiedKFold

    y, usable = _target(column, kind)
    notes = []
    n_missing = int((~usable).sum())
    if n_missing:
        notes.append(f"{n_missing} missing")
    n_classes = 0
    if kind == "classification":
        classes, counts = np.unique(y[usable], return_counts=True)
        rare = classes[counts < cv]
        if len(rare):
            dropped = usable & np.isin(y, rare)
            usable &= ~dropped
            listed = ", ".join(
                f"{str(c)!r} ({k})" for c, k in zip(classes, counts, strict=True) if c in rare
            )
            notes.append(f"classes with fewer than cv={cv} galaxies dropped: {listed}")
        n_classes = len(np.unique(y[usable]))
    rows = np.flatnonzero(usable)
    out: dict[str, Any] = {
        "property": name,
        "kind": kind,
        "n_used": len(rows),
        "n_dropped": len(y) - len(rows),
        "n_classes": n_classes,
        "metric": "r2" if kind == "regression" else "balanced_accuracy",
        "chance": 0.0 if kind == "regression" else (1.0 / n_classes if n_classes else np.nan),
    }
    reason = None
    if len(rows) < 2 * cv:
        reason = f"only {len(rows)} usable galaxies; at least 2 * cv = {2 * cv} are needed"
    elif kind == "classification" and n_classes < 2:
        reason = "fewer than two classes left"
    elif kind == "regression" and np.ptp(y[rows]) == 0:
        reason = "the value is the same for every galaxy"
    if reason is not None:
        notes.append(f"not probed: {reason}")
        for key in sets:
            out[key], out[f"{key}_std"] = np.nan, np.nan
        out["note"] = "; ".join(notes)
        return out
    target = y[rows]
    splitter = (
        KFold(cv, shuffle=True, random_state=random_state)
        if kind == "regression"
        else StratifiedKFold(cv, shuffle=True, random_state=random_state)
    )
    folds = list(splitter.split(np.zeros(len(rows)), target))
    for key, features in sets.items():
        scores, converged = _score_folds(kind, features[rows], target, folds, random_state)
        out[key], out[f"{key}_std"] = float(scores.mean()), float(scores.std())
        if not converged:
            notes.append(f"{key}: the logistic regression did not converge in some folds")
    out["note"] = "; ".join(notes)
    return out


def _results_table(
    rows: list[dict[str, Any]], sets: dict[str, np.ndarray], cv: int, random_state: int
) -> Table:
    names = ["property", "kind", "n_used", "n_dropped", "n_classes", "metric", "chance"]
    for key in sets:
        names += [key, f"{key}_std"]
    table = Table(rows=[[row[k] for k in names] for row in rows], names=names)
    scores = np.array([[row[k] for k in sets] for row in rows], dtype=np.float64)
    keys = np.asarray(list(sets), dtype=str)
    best = np.where(
        np.isfinite(scores).any(axis=1),
        keys[np.nanargmax(np.where(np.isfinite(scores), scores, -np.inf), axis=1)],
        "",
    )
    table["best"] = best
    table["note"] = np.asarray([row["note"] for row in rows], dtype=str)
    for key in ["chance", *[k for s in sets for k in (s, f"{s}_std")]]:
        table[key].format = ".3f"
    table.meta.update(
        {
            "cv": int(cv),
            "random_state": int(random_state),
            "feature_sets": {key: int(value.shape[1]) for key, value in sets.items()},
        }
    )
    return table


def plot_probes(results: Table, *, ax: Any = None, colors: Sequence[str] | None = None) -> Any:
    """A grouped bar chart of `probe` results: one group per property, one bar per feature set.

    Error bars are the spread across folds; a black tick marks the chance
    level (R² = 0, balanced accuracy = 1 / n_classes).

    Parameters
    ----------
    results : astropy.table.Table
        The output of `probe` (or of ``ifsrepr probe -o``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (a new figure otherwise).
    colors : sequence of str, optional
        One colour per feature set.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib.pyplot as plt
    >>> from astropy.table import Table
    >>> from ifsrepr.probes import plot_probes, probe
    >>> rng = np.random.default_rng(0)
    >>> latents = rng.normal(size=(100, 4))
    >>> truth = Table({"mass": latents[:, 0] + 0.1 * rng.normal(size=100)})
    >>> ax = plot_probes(probe(latents, truth, ["mass"]))
    >>> [label.get_text() for label in ax.get_yticklabels()]
    ['mass (R²)']
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    sets = list(results.meta.get("feature_sets", {})) or [
        name[: -len("_std")] for name in results.colnames if name.endswith("_std")
    ]
    if ax is None:
        height = 0.9 + 0.28 * len(results) * max(len(sets), 1)
        _, ax = plt.subplots(figsize=(7.0, min(max(height, 3.0), 14.0)), layout="constrained")
    colors = list(colors or plt.rcParams["axes.prop_cycle"].by_key()["color"])
    step = 0.8 / max(len(sets), 1)
    positions = np.arange(len(results))[::-1].astype(float)
    for j, key in enumerate(sets):
        values = np.asarray(results[key], dtype=np.float64)
        spread = np.asarray(results[f"{key}_std"], dtype=np.float64)
        ax.barh(
            positions + 0.4 - (j + 0.5) * step,
            np.nan_to_num(values),
            height=step,
            xerr=np.nan_to_num(spread),
            color=colors[j % len(colors)],
            label=key,
            error_kw={"elinewidth": 0.8, "capsize": 1.5},
        )
    chance = np.asarray(results["chance"], dtype=np.float64)
    ax.scatter(chance, positions, marker="|", s=300, color="black", label="chance", zorder=3)
    metric = {"r2": "R²", "balanced_accuracy": "bal. acc."}
    ax.set_yticks(
        positions,
        [
            f"{p} ({metric.get(str(m), m)})"
            for p, m in zip(results["property"], results["metric"], strict=True)
        ],
    )
    ax.axvline(0.0, color="0.5", lw=0.8)
    low = np.nanmin([np.nanmin(np.asarray(results[k], dtype=float)) for k in sets] + [0.0])
    ax.set_xlim(max(low - 0.05, -0.5), 1.0)
    ax.set_xlabel("cross-validated score (R² or balanced accuracy; 1 = perfect)")
    ax.legend(loc="lower right", fontsize="small")
    return ax
