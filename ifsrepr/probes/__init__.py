"""What the latent vectors know: probes, clusters, neighbours, and the encoder as a compressor.

The method's second claim is that an embedding learned without labels
organises galaxies by physics it never saw. This package makes that claim
measurable on any survey with a catalogue of known properties:

* `probe`: cross-validated linear probes from the latents to each property
  (ridge regression with R² for quantities, logistic regression with
  balanced accuracy for classes), with the same probes on two baselines in the
  same folds: PCA of the normalised stacks and hand-made line features
  (`survey_features`, `line_features`). `probe_dataset` does it all from a
  survey dataset, an encoder and a catalogue matched by plate-IFU
  (`match_catalog`); ``ifsrepr probe`` is its command line; `plot_probes`
  draws the result.
* `cluster_latents` (HDBSCAN) and `cluster_purity`: do the clusters of the
  latent space follow known classes?
* `plot_neighbours`: a galaxy and its nearest neighbours side by side (find
  them with `ifsrepr.scoring.similar`).
* `compression_table`: bytes of the survey as cubes, line stacks and
  latents, with each encoder's reconstruction fidelity.
* `mock_targets`: physically measurable probe targets from a mock survey's
  truth table.

Every error raised on purpose derives from `ifsrepr.IFSReprError`.
"""

from .catalog import match_catalog, mock_targets
from .clusters import cluster_latents, cluster_purity, plot_neighbours
from .compression import (
    compression_table,
    cube_bytes,
    fraction_of_variance_explained,
    reconstruction_fve,
)
from .errors import CatalogMatchError, ProbeColumnError, ProbeError
from .features import SurveyFeatures, feature_names, line_features, survey_features
from .probe import column_kind, plot_probes, probe
from .survey import probe_dataset

__all__ = [
    "CatalogMatchError",
    "ProbeColumnError",
    "ProbeError",
    "SurveyFeatures",
    "cluster_latents",
    "cluster_purity",
    "column_kind",
    "compression_table",
    "cube_bytes",
    "feature_names",
    "fraction_of_variance_explained",
    "line_features",
    "match_catalog",
    "mock_targets",
    "plot_neighbours",
    "plot_probes",
    "probe",
    "probe_dataset",
    "reconstruction_fve",
    "survey_features",
]
