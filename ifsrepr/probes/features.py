"""Baseline feature sets for the probes: hand-made line features and PCA of the stacks.

A learned representation earns its keep only if it tells more than what an
astronomer would compute by hand, or than the simplest unsupervised
compression of the same maps. `survey_features` reads a survey dataset once
and returns both baselines, aligned with its galaxies:

``features`` (`line_features`)
    What a spectroscopist computes first from emission-line maps: the
    integrated flux of every line (log10), and the classic diagnostic ratios
    (log10): [NII]/Hα, [SII]/Hα, [OI]/Hα and [OIII]/Hβ (the BPT and VO87
    diagrams: star formation against AGN/LINER ionisation, metallicity),
    Hα/Hβ (the Balmer decrement: dust), HeII/Hβ (hard ionising spectra) and
    [NeIII]/[OIII] (ionisation parameter), each over the whole map, inside
    0.5 effective radii and between 1 and 2 effective radii (their
    differences are gradients), plus the concentration of Hα (the
    fraction of its flux inside 0.5 Re). No shapes, no kinematics: these are
    the numbers a catalogue of integrated spectroscopy would hold.
``pca``
    The leading principal components of the normalised stacks that the
    encoder reads (masked pixels at 0, the value the networks see), as many
    as the latent has dimensions: the linear compression at the same size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ProbeError

__all__ = [
    "RATIOS",
    "REGIONS",
    "SurveyFeatures",
    "feature_names",
    "line_features",
    "survey_features",
]

#: Diagnostic ratios: name -> (numerator lines, denominator lines); fluxes of a tuple are summed.
RATIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "N2Ha": (("NII-6585",), ("Ha-6564",)),
    "S2Ha": (("SII-6718", "SII-6732"), ("Ha-6564",)),
    "O1Ha": (("OI-6302",), ("Ha-6564",)),
    "O3Hb": (("OIII-5008",), ("Hb-4862",)),
    "HaHb": (("Ha-6564",), ("Hb-4862",)),
    "He2Hb": (("HeII-4687",), ("Hb-4862",)),
    "Ne3O3": (("NeIII-3869",), ("OIII-5008",)),
}
#: Apertures, in effective radii (inner, outer), circular around the grid centre.
REGIONS: dict[str, tuple[float, float]] = {
    "all": (0.0, np.inf),
    "centre": (0.0, 0.5),
    "outer": (1.0, 2.0),
}


def feature_names(line_names: Sequence[str]) -> list[str]:
    """Names of the `line_features` columns for stacks of these lines.

    Examples
    --------
    >>> names = feature_names(["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"])
    >>> names[:5]
    ['logF_Hb-4862', 'logF_OIII-5008', 'logF_Ha-6564', 'logF_NII-6585', 'log_N2Ha_all']
    """
    present = set(line_names)
    names = [f"logF_{line}" for line in line_names]
    for ratio, (top, bottom) in RATIOS.items():
        if set(top) <= present and set(bottom) <= present:
            names += [f"log_{ratio}_{region}" for region in REGIONS]
    if "Ha-6564" in present:
        names.append("Ha_concentration")
    return names


def line_features(
    flux: np.ndarray,
    mask: np.ndarray,
    line_names: Sequence[str],
    *,
    pixel_area: float | np.ndarray = 1.0,
    reff_pixels: float | np.ndarray | None = None,
) -> np.ndarray:
    """Hand-made features of line maps: log integrated fluxes and diagnostic ratios.

    Parameters
    ----------
    flux : array
        ``(n_lines, ny, nx)`` or ``(n, n_lines, ny, nx)`` surface
        brightness (or flux per pixel with ``pixel_area=1``).
    mask : array of bool
        Same shape; True where a pixel is not to be used (it counts as 0).
    line_names : sequence of str
        The lines, in the stacks' order.
    pixel_area : float or array
        Area of a pixel (per galaxy), turning summed surface brightness into
        flux.
    reff_pixels : float or array, optional
        The effective radius in pixels (per galaxy); default a quarter of
        the map width (the ``reff`` grid spans +-2 Re).

    Returns
    -------
    numpy.ndarray
        ``(n, n_features)`` (or ``(n_features,)`` for one stack), columns
        named by `feature_names`. A log of a flux or ratio that is not
        positive (an undetected line) is NaN; `probe` fills those with the
        training median.

    Examples
    --------
    An exponential disc with the same line ratios everywhere (case-B
    Halpha/Hbeta = 2.86, [NII]/Halpha = 0.35):

    >>> import numpy as np
    >>> from ifsrepr.probes import feature_names, line_features
    >>> names = ["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"]
    >>> yy, xx = np.mgrid[0:16, 0:16]
    >>> disc = np.exp(-np.hypot(yy - 7.5, xx - 7.5) / 3.0)
    >>> flux = np.stack([1.0 * disc, 0.5 * disc, 2.86 * disc, 1.0 * disc])
    >>> features = dict(zip(feature_names(names),
    ...                     line_features(flux, np.zeros(flux.shape, bool), names)))
    >>> len(features)
    14
    >>> print(round(features["log_N2Ha_centre"], 3), round(features["log_HaHb_outer"], 3))
    -0.456 0.456
    """
    flux = np.asarray(flux, dtype=np.float64)
    single = flux.ndim == 3
    if single:
        flux, mask = flux[None], np.asarray(mask)[None]
    if flux.ndim != 4 or np.shape(mask) != flux.shape:
        raise ProbeError(
            f"flux and mask must be shaped (n, n_lines, ny, nx) alike, got {flux.shape} and "
            f"{np.shape(mask)}"
        )
    n, n_lines, ny, nx = flux.shape
    if len(line_names) != n_lines:
        raise ProbeError(f"{len(line_names)} line names for {n_lines} line maps")
    good = ~np.asarray(mask, dtype=bool) & np.isfinite(flux)
    flux = np.where(good, flux, 0.0)
    area = np.broadcast_to(np.asarray(pixel_area, dtype=np.float64), (n,))
    reff = np.broadcast_to(
        np.asarray(nx / 4.0 if reff_pixels is None else reff_pixels, dtype=np.float64), (n,)
    )
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot(yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0)[None] / reff[:, None, None]
    # (n, region, line) fluxes in each aperture.
    fluxes = (
        np.stack(
            [
                np.einsum("nlyx,nyx->nl", flux, ((radius >= lo) & (radius < hi)).astype(np.float64))
                for lo, hi in REGIONS.values()
            ],
            axis=1,
        )
        * area[:, None, None]
    )
    index = {name: i for i, name in enumerate(line_names)}
    columns = [_log(fluxes[:, 0, :])]
    for top, bottom in RATIOS.values():
        if not (set(top) <= set(index) and set(bottom) <= set(index)):
            continue
        numerator = fluxes[:, :, [index[name] for name in top]].sum(axis=2)
        denominator = fluxes[:, :, [index[name] for name in bottom]].sum(axis=2)
        columns.append(_log_ratio(numerator, denominator))
    if "Ha-6564" in index:
        halpha = fluxes[:, :, index["Ha-6564"]]
        columns.append(_log_ratio(halpha[:, 1], halpha[:, 0])[:, None])
    out = np.concatenate(columns, axis=1)
    return out[0] if single else out


def _log(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def _log_ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    ok = (top > 0) & (bottom > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, np.log10(np.where(ok, top, 1.0) / np.where(ok, bottom, 1.0)), np.nan)


@dataclass
class SurveyFeatures:
    """The baseline feature sets of a survey dataset, one row per galaxy.

    Attributes
    ----------
    plateifu : numpy.ndarray of str
        ``(n,)``.
    rows : numpy.ndarray of int
        ``(n,)`` the galaxies' rows in the dataset.
    pca : numpy.ndarray
        ``(n, n_pca)`` principal components of the normalised stacks.
    pca_explained : numpy.ndarray
        Fraction of the (masked-as-zero) pixel variance along each component.
    features : numpy.ndarray
        ``(n, n_features)`` `line_features`.
    feature_names : list of str

    Examples
    --------
    `survey_features` computes them; `baselines` picks the rows of some
    dataset galaxies, in the order asked:

    >>> import numpy as np
    >>> from ifsrepr.probes import SurveyFeatures
    >>> features = SurveyFeatures(
    ...     plateifu=np.array(["1-1", "1-2", "1-3"]), rows=np.array([0, 1, 2]),
    ...     pca=np.arange(6.0).reshape(3, 2), pca_explained=np.array([0.7, 0.2]),
    ...     features=np.ones((3, 4)), feature_names=["a", "b", "c", "d"])
    >>> sets = features.baselines(rows=[2, 0])
    >>> sorted(sets), sets["pca"].tolist()
    (['features', 'pca'], [[4.0, 5.0], [0.0, 1.0]])
    """

    plateifu: np.ndarray
    rows: np.ndarray
    pca: np.ndarray
    pca_explained: np.ndarray
    features: np.ndarray
    feature_names: list[str] = field(default_factory=list)

    def baselines(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``{"pca": ..., "features": ...}`` for `probe`, at dataset ``rows`` (default all)."""
        if rows is None:
            return {"pca": self.pca, "features": self.features}
        position = {int(r): i for i, r in enumerate(self.rows)}
        missing = [int(r) for r in rows if int(r) not in position]
        if missing:
            raise ProbeError(f"dataset rows {missing[:5]} have no features")
        take = np.asarray([position[int(r)] for r in rows], dtype=np.int64)
        return {"pca": self.pca[take], "features": self.features[take]}


def survey_features(
    dataset: str | os.PathLike | Any,
    *,
    preprocessor: Any = None,
    n_pca: int = 128,
    max_fit: int = 4000,
    random_state: int = 0,
    progress: bool = False,
) -> SurveyFeatures:
    """Read a survey dataset once and compute the probes' baseline feature sets.

    Parameters
    ----------
    dataset : path-like or SurveyDataset
        ``ifsrepr extract`` output.
    preprocessor : Preprocessor, optional
        The normalisation of the stacks given to the PCA: pass the encoder's
        (``encoder.preprocessor_``) so the PCA sees what the encoder sees;
        default the dataset's own.
    n_pca : int
        Principal components (at most the number of galaxies fitted, minus one).
    max_fit : int
        The PCA is fitted on at most this many galaxies (a random subset),
        then applied to all in a second pass, so memory stays bounded on
        large surveys (``max_fit * n_lines * size**2`` floats).
    random_state : int
        Seed of that subset and of the randomised SVD.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SurveyFeatures

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name)
    >>> from ifsrepr.probes import survey_features
    >>> features = survey_features(dataset, n_pca=3)
    >>> features.pca.shape, features.features.shape, features.feature_names[-1]
    ((4, 3), (4, 41), 'Ha_concentration')
    >>> tmp.cleanup()
    """
    from sklearn.decomposition import PCA

    from ..dataset import SurveyDataset, load_metadata

    if isinstance(dataset, (str, os.PathLike)):
        dataset = SurveyDataset(dataset, preprocessor=preprocessor)
    elif preprocessor is not None:
        dataset = SurveyDataset(dataset.path, preprocessor=preprocessor, indices=dataset.indices)
    n = len(dataset)
    if n < 2:
        raise ProbeError(f"{dataset.path}: {n} galaxies; the baselines need at least two")
    if n_pca < 1:
        raise ProbeError(f"n_pca must be at least 1, got {n_pca}")
    table = load_metadata(dataset.path)
    rows = np.asarray(dataset.indices, dtype=np.int64)
    line_names = list(dataset.preprocessor.line_names)
    scale = np.asarray(table["pixel_scale"], dtype=np.float64)[rows]
    reff = np.asarray(table["reff"], dtype=np.float64)[rows]
    size = int(dataset.preprocessor.size)
    # Without a usable radius, assume the default reff grid (+-2 Re across the map).
    reff_pixels = np.where(np.isfinite(reff / scale) & (reff > 0), reff / scale, size / 4.0)
    rng = np.random.default_rng(random_state)
    fit_rows = np.sort(rng.choice(n, min(n, max_fit), replace=False))
    in_fit = np.zeros(n, dtype=bool)
    in_fit[fit_rows] = True

    features = np.empty((n, len(feature_names(line_names))))
    sample = None
    bar = _progress(n, progress, "features")
    for i in range(n):
        flux, _, mask = dataset.read(i)
        # The dataset's flux unit only shifts every log by a constant, which
        # standardised linear probes ignore; no conversion needed.
        features[i] = line_features(
            flux, mask, line_names, pixel_area=scale[i] ** 2, reff_pixels=reff_pixels[i]
        )
        if in_fit[i]:
            x = _flat_input(dataset, i)
            if sample is None:
                sample = np.empty((len(fit_rows), x.size), dtype=np.float32)
            sample[np.searchsorted(fit_rows, i)] = x
        bar.update(1)
    bar.close()
    k = max(1, min(n_pca, len(fit_rows) - 1))
    pca = PCA(n_components=k, random_state=random_state).fit(sample)
    if in_fit.all():
        components = pca.transform(sample)
    else:
        components = np.empty((n, k), dtype=np.float64)
        batch = []
        for i in range(n):
            batch.append(_flat_input(dataset, i))
            if len(batch) == 256 or i == n - 1:
                components[i + 1 - len(batch) : i + 1] = pca.transform(np.stack(batch))
                batch = []
    if k < n_pca:
        # Keep the width asked for (as the pca architecture does): extra zeros.
        components = np.hstack([components, np.zeros((n, n_pca - k))])
    explained = np.zeros(n_pca)
    explained[:k] = pca.explained_variance_ratio_
    return SurveyFeatures(
        plateifu=np.asarray(table["plateifu"], dtype=str)[rows],
        rows=rows,
        pca=components,
        pca_explained=explained,
        features=features,
        feature_names=feature_names(line_names),
    )


def _flat_input(dataset: Any, i: int) -> np.ndarray:
    x, w, _ = dataset[i]
    x, w = x.numpy().reshape(-1), w.numpy().reshape(-1)
    return np.where((w > 0) & np.isfinite(x), x, 0.0).astype(np.float32)


def _progress(total: int, show: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="galaxy", desc=desc, disable=not show)
