"""Emission-line extraction: `IFSCube` -> `LineStack`.

The engine works on all spaxels at once (one column per spaxel); the built-in
methods ``window`` and ``gaussian`` are plugins registered like any other.
"""

from .api import extract_lines
from .common import LineCoverageWarning

__all__ = ["extract_lines", "LineCoverageWarning"]
