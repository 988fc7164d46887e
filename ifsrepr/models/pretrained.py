"""The pretrained models shipped with ifsrepr, registered like any plugin's.

``manga-convlstm``
    The ``convlstm`` autoencoder (128-d latent) trained on a 3,000-galaxy
    **mock** MaNGA survey (``ifsrepr.mock``, seed 2026, 5 % labelled
    anomalies) at the default preprocessing (manga19, 64x64 pixels over ±2
    effective radii, asinh normalisation), by ``scripts/train_bundled_model.py``
    on one GPU. No full real MaNGA cube could be obtained to train on; see the
    model card (``docs/model_card.rst``) for the measured quality, which is
    below the method paper's. The weights live inside the package, so
    ``IFSEncoder.from_pretrained("manga-convlstm")`` needs no network.
"""

from __future__ import annotations

import json
from importlib import resources

from ..plugins import PretrainedModel, hookimpl

__all__ = ["MANGA_CONVLSTM_SHA256", "bundled_models"]

#: SHA-256 of the shipped ``manga-convlstm`` weights; a mismatch is refused.
MANGA_CONVLSTM_SHA256 = "291c266549a42616d8865bef9dc01f882d6c647e3e8332108baf8554a1633d45"

CITATION = (
    "Mantha et al. 2026, arXiv:2602.18426 (method); weights: ifsrepr, trained on the "
    "ifsrepr mock MaNGA survey (see CITATION.cff)"
)


def bundled_models() -> list[PretrainedModel]:
    """The pretrained models inside the package."""
    directory = resources.files("ifsrepr") / "data" / "pretrained" / "manga-convlstm"
    config = json.loads((directory / "config.json").read_text())
    return [
        PretrainedModel(
            name="manga-convlstm",
            architecture=config["architecture"],
            config=config,
            sha256=MANGA_CONVLSTM_SHA256,
            citation=CITATION,
            path=str(directory),
            description="ConvLSTM autoencoder, 128-d, trained on the mock MaNGA survey",
        )
    ]


@hookimpl
def ifsrepr_register_pretrained(register):
    """Register the bundled pretrained models."""
    for model in bundled_models():
        register(model)
