"""A static HTML page for a person to review anomaly candidates (``ifsrepr report``).

`write_report` writes ``index.html``: one self-contained file (figures
embedded as base64 PNG, the styles and the script inline, nothing fetched
from anywhere) that opens from disk in any browser, with no server:

* the top-k candidates, each with its figure, its scores and a sentence
  saying which line and region drive its rank;
* buttons to mark each candidate ``interesting``, ``artefact`` or
  ``normal``; the marks are kept in the browser's ``localStorage`` (per
  report, so reopening the page shows them again) and "Export labels (CSV)"
  downloads them as ``plateifu,label`` rows (the plate-IFU column holds the
  ``uid``, which differs from the plate-IFU only for repeated plate-IFUs);
* a table of every scored galaxy (up to ``max_table_rows``), sorted by
  clicking a column header;
* the latent-space map when latents are at hand;
* the galaxies that could not be scored, with the reason.

The page's script also sets ``window.ifsreprReport`` (``label(uid, label)``,
``exportCSV()``) for automated checks.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from .._atomic import atomic_path
from ..exceptions import IFSReprError

__all__ = ["LABELS", "ReportWarning", "write_report"]

#: The labels a reviewer can give a candidate.
LABELS = ("interesting", "artefact", "normal")

#: Columns of the galaxy table, when present.
TABLE_COLUMNS = (
    "rank", "plateifu", "uid", "score", "recon_error", "line_excess", "peak_error",
    "knn_distance", "lof", "iforest", "top_line", "region", "redshift",
)  # fmt: skip


class ReportWarning(UserWarning):
    """The report shows less than asked (fewer candidates exist than requested)."""


def _scores_table(scores: Table | str | os.PathLike) -> Table:
    if isinstance(scores, Table):
        return scores
    path = Path(scores)
    if not path.is_file():
        raise IFSReprError(f"{path}: no such scores table")
    try:
        return Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds for a non-ECSV file
        raise IFSReprError(f"{path}: not an ECSV scores table ({exc})") from None


def _split(scores: Table) -> tuple[Table, Table]:
    for column in ("plateifu", "score"):
        if column not in scores.colnames:
            raise IFSReprError(f"the scores table has no {column!r} column")
    status = (
        np.asarray(scores["status"], dtype=str)
        if "status" in scores.colnames
        else np.full(len(scores), "scored")
    )
    scored = scores[status == "scored"]
    if "rank" in scored.colnames:
        scored = scored[np.argsort(np.asarray(scored["rank"], dtype=float), kind="stable")]
    else:
        values = np.nan_to_num(np.asarray(scored["score"], dtype=float), nan=-1.0)
        order = np.argsort(-values, kind="stable")
        scored = scored[order]
        scored["rank"] = np.arange(1, len(scored) + 1)
    if "uid" not in scored.colnames:
        from ..scoring.encoding import unique_ids

        scored["uid"] = unique_ids(np.asarray(scored["plateifu"], dtype=str))
    return scored, scores[status != "scored"]


def _number(value: Any) -> str:
    if np.ma.is_masked(value):
        return ""
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def _explanation(row: Any) -> str:
    parts = []
    line = str(row["top_line"]) if "top_line" in row.colnames else ""
    if line:
        listed = str(row["top_lines"]) if "top_lines" in row.colnames else line
        parts.append(
            f"The line furthest above its usual reconstruction error is {line} "
            f"(error relative to the reference median: {listed})."
        )
    if "region" in row.colnames and str(row["region"]) not in ("", "unknown"):
        where = str(row["region"])
        offset = ""
        if "peak_dx" in row.colnames and np.isfinite(row["peak_dx"]):
            offset = (
                f", {float(row['peak_dx']):+.1f}, {float(row['peak_dy']):+.1f} pixels from the "
                "centre"
            )
            if "peak_radius_reff" in row.colnames and np.isfinite(row["peak_radius_reff"]):
                offset += f" ({float(row['peak_radius_reff']):.2f} Re)"
        parts.append(f"The error map peaks in the {where}{offset}.")
    percentiles = [
        (name[4:], float(row[name]))
        for name in row.colnames
        if name.startswith("pct_") and np.isfinite(row[name])
    ]
    if percentiles:
        strongest = sorted(percentiles, key=lambda item: -item[1])[:3]
        parts.append(
            "Most unusual on: "
            + ", ".join(f"{name} ({100 * value:.0f}th percentile)" for name, value in strongest)
            + "."
        )
    return " ".join(parts)


def _figures(
    candidates: Table,
    *,
    encoding: Any,
    dataset: Any,
    encoder: Any,
    n_scored: int,
) -> dict[str, str]:
    """Base64 PNG figure of each candidate by uid (as far as the inputs allow)."""
    from .figures import error_figure, figure_to_base64, galaxy_figure, model_maps

    out: dict[str, str] = {}
    uids = [str(u) for u in candidates["uid"]]
    if dataset is not None and encoder is not None:
        rows = _dataset_rows(candidates, dataset)
        maps = model_maps(encoder, dataset, rows)
        names = list(encoder.preprocessor_.line_names)
        for uid, row, (x, w, x_hat) in zip(uids, candidates, maps, strict=True):
            figure = galaxy_figure(x, w, x_hat, names, row=row, n_scored=n_scored)
            out[uid] = figure_to_base64(figure)
        return out
    if encoding is not None:
        position = {str(u): i for i, u in enumerate(encoding.uid)}
        for uid, row in zip(uids, candidates, strict=True):
            if uid not in position:
                continue
            i = position[uid]
            maps = None if encoding.spaxel_errors is None else encoding.spaxel_errors[i]
            figure = error_figure(
                maps, encoding.line_errors[i], encoding.line_names, row=row, n_scored=n_scored
            )
            out[uid] = figure_to_base64(figure)
    return out


def _dataset_rows(candidates: Table, dataset: Any) -> list[int]:
    """Rows of the candidates in the dataset, checked against its plate-IFUs."""
    from ..dataset import load_metadata

    path = getattr(dataset, "path", dataset)
    plateifu = np.asarray(load_metadata(path)["plateifu"], dtype=str)
    rows = []
    for row in candidates:
        index = int(row["row"]) if "row" in row.colnames else -1
        if not (0 <= index < len(plateifu)) or plateifu[index] != str(row["plateifu"]):
            matches = np.flatnonzero(plateifu == str(row["plateifu"]))
            if len(matches) == 0:
                raise IFSReprError(
                    f"{row['plateifu']} is not in the dataset {path}; was it scored from another?"
                )
            index = int(matches[0])
        rows.append(index)
    return rows


def _latent_map(
    scored: Table, encoding: Any, candidates: Table, color_by: str | None, max_points: int
) -> str | None:
    from .figures import figure_to_base64, latent_map

    if encoding is None or len(encoding) < 2:
        return None
    position = {str(u): i for i, u in enumerate(encoding.uid)}
    uids = [str(u) for u in scored["uid"] if str(u) in position]
    if len(uids) < 2:
        return None
    # Keep the candidates, and a random sample of the rest beyond max_points
    # (t-SNE time grows fast with n).
    top = [str(u) for u in candidates["uid"] if str(u) in position]
    rest = [u for u in uids if u not in set(top)]
    if len(top) + len(rest) > max_points:
        rng = np.random.default_rng(0)
        keep = max(0, max_points - len(top))
        rest = [rest[i] for i in np.sort(rng.choice(len(rest), keep, replace=False))]
    chosen = top + rest
    rows = np.asarray([position[u] for u in chosen])
    colour_name = color_by or "score"
    if colour_name not in scored.colnames:
        raise IFSReprError(
            f"cannot colour the latent map by {colour_name!r}: the scores table has no such "
            f"column (columns: {', '.join(scored.colnames[:12])}...)"
        )
    lookup = {str(u): v for u, v in zip(scored["uid"], scored[colour_name], strict=True)}
    values = np.asarray([lookup[u] for u in chosen])
    figure = latent_map(
        encoding.latents[rows],
        values,
        label=colour_name,
        highlight=np.arange(len(top)),
        names=top,
    )
    return figure_to_base64(figure)


def write_report(
    scores: Table | str | os.PathLike,
    output: str | os.PathLike,
    *,
    top: int = 20,
    encoding: Any = None,
    dataset: str | os.PathLike | Any = None,
    encoder: Any = None,
    color_by: str | None = None,
    title: str | None = None,
    max_table_rows: int = 2000,
    max_map_points: int = 3000,
) -> Path:
    """Write the review page for a scores table.

    Parameters
    ----------
    scores : Table or path
        Output of `~ifsrepr.scoring.AnomalyScorer.score` or ``ifsrepr score``.
    output : path-like
        Directory to write ``index.html`` into (created if needed).
    top : int
        Number of candidates shown with figures and label buttons; asking
        for more than were scored shows all of them, with a `ReportWarning`
        and a note on the page.
    encoding : Encoding or path, optional
        The encoding scored: adds the latent-space map and, without a
        dataset, spaxel error maps.
    dataset : path-like or SurveyDataset, optional
        The survey dataset scored; with ``encoder``, each candidate's figure
        shows its maps, reconstruction and residuals.
    encoder : IFSEncoder, optional
        The model that made the scores.
    color_by : str, optional
        Scores column colouring the latent map (default ``score``).
    title : str, optional
        Page title.
    max_table_rows : int
        Most galaxies in the sortable table (the highest ranked).
    max_map_points : int
        Most galaxies on the latent map (the candidates and a random sample).

    Returns
    -------
    pathlib.Path
        The ``index.html`` written.

    Warns
    -----
    ReportWarning
        When ``top`` exceeds the number of galaxies scored.

    Examples
    --------
    The scores of nine galaxies of an encoding made up for the example (in
    practice, `~ifsrepr.scoring.encode_dataset` output), one of them
    reconstructed badly in Halpha:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from ifsrepr.report import write_report
    >>> from ifsrepr.scoring import AnomalyScorer, Encoding
    >>> rng = np.random.default_rng(1)
    >>> line_errors = rng.normal(1.0, 0.1, (9, 4))
    >>> line_errors[4, 2] = 9.0
    >>> encoding = Encoding(
    ...     plateifu=[f"9000-{1901 + i}" for i in range(9)], latents=rng.normal(size=(9, 4)),
    ...     error=line_errors.mean(axis=1), line_errors=line_errors, n_good=np.full(9, 256),
    ...     line_names=["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"],
    ...     model_name="demo", model_sha256="0" * 64, peak_error=2 * line_errors.max(axis=1))
    >>> scores = AnomalyScorer(n_neighbors=3, n_estimators=20).fit(encoding).score()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     page = write_report(scores, Path(tmp) / "report", top=2, encoding=encoding)
    ...     html = page.read_text()
    >>> page.name, "9000-1905" in html
    ('index.html', True)
    """
    if top < 1:
        raise IFSReprError(f"top must be at least 1, got {top}")
    table = _scores_table(scores)
    scored, not_scored = _split(table)
    if isinstance(encoding, (str, os.PathLike)):
        from ..scoring import Encoding

        encoding = Encoding.load(encoding)
    if encoding is not None and table.meta.get("model_sha256"):
        encoding.check_model(
            str(table.meta.get("model_name", "")), str(table.meta["model_sha256"]),
            what="the model of the scores",
        )  # fmt: skip
    if encoder is not None and table.meta.get("model_sha256"):
        from ..scoring.encoding import ModelMismatchError, describe_model, model_identity

        name, sha256 = model_identity(encoder)
        if sha256 != table.meta["model_sha256"]:
            theirs = describe_model(
                str(table.meta.get("model_name", "")), table.meta["model_sha256"]
            )
            raise ModelMismatchError(
                f"the scores were computed with {theirs}, not with {describe_model(name, sha256)}"
            )
    notes = []
    if top > len(scored):
        message = (
            f"asked for the top {top} candidates but only {len(scored)} galaxies were scored; "
            f"showing all {len(scored)}"
        )
        warnings.warn(message, ReportWarning, stacklevel=2)
        notes.append(message)
    candidates = scored[: min(top, len(scored))]
    figures = _figures(
        candidates, encoding=encoding, dataset=dataset, encoder=encoder, n_scored=len(scored)
    )
    latent_png = _latent_map(scored, encoding, candidates, color_by, max_map_points)
    if len(scored) > max_table_rows:
        notes.append(
            f"the table lists the {max_table_rows} highest-ranked of {len(scored)} galaxies"
        )
    page = _page(
        table=table,
        scored=scored,
        candidates=candidates,
        not_scored=not_scored,
        figures=figures,
        latent_png=latent_png,
        notes=notes,
        title=title or "ifsrepr anomaly candidates",
        max_table_rows=max_table_rows,
    )
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    with atomic_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path


def _report_id(scored: Table) -> str:
    digest = hashlib.sha256()
    for uid, score in zip(scored["uid"], scored["score"], strict=True):
        digest.update(f"{uid}:{float(score):.6g};".encode())
    return digest.hexdigest()[:16]


def _page(
    *,
    table: Table,
    scored: Table,
    candidates: Table,
    not_scored: Table,
    figures: dict[str, str],
    latent_png: str | None,
    notes: list[str],
    title: str,
    max_table_rows: int,
) -> str:
    e = html.escape
    meta = table.meta
    model = str(meta.get("model_name", "unknown model"))
    sha = str(meta.get("model_sha256", ""))[:12]
    summary = (
        f"{len(scored)} galaxies scored"
        + (f", {len(not_scored)} not scored" if len(not_scored) else "")
        + f"; model {e(model)}"
        + (f" (sha256 {e(sha)})" if sha else "")
        + (f"; reference: {e(str(meta['reference']))}" if meta.get("reference") else "")
        + (
            f"; combined score = mean percentile of {e(', '.join(meta['components']))}"
            if meta.get("components")
            else ""
        )  # fmt: skip
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="summary">{summary}. Higher score = more anomalous; rank 1 is the most '
        "anomalous.</p>",
    ]
    for note in notes:
        parts.append(f'<p class="note" role="status">Note: {e(note)}.</p>')
    parts.append(
        '<div class="toolbar"><button id="export-csv" type="button">Export labels (CSV)</button> '
        '<span id="label-count">0 labelled</span></div>'
        '<pre id="csv-output" aria-label="exported CSV" hidden></pre>'
    )
    parts.append(f"<h2>Top {len(candidates)} candidates</h2>")
    for row in candidates:
        uid = str(row["uid"])
        parts.append(f'<section class="candidate" id="c-{e(uid)}" data-uid="{e(uid)}">')
        parts.append(
            f"<h3>#{int(row['rank'])} {e(str(row['plateifu']))}"
            + (f" <small>({e(uid)})</small>" if uid != str(row["plateifu"]) else "")
            + f' <span class="score">score {_number(row["score"])}</span></h3>'
        )
        if uid in figures:
            parts.append(
                f'<img alt="figure of {e(uid)}" src="data:image/png;base64,{figures[uid]}">'
            )
        parts.append(f'<p class="why">{e(_explanation(row))}</p>')
        values = [
            (name, _number(row[name]))
            for name in (
                "recon_error",
                "line_excess",
                "peak_error",
                "knn_distance",
                "lof",
                "iforest",
                "redshift",
                "source",
            )  # fmt: skip
            if name in row.colnames
        ]
        parts.append(
            '<dl class="values">'
            + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in values)
            + "</dl>"
        )
        buttons = "".join(
            f'<button type="button" class="mark" data-uid="{e(uid)}" data-label="{label}">'
            f"{label}</button>"
            for label in LABELS
        )
        parts.append(
            f'<div class="marks">{buttons} <span class="current" data-uid="{e(uid)}"></span></div>'
        )
        parts.append("</section>")
    if latent_png:
        parts.append("<h2>Latent space</h2>")
        parts.append(
            f'<img class="latent" alt="latent-space map" src="data:image/png;base64,{latent_png}">'
        )
    parts.append("<h2>All scored galaxies</h2><p>Click a column header to sort.</p>")
    columns = [c for c in TABLE_COLUMNS if c in scored.colnames]
    parts.append('<table id="galaxies" class="sortable"><thead><tr>')
    parts.extend(f'<th data-col="{i}">{e(c)}</th>' for i, c in enumerate(columns))
    parts.append("<th>label</th></tr></thead><tbody>")
    for row in scored[:max_table_rows]:
        uid = str(row["uid"])
        cells = "".join(f"<td>{e(_number(row[c]))}</td>" for c in columns)
        parts.append(
            f'<tr data-uid="{e(uid)}">{cells}<td class="current" data-uid="{e(uid)}"></td></tr>'
        )
    parts.append("</tbody></table>")
    parts.append(f"<h2>Not scored ({len(not_scored)})</h2>")
    if len(not_scored):
        parts.append(
            '<table id="not-scored"><thead><tr><th>plateifu</th><th>source</th><th>reason</th>'
            "</tr></thead><tbody>"
        )
        for row in not_scored:
            source = str(row["source"]) if "source" in row.colnames else ""
            reason = str(row["reason"]) if "reason" in row.colnames else ""
            parts.append(
                f"<tr><td>{e(str(row['plateifu']))}</td><td>{e(source)}</td>"
                f"<td>{e(reason)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>Every galaxy was scored.</p>")
    data = {
        "reportId": _report_id(scored),
        "labels": list(LABELS),
        "order": [str(u) for u in scored["uid"]],
    }
    payload = json.dumps(data).replace("</", "<\\/")
    parts.append(f'<script id="report-data" type="application/json">{payload}</script>')
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
.summary { color: #444; } .note { background: #fff4d6; padding: 0.4em 0.8em; }
.toolbar { position: sticky; top: 0; background: #fff; padding: 0.4em 0; z-index: 1; }
.candidate { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.candidate img { max-width: 100%; }
.candidate h3 .score { font-weight: normal; color: #666; margin-left: 1em; }
.values { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
.values dt { font-weight: bold; } .values dd { margin: 0; font-family: monospace; }
.mark { margin-right: 0.3em; padding: 0.3em 0.8em; cursor: pointer; }
.mark.selected[data-label=interesting] { background: #2a9d8f; color: #fff; }
.mark.selected[data-label=artefact] { background: #e76f51; color: #fff; }
.mark.selected[data-label=normal] { background: #888; color: #fff; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { cursor: pointer; background: #f2f2f2; } th.sorted-asc::after { content: " \\25B2"; }
th.sorted-desc::after { content: " \\25BC"; }
img.latent { max-width: 650px; }
#csv-output { background: #f6f6f6; padding: 0.5em; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var key = "ifsrepr-labels:" + data.reportId;
  var labels = {};
  try { labels = JSON.parse(window.localStorage.getItem(key) || "{}"); } catch (e) { labels = {}; }

  function save() {
    // Private browsing may refuse storage: the marks then last as long as the page.
    try { window.localStorage.setItem(key, JSON.stringify(labels)); } catch (e) { }
  }
  function show() {
    document.querySelectorAll(".mark").forEach(function (b) {
      b.classList.toggle("selected", labels[b.dataset.uid] === b.dataset.label);
    });
    document.querySelectorAll(".current").forEach(function (s) {
      s.textContent = labels[s.dataset.uid] || "";
    });
    document.getElementById("label-count").textContent =
      Object.keys(labels).length + " labelled";
  }
  function label(uid, value) {
    if (value === null || labels[uid] === value) { delete labels[uid]; }
    else if (data.labels.indexOf(value) >= 0) { labels[uid] = value; }
    else { throw new Error("unknown label " + value); }
    save(); show();
  }
  function csvField(text) {
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function exportCSV() {
    var rows = ["plateifu,label"];
    data.order.forEach(function (uid) {
      if (labels[uid]) { rows.push(csvField(uid) + "," + labels[uid]); }
    });
    return rows.join("\n") + "\n";
  }
  document.querySelectorAll(".mark").forEach(function (b) {
    b.addEventListener("click", function () { label(b.dataset.uid, b.dataset.label); });
  });
  document.getElementById("export-csv").addEventListener("click", function () {
    var csv = exportCSV();
    var out = document.getElementById("csv-output");
    out.textContent = csv;
    out.hidden = false;
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csv], {type: "text/csv"}));
    link.download = "ifsrepr-labels.csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
  });

  // Sortable table: numbers numerically, text alphabetically; blanks last.
  var table = document.getElementById("galaxies");
  table.querySelectorAll("th[data-col]").forEach(function (th) {
    th.addEventListener("click", function () {
      var col = Number(th.dataset.col);
      var ascending = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) {
        h.classList.remove("sorted-asc", "sorted-desc");
      });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y), r;
        r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  window.ifsreprReport = {label: label, exportCSV: exportCSV, labels: function () {
    return Object.assign({}, labels); }};
  show();
})();
"""
