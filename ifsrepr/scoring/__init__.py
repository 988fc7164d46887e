"""Anomaly scores, similarity search and their evaluation, from a trained encoder.

The flow::

    survey dataset or LineStacks --encode_dataset--> Encoding --AnomalyScorer--> scores Table
                                                        |
                                                        +--LatentIndex / similar--> neighbours

* `encode_dataset` runs an `~ifsrepr.IFSEncoder` once over a survey and
  keeps latents and reconstruction errors (per galaxy, line and spaxel) in
  an `Encoding`, saved as HDF5 (``ifsrepr encode``).
* `AnomalyScorer` (scikit-learn habits: ``fit`` on a reference population,
  then ``score``) ranks galaxies, higher = more anomalous, and explains each
  rank by line and region (``ifsrepr score``).
* `LatentIndex` and `similar` find the galaxies nearest to a query in
  latent space (``ifsrepr similar``).
* `evaluate_scores` and `evaluate_mock` measure all of it on a mock survey
  with labelled anomalies, against baselines (``ifsrepr evaluate``).
"""

from .encoding import (
    DuplicatePlateIFUWarning,
    Encoding,
    ModelMismatchError,
    encode_dataset,
    is_encoding_file,
    model_identity,
)
from .evaluate import BASELINES, evaluate_mock, evaluate_scores
from .scorer import COMPONENTS, DEFAULT_COMPONENTS, AnomalyScorer, ScoringWarning, region_of
from .similarity import LatentIndex, similar

__all__ = [
    "BASELINES",
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "AnomalyScorer",
    "DuplicatePlateIFUWarning",
    "Encoding",
    "LatentIndex",
    "ModelMismatchError",
    "ScoringWarning",
    "encode_dataset",
    "evaluate_mock",
    "evaluate_scores",
    "is_encoding_file",
    "model_identity",
    "region_of",
    "similar",
]
