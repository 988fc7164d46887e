"""Pretrained-model plugin: registers ``example-bpt-pca``, weights inside the package.

The model is the built-in ``pca`` architecture: the 128 leading principal
components of the maps of the seven BPT-diagram lines (Hβ, [OIII] 5008,
[OI] 6302, Hα, [NII] 6585, [SII] 6718, 6732) on a 16x16 grid over ±2
effective radii, a linear 128-d representation in a 926 kB file. It was
fitted on 716 galaxies of a mock MaNGA survey by ``make_weights.py`` (next
to ``pyproject.toml``), which wrote the files in
``weights/example-bpt-pca/``: ``config.json`` (what
`ifsrepr.IFSEncoder.save_pretrained` writes: architecture, options,
preprocessing with its fitted scales), ``model.safetensors`` and
``quality.json`` (on 80 held-out mock galaxies it explains 99.5 % of the
variance of the normalised maps).

Registering the directory as package data makes
``IFSEncoder.from_pretrained("example-bpt-pca")`` work offline as soon as
the package is installed; ifsrepr checks the file against `SHA256` before
loading it. `hosted_model` shows the other way to publish weights: on a
server (Zenodo, a GitHub release), downloaded once into the user's cache
and checked against the same digest.
"""

from __future__ import annotations

import json
from importlib import resources

import ifsrepr
from ifsrepr.plugins import PretrainedModel

__all__ = [
    "CITATION",
    "MODEL_NAME",
    "SHA256",
    "hosted_model",
    "packaged_model",
    "weights_directory",
]

MODEL_NAME = "example-bpt-pca"

#: SHA-256 of ``weights/example-bpt-pca/model.safetensors``, printed by
#: ``make_weights.py``. ifsrepr refuses a weights file that does not match.
SHA256 = "ff0f0dd0ec1045e284fedc9dda18ae7fe30e49b3561711c9a481ca4b5153c852"

#: What users of these weights should cite (shown by the model's entry).
CITATION = (
    "ifsrepr-example-pretrained 0.1.0: a 128-component PCA of the BPT-line maps fitted on "
    "the ifsrepr mock MaNGA survey (seed 11); ifsrepr, Mantha et al. 2026, arXiv:2602.18426"
)

DESCRIPTION = "128-component PCA of the 7 BPT-line maps, 16x16 pixels (mock-trained example)"


def weights_directory():
    """The installed directory holding ``config.json`` and ``model.safetensors``."""
    return resources.files("ifsrepr_example_pretrained") / "weights" / MODEL_NAME


def _entry(name: str, **where: str) -> PretrainedModel:
    """The registry entry for these weights, found ``where`` (``path=`` or ``url=``)."""
    config = json.loads((weights_directory() / "config.json").read_text())
    return PretrainedModel(
        name=name,
        architecture=config["architecture"],
        config=config,
        sha256=SHA256,
        citation=CITATION,
        description=DESCRIPTION,
        **where,
    )


def packaged_model() -> PretrainedModel:
    """The registry entry for the weights shipped inside this package (``path=``)."""
    return _entry(MODEL_NAME, path=str(weights_directory()))


def hosted_model(url: str, name: str = MODEL_NAME) -> PretrainedModel:
    """The same weights published at ``url`` instead of inside the package (``url=``).

    ifsrepr downloads the file once into its cache, checks it against
    `SHA256` (on download and on every later use) and writes ``config``
    next to it as ``config.json``, so the configuration must be the complete
    one `~ifsrepr.IFSEncoder.save_pretrained` wrote. A package that hosts
    its weights ships only that small JSON file and registers this entry
    instead of `packaged_model`.

    Parameters
    ----------
    url : str
        Where ``model.safetensors`` is served, e.g.
        ``"https://zenodo.org/records/<id>/files/model.safetensors"``.
    name : str
        The registered name.

    Returns
    -------
    ifsrepr.plugins.PretrainedModel
    """
    return _entry(name, url=url)


@ifsrepr.hookimpl
def ifsrepr_register_pretrained(register):
    """Register the packaged ``example-bpt-pca`` weights with ifsrepr."""
    register(packaged_model())
