"""Figures and a static HTML page for reviewing anomaly candidates.

* `ifsrepr.report.figures`: a per-galaxy figure (maps, reconstruction,
  residuals, error map) and a latent-space map, with matplotlib's Agg canvas.
* `ifsrepr.report.html`: `write_report`, the self-contained review page
  (``ifsrepr report scores.ecsv -o report/``).
"""

from .figures import embed_latents, error_figure, galaxy_figure, latent_map, model_maps
from .html import LABELS, ReportWarning, write_report

__all__ = [
    "LABELS",
    "ReportWarning",
    "embed_latents",
    "error_figure",
    "galaxy_figure",
    "latent_map",
    "model_maps",
    "write_report",
]
