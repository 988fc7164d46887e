"""Clusters and neighbours in latent space.

`cluster_latents` runs HDBSCAN (`sklearn.cluster.HDBSCAN`): density-based,
so it finds clusters of any shape and number and leaves galaxies in no dense
region as noise (label -1) instead of forcing them into a cluster. Density
estimates degrade in 128 dimensions, so the latents are first projected on
their leading principal components (10 by default; a linear reduction, no
UMAP dependency). `cluster_purity` then asks how far the clusters follow known
classes; `plot_neighbours` shows a galaxy next to its nearest neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from ..linestack import LineStack
from .errors import ProbeError

__all__ = ["cluster_latents", "cluster_purity", "plot_neighbours"]


def cluster_latents(
    latents: np.ndarray,
    *,
    n_components: int | None = 10,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    standardise: bool = True,
    random_state: int = 0,
) -> np.ndarray:
    """HDBSCAN cluster labels of latent vectors (-1 = noise).

    Parameters
    ----------
    latents : array
        ``(n, d)``.
    n_components : int or None
        Principal components kept before clustering (None: all).
    min_cluster_size : int, optional
        The smallest group HDBSCAN calls a cluster (default ``max(5, n // 40)``).
    min_samples : int, optional
        HDBSCAN's density smoothing (default: ``min_cluster_size``).
    standardise : bool
        Scale each latent dimension to unit variance first, so a few
        high-variance dimensions do not decide alone.
    random_state : int
        Seed of the PCA's randomised solver.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` integer labels; -1 for noise.

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.probes import cluster_latents
    >>> rng = np.random.default_rng(0)
    >>> latents = np.vstack([rng.normal(0, 1, (50, 8)), rng.normal(8, 1, (50, 8))])
    >>> len(set(cluster_latents(latents, n_components=2)) - {-1})
    2
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    data = np.asarray(latents, dtype=np.float64)
    if data.ndim != 2 or len(data) < 3:
        raise ProbeError(f"latents must be an (n, d) array with n >= 3, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ProbeError("the latents must be finite")
    if standardise:
        spread = data.std(axis=0)
        data = (data - data.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    if n_components is not None and n_components < min(data.shape):
        data = PCA(n_components=n_components, random_state=random_state).fit_transform(data)
    size = min_cluster_size or max(5, len(data) // 40)
    size = max(2, min(size, len(data)))
    model = HDBSCAN(min_cluster_size=size, min_samples=min_samples, copy=True)
    return model.fit(data).labels_.astype(np.int64)


def cluster_purity(labels: np.ndarray, classes: Sequence[Any] | np.ndarray) -> Table:
    """How well clusters follow known classes.

    Parameters
    ----------
    labels : array of int
        Cluster labels (-1 = noise, left out of the purities).
    classes : sequence
        The known class of each galaxy (masked or empty entries are left out).

    Returns
    -------
    astropy.table.Table
        One row per cluster: ``cluster``, ``n``, ``majority`` (its most
        common class), ``purity`` (the fraction of that class) and
        ``enrichment`` (purity over that class's share of all the galaxies
        of known class, noise included: 1 = what a random subset would
        give). ``meta`` holds ``purity`` (the size-weighted mean over
        clusters), ``chance_purity`` (the commonest class's share of all the
        galaxies of known class: the purity of random subsets),
        ``noise_fraction``, ``n_clusters``, ``n_clustered``, and ``ari`` /
        ``nmi`` (adjusted Rand index and normalised mutual information
        between clusters and classes, on the clustered galaxies; 0 =
        unrelated, 1 = the same partition). A purity above chance with an
        ARI near 0 means that clusters gather one class but split it, or
        leave most of the other classes as noise.

    Examples
    --------
    >>> from ifsrepr.probes import cluster_purity
    >>> table = cluster_purity([0, 0, 0, 1, 1, -1], ["a", "a", "b", "b", "b", "a"])
    >>> table["purity"].tolist(), table.meta["purity"], table.meta["chance_purity"]
    ([0.6666666666666666, 1.0], 0.8, 0.5)
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels, dtype=np.int64)
    mask = np.ma.getmaskarray(classes)
    text = np.asarray(np.ma.getdata(classes)).astype(str)
    if labels.shape != text.shape:
        raise ProbeError(f"{labels.shape[0]} labels for {text.shape[0]} classes")
    known = ~mask & (text != "")
    clustered = known & (labels >= 0)
    rows = []
    shares = {}
    if known.any():
        values, counts = np.unique(text[known], return_counts=True)
        shares = dict(zip(values, counts / counts.sum(), strict=True))
    for cluster in np.unique(labels[clustered]):
        members = text[clustered & (labels == cluster)]
        values, counts = np.unique(members, return_counts=True)
        best = int(np.argmax(counts))
        purity = counts[best] / len(members)
        rows.append(
            (int(cluster), len(members), str(values[best]), purity, purity / shares[values[best]])
        )
    table = Table(
        rows=rows or None,
        names=("cluster", "n", "majority", "purity", "enrichment"),
        dtype=(np.int64, np.int64, str, np.float64, np.float64),
    )
    table["purity"].format = table["enrichment"].format = ".3f"
    n_clustered = int(clustered.sum())
    table.meta.update(
        {
            "purity": float(np.sum(table["n"] * table["purity"]) / n_clustered)
            if n_clustered
            else float("nan"),
            "chance_purity": float(max(shares.values())) if shares else float("nan"),
            "noise_fraction": float(np.mean(labels[known] < 0)) if known.any() else float("nan"),
            "n_clusters": len(table),
            "n_clustered": n_clustered,
            "ari": float(adjusted_rand_score(text[clustered], labels[clustered]))
            if n_clustered
            else float("nan"),
            "nmi": float(normalized_mutual_info_score(text[clustered], labels[clustered]))
            if n_clustered
            else float("nan"),
        }
    )
    return table


def _on_grid(stack: LineStack, preprocessor: Any, lines: Sequence[str]) -> LineStack:
    """The shown lines of a stack, on the preprocessor's grid if one is given."""
    from ..preprocess import Preprocessor

    present = [name for name in dict.fromkeys(lines) if name in stack.line_names]
    if not present:
        raise ProbeError(f"{stack.name} has none of the lines shown ({', '.join(lines)})")
    if preprocessor is None:
        return stack.select(present)
    # Regrid only the lines shown: faster, and no warning about the others.
    grid = Preprocessor(**{**preprocessor.get_params(), "lines": present})
    return grid.regrid(stack)


def _plane(stack: LineStack, line: str) -> np.ndarray:
    if line not in stack.line_names:
        return np.full(stack.spatial_shape, np.nan)
    i = stack.line_names.index(line)
    bad = stack.mask[i] | ~np.isfinite(stack.flux[i])
    return np.where(bad, np.nan, np.asarray(stack.flux[i], dtype=np.float64))


def plot_neighbours(
    query: LineStack,
    neighbours: Sequence[LineStack],
    *,
    labels: Sequence[str] | None = None,
    preprocessor: Any = None,
    line: str = "Ha-6564",
    ratio: tuple[str, str] = ("NII-6585", "Ha-6564"),
    snr_cut: float = 3.0,
) -> Any:
    """A galaxy and its neighbours side by side: a line map and a line-ratio map each.

    Parameters
    ----------
    query : LineStack
        The galaxy searched for.
    neighbours : sequence of LineStack
        Its nearest neighbours, nearest first.
    labels : sequence of str, optional
        A title per panel column (query first); default the stacks' names.
    preprocessor : Preprocessor, optional
        Put every stack on this grid first (the encoder's
        ``preprocessor_``), so all panels span the same number of effective
        radii, as the encoder sees them.
    line : str
        The line of the top row (log10 surface brightness, each panel scaled
        to its own 99.5th percentile: shapes compare, brightnesses do not).
    ratio : (str, str)
        The lines of the bottom row's log10 ratio (default [NII]/Hα), on a
        shared colour scale, shown where both lines have S/N above
        ``snr_cut``.
    snr_cut : float
        Minimum signal-to-noise of both lines for a ratio pixel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    Three mock galaxies (in practice, the neighbours `ifsrepr.scoring.similar` found):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import matplotlib.pyplot as plt
    >>> import ifsrepr
    >>> from ifsrepr.mock import make_survey
    >>> from ifsrepr.probes import plot_neighbours
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     truth = make_survey(tmp, 3, seed=0, products=["linestack"], fibres=[19])
    ...     stacks = [ifsrepr.read(Path(tmp) / name) for name in truth["linestack_file"]]
    >>> figure = plot_neighbours(stacks[0], stacks[1:])
    >>> [ax.get_title() for ax in figure.axes[:3]]
    ['9028-1902', '8311-1902', '9884-1901']
    >>> plt.close(figure)
    """
    import matplotlib.pyplot as plt

    shown = [line, *ratio]
    stacks = [_on_grid(s, preprocessor, shown) for s in [query, *neighbours]]
    labels = list(labels) if labels is not None else [s.name for s in stacks]
    if len(labels) != len(stacks):
        raise ProbeError(f"{len(labels)} labels for {len(stacks)} galaxies")
    figure, axes = plt.subplots(
        2, len(stacks), figsize=(1.9 * len(stacks), 4.1), squeeze=False, layout="constrained"
    )
    ratio_image = None
    for j, (stack, label) in enumerate(zip(stacks, labels, strict=True)):
        image = _plane(stack, line)
        positive = image[np.isfinite(image) & (image > 0)]
        top = np.log10(np.percentile(positive, 99.5)) if positive.size else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            log_image = np.where(image > 0, np.log10(image), np.nan)
        axes[0, j].imshow(log_image, origin="lower", cmap="magma", vmin=top - 2.0, vmax=top)
        axes[0, j].set_title(label, fontsize="small")
        numerator, denominator = _plane(stack, ratio[0]), _plane(stack, ratio[1])
        good = _snr(stack, ratio[0], snr_cut) & _snr(stack, ratio[1], snr_cut)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.where(
                good & (numerator > 0) & (denominator > 0), np.log10(numerator / denominator),
                np.nan,
            )  # fmt: skip
        ratio_image = axes[1, j].imshow(
            log_ratio, origin="lower", cmap="coolwarm", vmin=-1.0, vmax=0.5
        )
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"log {line}", fontsize="small")
    axes[1, 0].set_ylabel(f"log {ratio[0]}/{ratio[1]}", fontsize="small")
    if ratio_image is not None:
        figure.colorbar(ratio_image, ax=axes[1, :], shrink=0.8, label="log ratio")
    return figure


def _snr(stack: LineStack, line: str, cut: float) -> np.ndarray:
    if line not in stack.line_names:
        return np.zeros(stack.spatial_shape, dtype=bool)
    i = stack.line_names.index(line)
    with np.errstate(invalid="ignore"):
        snr = np.asarray(stack.flux[i], dtype=np.float64) * np.sqrt(
            np.clip(np.asarray(stack.ivar[i], dtype=np.float64), 0, None)
        )
    return ~stack.mask[i] & np.isfinite(snr) & (snr > cut)
