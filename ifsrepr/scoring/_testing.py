"""Small surveys and models for the tests of scoring, similarity, evaluation and reports.

Not public API: the test modules share these so that each builds, in a
few seconds, a mock survey with labelled anomalies (mock MAPS files of the
smallest IFU bundles), its survey dataset on a 16x16 grid, and a tiny
fitted encoder.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

SIZE = 16


def make_tiny_survey(
    directory: str | Path,
    n_galaxies: int = 16,
    *,
    seed: int = 1,
    anomaly_rate: float = 0.25,
    duplicate: bool = False,
    broken: bool = False,
) -> dict[str, Any]:
    """A mock survey (MAPS files) and its survey dataset.

    Parameters
    ----------
    directory : path
        Where to write ``in/`` (the files) and ``survey.h5``.
    n_galaxies, seed, anomaly_rate :
        Passed to `ifsrepr.mock.make_survey`.
    duplicate : bool
        Also copy the first galaxy's file into ``in/repeat/``: its plate-IFU
        then occurs twice in the dataset.
    broken : bool
        Add a truncated MAPS file (plate-IFU 9999-1901) that fails extraction.

    Returns
    -------
    dict
        ``dataset`` (path), ``truth`` (path), ``truth_table``, ``files``
        (the MAPS paths, sorted), ``inputs`` (the input directory).
    """
    from ..dataset import extract_survey
    from ..mock import make_survey
    from ..preprocess import Preprocessor

    directory = Path(directory)
    inputs = directory / "in"
    truth = make_survey(
        inputs, n_galaxies, seed, products=["maps"], anomaly_rate=anomaly_rate, fibres=[19]
    )
    files = sorted(inputs.glob("*MAPS*.fits.gz"))
    if duplicate:
        (inputs / "repeat").mkdir()
        shutil.copy(files[0], inputs / "repeat" / files[0].name)
    if broken:
        name = "manga-9999-1901-MAPS-SPX-MILESHC-MASTARSSP.fits.gz"
        (inputs / name).write_bytes(files[1].read_bytes()[:20000])
    dataset = directory / "survey.h5"
    extract_survey(
        [inputs],
        dataset,
        catalog=inputs / "drpall-mock.fits",
        preprocessor=Preprocessor("manga19", size=SIZE),
        progress=False,
    )
    return {
        "dataset": dataset,
        "truth": inputs / "truth.ecsv",
        "truth_table": truth,
        "files": files,
        "inputs": inputs,
    }


def fit_tiny_encoder(dataset: str | Path, architecture: str = "pca", **options: Any) -> Any:
    """A small encoder fitted on ``dataset`` in seconds.

    ``pca`` (default: 6 components, closed form) or ``convlstm`` (4 hidden
    channels, 8-d latent, 2 epochs).
    """
    from ..encoder import IFSEncoder

    if architecture == "pca":
        settings = {"n_components": 6, "n_iter": 2, **options}
        encoder = IFSEncoder("pca", device="cpu", **settings)
        return encoder.fit(dataset, progress=False, validation_fraction=0.0)
    settings = {"hidden_channels": 4, "latent_dim": 8, "frontend_channels": [4, 8], **options}
    encoder = IFSEncoder(architecture, device="cpu", **settings)
    with warnings.catch_warnings():
        # A 2-epoch fit of a tiny network is not about convergence.
        warnings.simplefilter("ignore")
        return encoder.fit(dataset, epochs=2, batch_size=8, progress=False)
