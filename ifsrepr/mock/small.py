"""A small mock survey dataset in one call, for examples, notebooks and quick trials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from astropy.table import Table

__all__ = ["small_survey"]


def small_survey(
    directory: str | os.PathLike,
    n_galaxies: int = 4,
    *,
    seed: int = 3,
    size: int = 16,
    lines: str = "manga19",
    **survey_options: Any,
) -> tuple[Path, Table]:
    """Make a few mock galaxies and their survey dataset, ready to fit and score.

    Writes line-stack products of the smallest (19-fibre) bundle with
    `make_survey` to ``directory/mock``, then ``directory/survey.h5`` with
    `~ifsrepr.dataset.extract_survey` on a ``size`` x ``size`` grid. The same
    as ``ifsrepr mock`` followed by ``ifsrepr extract``, in a second or two.

    Parameters
    ----------
    directory : path-like
        Where to write (created if needed).
    n_galaxies : int
        How many galaxies.
    seed : int
        Seed of the mock survey.
    size : int
        Pixels per side of the model grid.
    lines : str
        Line set of the dataset.
    **survey_options
        Passed to `make_survey` (``anomaly_rate``, ``anomaly_classes``...).

    Returns
    -------
    dataset : pathlib.Path
        The survey dataset (HDF5).
    truth : astropy.table.Table
        The mock survey's truth table (``truth.ecsv``).

    Examples
    --------
    >>> import tempfile
    >>> from ifsrepr.dataset import SurveyDataset
    >>> from ifsrepr.mock import small_survey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name, 3, anomaly_rate=0.34)
    >>> SurveyDataset(dataset), list(truth["anomaly"]).count("none")
    (<SurveyDataset survey.h5: 3 galaxies>, 2)
    >>> tmp.cleanup()
    """
    from ..dataset import extract_survey
    from ..preprocess import Preprocessor
    from .survey import make_survey

    directory = Path(directory)
    inputs, dataset = directory / "mock", directory / "survey.h5"
    options = {"products": ["linestack"], "fibres": [19], **survey_options}
    truth = make_survey(inputs, n_galaxies, seed=seed, **options)
    extract_survey(
        [inputs], dataset, catalog=inputs / "drpall-mock.fits",
        preprocessor=Preprocessor(lines, size=size), progress=False,
    )  # fmt: skip
    return dataset, truth
