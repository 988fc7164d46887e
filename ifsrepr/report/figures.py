"""Figures for reviewing anomaly candidates: one galaxy at a time, and the latent space.

Figures are made with `matplotlib.figure.Figure` directly (the Agg canvas),
never through ``pyplot``, so they work without a display, in threads, and
leave no global state behind.

`galaxy_figure`
    A galaxy's line maps, the model's reconstruction and the residual in
    units of the noise, for the lines that matter (those whose error most
    exceeds the reference, or the worst reconstructed), plus its spaxel
    error map with the peak marked and its per-line errors; score and rank
    in the title.
`error_figure`
    What can be shown from an `~ifsrepr.scoring.Encoding` alone (no model or
    data at hand): the spaxel error map and the per-line errors.
`latent_map`
    A 2-D map of the latent space (UMAP when ``umap-learn`` is installed,
    t-SNE otherwise, PCA for a handful of galaxies) coloured by a column:
    an anomaly class, the redshift, the score.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "embed_latents",
    "error_figure",
    "figure_to_base64",
    "galaxy_figure",
    "latent_map",
    "model_maps",
]


def figure_to_base64(figure: Figure, *, dpi: int = 80) -> str:
    """The figure as a base64-encoded PNG (for a ``data:image/png;base64,`` URL)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _row_value(row: Mapping[str, Any] | Any, key: str, default: Any = None) -> Any:
    try:
        value = row[key]
    except (KeyError, TypeError, IndexError, ValueError):
        return default
    if np.ma.is_masked(value):
        return default
    return value


def _title(row: Any, n_scored: int | None) -> str:
    if row is None:
        return ""
    name = _row_value(row, "uid") or _row_value(row, "plateifu", "")
    parts = [str(name)]
    rank = _row_value(row, "rank")
    if rank is not None:
        parts.append(f"rank {int(rank)}" + (f" of {n_scored}" if n_scored else ""))
    score = _row_value(row, "score")
    if score is not None and np.isfinite(score):
        parts.append(f"score {float(score):.3f}")
    line, region = _row_value(row, "top_line"), _row_value(row, "region")
    if line:
        parts.append(f"top line {line}")
    if region:
        parts.append(f"peak: {region}")
    return ", ".join(parts)


def _choose_lines(
    x: np.ndarray, w: np.ndarray, x_hat: np.ndarray, names: Sequence[str], row: Any, n: int
) -> list[int]:
    chosen: list[int] = []
    # The scorer's own choice first (lines above their reference level)...
    listed = _row_value(row, "top_lines", "") or ""
    for item in str(listed).split(","):
        name = item.strip().split(" ")[0]
        if name in names and names.index(name) not in chosen:
            chosen.append(names.index(name))
    # ...then the worst reconstructed lines of this galaxy.
    good = w > 0
    chi = np.where(good, w * (x_hat - x) ** 2, 0.0).sum(axis=(1, 2)) / np.maximum(
        good.sum(axis=(1, 2)), 1
    )
    for j in np.argsort(-chi, kind="stable"):
        if len(chosen) >= n:
            break
        if int(j) not in chosen and good[j].any():
            chosen.append(int(j))
    return chosen[:n]


def galaxy_figure(
    x: np.ndarray,
    w: np.ndarray,
    x_hat: np.ndarray,
    line_names: Sequence[str],
    *,
    row: Any = None,
    lines: Sequence[str] | None = None,
    n_lines: int = 3,
    n_scored: int | None = None,
    residual_range: float = 5.0,
) -> Figure:
    """A galaxy, its reconstruction and the residuals, for the lines that matter.

    Parameters
    ----------
    x, w, x_hat : array
        ``(n_lines, H, W)`` normalised maps, their weights (0 where masked)
        and the model's reconstruction (`model_maps` gives all three).
    line_names : sequence of str
        The model's lines.
    row : table row or mapping, optional
        The galaxy's row of a scores table: its title (rank, score, top line,
        region) and its ``top_lines`` (shown first).
    lines : sequence of str, optional
        The lines to show (default: ``n_lines`` chosen from ``row`` and the
        worst reconstructed).
    n_lines : int
        How many lines when choosing.
    n_scored : int, optional
        Number of galaxies ranked, for "rank 3 of 120".
    residual_range : float
        The residual colour scale spans +-this many sigma.

    Returns
    -------
    matplotlib.figure.Figure
        One row per line: data, reconstruction, residual ``(x_hat - x) *
        sqrt(w)`` (in sigma); a fourth column shows the spaxel error map
        (peak marked) and the error of every line.

    Examples
    --------
    Four 16x16 line maps whose reconstruction misses a bright knot in the
    second line:

    >>> import numpy as np
    >>> from ifsrepr.report import galaxy_figure
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4, 16, 16))
    >>> w = np.ones_like(x)
    >>> w[:, :2] = 0  # two masked rows
    >>> x_hat = x + rng.normal(0.0, 0.1, x.shape)
    >>> x_hat[1, 6:10, 6:10] += 2.0
    >>> names = ["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"]
    >>> figure = galaxy_figure(x, w, x_hat, names, n_lines=1)
    >>> figure.axes[0].get_ylabel()  # the worst reconstructed line
    'OIII-5008'
    >>> figure = galaxy_figure(x, w, x_hat, names, lines=["Ha-6564", "NII-6585"])
    >>> [ax.get_ylabel() for ax in figure.axes[:6:3]]
    ['Ha-6564', 'NII-6585']
    """
    x, w, x_hat = (np.asarray(a, dtype=np.float64) for a in (x, w, x_hat))
    if x_hat.ndim == 4:
        x_hat = x_hat[:, 0]
    names = list(line_names)
    if lines is None:
        chosen = _choose_lines(x, w, x_hat, names, row, max(1, n_lines))
    else:
        missing = [name for name in lines if name not in names]
        if missing:
            raise ValueError(f"lines {missing} are not among the model's lines")
        chosen = [names.index(name) for name in lines]
    good = w > 0
    rows = max(len(chosen), 2)
    figure = Figure(figsize=(12, 2.6 * rows + 0.6), layout="constrained")
    grid = figure.add_gridspec(rows, 4, width_ratios=(1, 1, 1, 1.15))
    axes = np.array([[figure.add_subplot(grid[i, j]) for j in range(3)] for i in range(rows)])
    map_ax = figure.add_subplot(grid[0, 3])
    # The per-line bars get the rest of the last column: 19 labels need the height.
    bar_ax = figure.add_subplot(grid[1:, 3])
    for ax in [*axes.flat, map_ax]:
        ax.set_xticks([])
        ax.set_yticks([])
    data_cmap = _cmap("magma")
    residual_cmap = _cmap("RdBu_r")
    for i, j in enumerate(chosen):
        shown = np.where(good[j], x[j], np.nan)
        finite = shown[np.isfinite(shown)]
        vmin, vmax = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        if vmax <= vmin:
            vmax = vmin + 1.0
        axes[i, 0].imshow(shown, origin="lower", cmap=data_cmap, vmin=vmin, vmax=vmax)
        image = axes[i, 1].imshow(x_hat[j], origin="lower", cmap=data_cmap, vmin=vmin, vmax=vmax)
        figure.colorbar(image, ax=axes[i, 1], shrink=0.8, label="asinh(f / s)")
        sigma = np.sqrt(np.where(good[j], w[j], 0.0))
        residual = np.where(good[j], (x_hat[j] - x[j]) * sigma, np.nan)
        image = axes[i, 2].imshow(
            residual, origin="lower", cmap=residual_cmap, vmin=-residual_range, vmax=residual_range
        )
        figure.colorbar(image, ax=axes[i, 2], shrink=0.8, label="sigma")
        axes[i, 0].set_ylabel(names[j])
    axes[0, 0].set_title("data")
    axes[0, 1].set_title("reconstruction")
    axes[0, 2].set_title("residual")
    for i in range(len(chosen), rows):
        for ax in axes[i, :3]:
            ax.axis("off")

    chi = np.where(good, w * (x_hat - x) ** 2, 0.0)
    count = good.sum(axis=0)
    spaxel = np.where(count > 0, chi.sum(axis=0) / np.maximum(count, 1), np.nan)
    line_errors = chi.sum(axis=(1, 2)) / np.maximum(good.sum(axis=(1, 2)), 1)
    line_errors = np.where(good.any(axis=(1, 2)), line_errors, np.nan)
    peak = _peak_of(row)
    _error_panels(figure, map_ax, bar_ax, spaxel, line_errors, names, peak, chosen)
    figure.suptitle(_title(row, n_scored), fontsize=11)
    return figure


def _peak_of(row: Any) -> tuple[float, float] | None:
    dx, dy = _row_value(row, "peak_dx"), _row_value(row, "peak_dy")
    if dx is None or dy is None or not (np.isfinite(dx) and np.isfinite(dy)):
        return None
    return float(dx), float(dy)


def _error_panels(
    figure: Figure,
    map_ax: Any,
    bar_ax: Any,
    spaxel: np.ndarray,
    line_errors: np.ndarray,
    names: Sequence[str],
    peak: tuple[float, float] | None,
    highlight: Sequence[int] = (),
) -> None:
    from matplotlib.colors import LogNorm

    spaxel = np.asarray(spaxel, dtype=np.float64)
    positive = spaxel[np.isfinite(spaxel) & (spaxel > 0)]
    norm = None
    if positive.size and positive.max() > positive.min():
        norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-4), vmax=positive.max())
    image = map_ax.imshow(
        np.where(spaxel > 0, spaxel, np.nan), origin="lower", cmap=_cmap("viridis"), norm=norm
    )
    figure.colorbar(image, ax=map_ax, shrink=0.8, label="chi^2 / pixel")
    map_ax.set_title("spaxel error")
    if peak is not None:
        centre = (spaxel.shape[-1] - 1) / 2.0
        map_ax.plot(centre + peak[0], centre + peak[1], marker="+", color="red", markersize=14)
    bar_ax.axis("on")
    values = np.where(np.isfinite(line_errors) & (line_errors > 0), line_errors, np.nan)
    colours = ["tab:red" if j in highlight else "tab:grey" for j in range(len(names))]
    bar_ax.barh(np.arange(len(names)), np.nan_to_num(values, nan=0.0), color=colours)
    if np.nanmax(np.nan_to_num(values, nan=0.0)) > 0:
        bar_ax.set_xscale("log")
    bar_ax.set_yticks(np.arange(len(names)))
    bar_ax.set_yticklabels(names, fontsize=7)
    bar_ax.invert_yaxis()
    bar_ax.set_title("error per line", fontsize=9)
    bar_ax.tick_params(axis="x", labelsize=7)


def error_figure(
    spaxel_errors: np.ndarray | None,
    line_errors: np.ndarray,
    line_names: Sequence[str],
    *,
    row: Any = None,
    n_scored: int | None = None,
) -> Figure:
    """A galaxy's spaxel error map and per-line errors, from an encoding alone.

    Parameters
    ----------
    spaxel_errors : array or None
        ``(H, W)`` (`Encoding.spaxel_errors` of the galaxy); None shows only
        the per-line errors.
    line_errors : array
        ``(n_lines,)``.
    line_names : sequence of str
        The lines.
    row : table row, optional
        The galaxy's scores row (title, peak, highlighted top lines).
    n_scored : int, optional
        Number of galaxies ranked.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.report import error_figure
    >>> spaxel_errors = np.ones((16, 16))
    >>> spaxel_errors[7:9, 7:9] = 8.0  # a nuclear problem
    >>> figure = error_figure(spaxel_errors, [1.1, 0.9, 4.2, 1.0],
    ...                       ["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"])
    >>> [ax.get_title() for ax in figure.axes[:2]]
    ['spaxel error', 'error per line']

    Without the spaxel map (an encoding saved without it) only the bars remain:

    >>> figure = error_figure(None, [1.1, 0.9, 4.2, 1.0],
    ...                       ["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"])
    >>> figure.axes[0].texts[0].get_text()
    'no spaxel map stored'
    """
    names = list(line_names)
    figure = Figure(figsize=(8, 3.8), layout="constrained")
    map_ax, bar_ax = figure.subplots(1, 2)
    map_ax.set_xticks([])
    map_ax.set_yticks([])
    listed = str(_row_value(row, "top_lines", "") or "")
    highlight = [names.index(n.strip().split(" ")[0]) for n in listed.split(",")
                 if n.strip().split(" ")[0] in names]  # fmt: skip
    if spaxel_errors is None:
        map_ax.axis("off")
        map_ax.text(0.5, 0.5, "no spaxel map stored", ha="center", va="center")
        _bar_only(bar_ax, np.asarray(line_errors, dtype=np.float64), names, highlight)
    else:
        _error_panels(
            figure,
            map_ax,
            bar_ax,
            np.asarray(spaxel_errors, dtype=np.float64),
            np.asarray(line_errors, dtype=np.float64),
            names,
            _peak_of(row),
            highlight,
        )
    figure.suptitle(_title(row, n_scored), fontsize=10)
    return figure


def _bar_only(ax: Any, values: np.ndarray, names: list[str], highlight: list[int]) -> None:
    colours = ["tab:red" if j in highlight else "tab:grey" for j in range(len(names))]
    ax.barh(np.arange(len(names)), np.nan_to_num(values, nan=0.0), color=colours)
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.invert_yaxis()
    ax.set_title("error per line", fontsize=9)


def _cmap(name: str):
    import matplotlib

    # Masked pixels light grey, distinct from any data colour.
    return matplotlib.colormaps[name].with_extremes(bad="0.85")


def model_maps(encoder: Any, dataset: Any, rows: Sequence[int]) -> list[tuple[np.ndarray, ...]]:
    """``(x, w, x_hat)`` of some galaxies of a survey dataset, for `galaxy_figure`.

    Parameters
    ----------
    encoder : IFSEncoder
        The fitted model.
    dataset : path-like or SurveyDataset
        The survey dataset; its galaxies are normalised with the encoder's
        preprocessing.
    rows : sequence of int
        Rows of the dataset (the ``row`` column of a scores table).

    Returns
    -------
    list of (x, w, x_hat)
        Arrays ``(n_lines, size, size)``, one tuple per row.

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid, a small PCA encoder
    fitted on it, and the figure of one galaxy:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> from ifsrepr.report import galaxy_figure, model_maps
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, _ = small_survey(tmp.name)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> maps = model_maps(encoder, dataset, [0, 2])
    >>> len(maps), [a.shape for a in maps[0]]
    (2, [(19, 16, 16), (19, 16, 16), (19, 16, 16)])
    >>> figure = galaxy_figure(*maps[0], encoder.preprocessor_.line_names)
    >>> tmp.cleanup()
    """
    import torch

    from ..dataset import SurveyDataset

    path = dataset.path if isinstance(dataset, SurveyDataset) else dataset
    data = SurveyDataset(path, preprocessor=encoder.preprocessor_)
    network = encoder.network_
    network.eval()
    out = []
    with torch.no_grad():
        for row in rows:
            x, w, _ = data[int(row)]
            x_hat = network(x[None], w[None])[0][0]
            if x_hat.dim() == 4:
                x_hat = x_hat[:, 0]
            out.append((x.numpy(), w.numpy(), x_hat.float().cpu().numpy()))
    return out


def embed_latents(
    latents: np.ndarray, *, method: str = "auto", random_state: int = 0
) -> tuple[np.ndarray, str]:
    """2-D coordinates of latent vectors.

    Parameters
    ----------
    latents : array
        ``(n, d)``.
    method : {'auto', 'umap', 'tsne', 'pca'}
        ``auto``: UMAP if ``umap-learn`` is importable, else t-SNE; PCA for
        fewer than 10 galaxies (neither is meaningful there).
    random_state : int
        Seed.

    Returns
    -------
    coords : numpy.ndarray
        ``(n, 2)``.
    method : str
        The method used.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.report import embed_latents
    >>> latents = np.random.default_rng(0).normal(size=(50, 16))
    >>> coords, method = embed_latents(latents, method="pca")
    >>> coords.shape, method
    ((50, 2), 'pca')
    >>> embed_latents(latents[:5])[1]  # too few galaxies for UMAP or t-SNE
    'pca'
    """
    data = np.asarray(latents, dtype=np.float64)
    n = len(data)
    if method not in ("auto", "umap", "tsne", "pca"):
        raise ValueError(f"method must be auto, umap, tsne or pca; got {method!r}")
    if method == "auto":
        if n < 10:
            method = "pca"
        else:
            try:
                import umap  # noqa: F401

                method = "umap"
            except ImportError:
                method = "tsne"
    if method == "pca" or n < 4:
        centred = data - data.mean(axis=0)
        if n < 2:
            return np.zeros((n, 2)), "pca"
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        coords = centred @ vt[:2].T
        if coords.shape[1] < 2:
            coords = np.column_stack([coords, np.zeros(n)])
        return coords, "pca"
    if method == "umap":
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba and umap chatter on first use
            reducer = umap.UMAP(n_neighbors=min(15, n - 1), random_state=random_state)
            return reducer.fit_transform(data), "umap"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
    return tsne.fit_transform(data), "t-SNE"


def latent_map(
    latents: np.ndarray,
    color: Sequence[Any] | np.ndarray | None = None,
    *,
    label: str = "",
    method: str = "auto",
    highlight: Sequence[int] | np.ndarray | None = None,
    names: Sequence[str] | None = None,
    random_state: int = 0,
    coords: np.ndarray | None = None,
) -> Figure:
    """A 2-D map of the latent space coloured by a column.

    Parameters
    ----------
    latents : array
        ``(n, d)`` latent vectors.
    color : sequence, optional
        A value per galaxy: strings (an anomaly class) get a legend, numbers
        (redshift, score) a colour bar; NaN is drawn grey.
    label : str
        What ``color`` is (legend title or colour-bar label).
    method : str
        See `embed_latents`.
    highlight : sequence of int, optional
        Rows to circle and label (the top candidates).
    names : sequence of str, optional
        Labels of the highlighted rows.
    random_state : int
        Seed of the embedding.
    coords : array, optional
        ``(n, 2)`` coordinates already computed (skips the embedding).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    Fifty galaxies coloured by class, with one candidate circled:

    >>> import numpy as np
    >>> from ifsrepr.report import latent_map
    >>> rng = np.random.default_rng(0)
    >>> latents = rng.normal(size=(50, 16))
    >>> classes = rng.choice(["star_forming", "retired", "seyfert"], size=50)
    >>> figure = latent_map(latents, classes, label="class", method="pca",
    ...                     highlight=[3], names=["8485-1901"])
    >>> figure.axes[0].get_title()
    'latent space (pca, 50 galaxies)'
    >>> sorted(t.get_text() for t in figure.axes[0].get_legend().get_texts())
    ['retired', 'seyfert', 'star_forming']
    """
    if coords is None:
        coords, used = embed_latents(latents, method=method, random_state=random_state)
    else:
        used = method
    figure = Figure(figsize=(6.5, 5.2), layout="constrained")
    ax = figure.subplots()
    if color is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=8, color="tab:blue", alpha=0.7)
    else:
        values = np.asarray(color)
        if values.dtype.kind in "USO":
            values = values.astype(str)
            for i, cls in enumerate(sorted(set(values))):
                keep = values == cls
                ax.scatter(
                    coords[keep, 0], coords[keep, 1], s=10, alpha=0.8, label=cls,
                    color=_cmap("tab10")(i % 10),
                )  # fmt: skip
            ax.legend(title=label or None, fontsize=7, markerscale=1.5, loc="best")
        else:
            values = values.astype(np.float64)
            bad = ~np.isfinite(values)
            ax.scatter(coords[bad, 0], coords[bad, 1], s=8, color="0.7")
            points = ax.scatter(
                coords[~bad, 0], coords[~bad, 1], c=values[~bad], s=10, cmap="viridis"
            )
            figure.colorbar(points, ax=ax, label=label)
    if highlight is not None and len(highlight):
        rows = np.asarray(highlight, dtype=int)
        ax.scatter(
            coords[rows, 0], coords[rows, 1], s=60, facecolors="none", edgecolors="red",
            linewidths=1.2,
        )  # fmt: skip
        for j, row in enumerate(rows[:20]):
            text = names[j] if names is not None and j < len(names) else str(row)
            ax.annotate(text, coords[row], fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"latent space ({used}, {len(coords)} galaxies)")
    return figure
