"""`probe_dataset`: the probes of a survey dataset, its encoder and a catalogue, in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from ..exceptions import IFSReprError
from .catalog import match_catalog
from .features import SurveyFeatures, survey_features
from .probe import probe

__all__ = ["probe_dataset"]


def probe_dataset(
    dataset: str | os.PathLike,
    catalog: Table | str | os.PathLike,
    columns: Sequence[str],
    *,
    encoder: Any = None,
    encoding: Any = None,
    features: SurveyFeatures | None = None,
    kinds: Mapping[str, str] | None = None,
    cv: int = 5,
    random_state: int = 0,
    n_pca: int | None = None,
    min_match: float = 1.0,
    max_classes: int = 10,
    progress: bool = False,
) -> Table:
    """Probe a survey's latents, and its baselines, against a catalogue's properties.

    Encodes the dataset (or takes an encoding of it), matches the catalogue
    to its galaxies by plate-IFU, computes the baseline feature sets
    (`survey_features`: PCA of the normalised stacks with as many components
    as the latent has dimensions, and hand-made line features) and runs
    `probe`.

    Parameters
    ----------
    dataset : path-like
        The survey dataset (``ifsrepr extract`` output).
    catalog : astropy.table.Table or path
        Properties, with a ``plateifu`` column (a mock survey's
        ``truth.ecsv``, the table of `mock_targets`, DRPall...).
    columns : sequence of str
        Catalogue columns to probe.
    encoder : IFSEncoder, optional
        The model; needed unless ``encoding`` is given. Its preprocessing
        also normalises the stacks of the PCA baseline.
    encoding : Encoding, optional
        Latents already computed for this dataset (``ifsrepr encode``).
    features : SurveyFeatures, optional
        Baselines already computed for this dataset (reused across calls).
    kinds, cv, random_state, max_classes
        See `probe`.
    n_pca : int, optional
        PCA components (default: the latent dimension).
    min_match : float
        See ``min_fraction`` of `match_catalog`.
    progress : bool
        Progress bars.

    Returns
    -------
    astropy.table.Table
        The `probe` table; ``meta`` adds the dataset, the model and the
        number of galaxies matched.

    Raises
    ------
    CatalogMatchError
        When the catalogue does not match the dataset's plate-IFUs.

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid, a three-component PCA
    encoder fitted on it, and two properties of its truth table (far too few
    galaxies for meaningful scores; this shows the table):

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> from ifsrepr.probes import probe_dataset
    >>> result = probe_dataset(dataset, truth, ["z", "reff"], encoder=encoder, cv=2)
    >>> result["property", "kind", "metric", "n_used"]
    <Table length=2>
    property    kind    metric n_used
      str4     str10     str2  int64
    -------- ---------- ------ ------
           z regression     r2      4
        reff regression     r2      4
    >>> result.meta["feature_sets"]
    {'latent': 3, 'pca': 3, 'features': 41}
    >>> tmp.cleanup()
    """
    from ..scoring import encode_dataset

    dataset = os.fspath(dataset)
    if encoding is None:
        if encoder is None:
            raise IFSReprError("probe_dataset needs an encoder, or an encoding of the dataset")
        encoding = encode_dataset(encoder, dataset, progress=progress, spaxel_errors=False)
    if len(encoding) == 0:
        raise IFSReprError(f"{dataset}: no galaxy could be encoded")
    _check_encoding(encoding, dataset)
    table = match_catalog(encoding.plateifu, catalog, min_fraction=min_match)
    latents = np.asarray(encoding.latents, dtype=np.float64)
    if features is None:
        features = survey_features(
            dataset,
            preprocessor=_preprocessor(encoder, encoding),
            n_pca=n_pca or latents.shape[1],
            random_state=random_state,
            progress=progress,
        )
    result = probe(
        latents,
        table,
        columns,
        kinds=kinds,
        cv=cv,
        random_state=random_state,
        baselines=features.baselines(encoding.row),
        max_classes=max_classes,
    )
    result.meta.update(
        {
            "dataset": dataset,
            "model_name": encoding.model_name,
            "model_sha256": encoding.model_sha256,
            "n_galaxies": len(encoding),
            "n_matched": table.meta["n_matched"],
            "n_not_encoded": len(encoding.not_scored),
        }
    )
    return result


def _check_encoding(encoding: Any, dataset: str) -> None:
    """Refuse an encoding made from another dataset (its rows would pair the wrong galaxies)."""
    from ..dataset import load_metadata

    names = np.asarray(load_metadata(dataset)["plateifu"], dtype=str)
    rows = np.asarray(encoding.row, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(names)):
        raise IFSReprError(f"the encoding's rows do not fit {dataset}: was it made from it?")
    wrong = np.flatnonzero(names[rows] != np.asarray(encoding.plateifu, dtype=str))
    if wrong.size:
        raise IFSReprError(
            f"the encoding was not made from {dataset}: {wrong.size} of its {len(rows)} galaxies "
            f"sit on other rows (e.g. {encoding.plateifu[wrong[0]]})"
        )


def _preprocessor(encoder: Any, encoding: Any) -> Any:
    """The encoder's normalisation (from the encoder, else as recorded in the encoding)."""
    import json

    from ..preprocess import Preprocessor

    if encoder is not None:
        return encoder.preprocessor_
    config = json.loads(encoding.model_config) if encoding.model_config else {}
    return Preprocessor.from_dict(config["preprocessing"]) if "preprocessing" in config else None
