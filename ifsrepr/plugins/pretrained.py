"""A ready-made record for ``ifsrepr_register_pretrained`` entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PretrainedModel"]


@dataclass(frozen=True)
class PretrainedModel:
    """Where a named set of weights lives and how to build the network for it.

    Parameters
    ----------
    name : str
        The name users pass to ``IFSEncoder.from_pretrained``.
    architecture : str
        A registered architecture name.
    config : dict
        Everything needed to rebuild the encoder (architecture options, line
        list, preprocessing).
    sha256 : str
        Hex SHA-256 digest of the weights file; a mismatch is refused.
    citation : str
        What to cite when using these weights.
    path : str, optional
        A local directory or file holding the weights (e.g. package data).
    url : str, optional
        Where to download the weights when ``path`` is not given.
    description : str
        One line for ``ifsrepr plugins``.

    Examples
    --------
    A plugin's ``ifsrepr_register_pretrained`` hook registers records like this:

    >>> from ifsrepr.plugins import PretrainedModel
    >>> model = PretrainedModel(
    ...     "my-survey-convlstm",
    ...     "convlstm",
    ...     sha256="0" * 64,
    ...     url="https://example.org/my-survey-convlstm.safetensors",
    ...     description="ConvLSTM trained on my survey",
    ... )
    >>> model.path is None
    True

    Exactly one of ``path`` and ``url`` says where the weights are:

    >>> PretrainedModel("nowhere", "convlstm")
    Traceback (most recent call last):
    ...
    ValueError: pretrained model 'nowhere': give exactly one of path= and url=
    """

    name: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    citation: str = ""
    path: str | None = None
    url: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise ValueError(f"pretrained model {self.name!r}: give exactly one of path= and url=")
