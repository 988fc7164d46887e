"""Survey-scale datasets: many files in, one chunked HDF5 dataset out, streamed to torch.

>>> from ifsrepr.dataset import extract_survey, SurveyDataset, load_metadata  # doctest: +SKIP
>>> extract_survey(["cubes/"], "survey.h5", catalog="drpall.fits", jobs=8)   # doctest: +SKIP
>>> data = SurveyDataset("survey.h5")                                         # doctest: +SKIP

The command line is ``ifsrepr extract``; the layout is described in
`ifsrepr.dataset.writer` and in the "Survey datasets" documentation page.
"""

from .build import DEFAULT_UNIT, SurveySummary, dataset_settings, extract_survey
from .catalog import Catalog, load_catalog
from .errors import DatasetError, SettingsMismatchError
from .inputs import InputItem, resolve_inputs
from .tables import load_failures, load_metadata, read_attrs
from .writer import consolidate

__all__ = [
    "DEFAULT_UNIT",
    "Catalog",
    "DatasetError",
    "InputItem",
    "SettingsMismatchError",
    "SurveyDataset",
    "SurveySummary",
    "consolidate",
    "dataset_settings",
    "extract_survey",
    "load_catalog",
    "load_failures",
    "load_metadata",
    "read_attrs",
    "resolve_inputs",
]


def __getattr__(name: str) -> type:
    # SurveyDataset needs torch, whose import takes seconds: load it only when
    # asked for, so extraction workers start fast.
    if name == "SurveyDataset":
        from .reader import SurveyDataset

        return SurveyDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
