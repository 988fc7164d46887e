"""ifsrepr: learned representations of integral-field spectroscopy galaxy cubes.

The flow of data::

    path --read--> IFSCube --extract_lines--> LineStack --> IFSEncoder --> AnomalyScorer

See https://ifsrepr.readthedocs.io for the documentation.
"""

from . import datasets
from .cube import IFSCube
from .encoder import IFSEncoder
from .exceptions import (
    DataModelError,
    FileFormatError,
    IFSReprError,
    PluginError,
    UnknownNameError,
)
from .extraction import extract_lines
from .io import read
from .lines import EmissionLine
from .linestack import LineStack
from .plugins import hookimpl
from .probes import probe
from .scoring import AnomalyScorer

try:
    from ._version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__citation__ = "Mantha et al. 2026, arXiv:2602.18426 (method); see CITATION.cff for the software"

__all__ = [
    "AnomalyScorer",
    "DataModelError",
    "EmissionLine",
    "FileFormatError",
    "IFSCube",
    "IFSEncoder",
    "IFSReprError",
    "LineStack",
    "PluginError",
    "UnknownNameError",
    "__version__",
    "datasets",
    "extract_lines",
    "hookimpl",
    "probe",
    "read",
]
