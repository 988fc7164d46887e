"""The built-in architectures, registered like any third-party plugin's.

Declared in ``pyproject.toml`` under ``[project.entry-points.ifsrepr]``. This
module does not import torch: plugin discovery imports every plugin, and a
user listing readers should not pay for torch. The network classes are
imported when an architecture is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..plugins import hookimpl
from .errors import ModelConfigError

__all__ = ["Architecture", "CNN_LSTM", "CONVLSTM", "PCA"]


class Architecture:
    """A named network recipe: default options plus a lazily imported builder.

    Parameters
    ----------
    name : str
        The registered name.
    target : str
        ``"module:Class"`` of the `torch.nn.Module` to build; called as
        ``Class(n_lines, image_size, **options)``.
    default_options : mapping
        Every option the network accepts, with its default. Anything else is
        refused with a `ModelConfigError` listing these.
    description : str
        One line for ``ifsrepr plugins``.
    """

    def __init__(
        self, name: str, target: str, default_options: Mapping[str, Any], description: str = ""
    ) -> None:
        self.name = name
        self.target = target
        self._defaults = dict(default_options)
        self.description = description

    @property
    def default_options(self) -> dict[str, Any]:
        """The options and their defaults (a fresh copy: edit it freely)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._defaults.items()}

    def resolve_options(self, **options: Any) -> dict[str, Any]:
        """The defaults updated with ``options``; unknown names raise `ModelConfigError`."""
        unknown = sorted(set(options) - set(self._defaults))
        if unknown:
            valid = ", ".join(sorted(self._defaults))
            plural = "s" if len(unknown) > 1 else ""
            raise ModelConfigError(
                f"architecture {self.name!r} has no option{plural} {', '.join(unknown)}; "
                f"valid options: {valid}"
            )
        return {**self.default_options, **options}

    def build(self, n_lines: int, image_size: int | Sequence[int], **options: Any) -> Any:
        """Build the network for ``n_lines`` maps of ``image_size`` pixels.

        Parameters
        ----------
        n_lines : int
            Number of line maps per galaxy.
        image_size : int or (int, int)
            Map size.
        **options
            Architecture options (see ``default_options``).

        Returns
        -------
        torch.nn.Module
            A `~ifsrepr.models.base.SequenceAutoencoder`.

        Raises
        ------
        ModelConfigError
            For an unknown option or an invalid value.
        """
        resolved = self.resolve_options(**options)
        module_name, _, class_name = self.target.partition(":")
        factory = getattr(importlib.import_module(module_name), class_name)
        return factory(n_lines, image_size, **resolved)

    def __repr__(self) -> str:
        return f"<Architecture {self.name!r} ({self.target})>"


#: ConvLSTM autoencoder; see `ifsrepr.models.convlstm.ConvLSTMAutoencoder`.
CONVLSTM = Architecture(
    "convlstm",
    "ifsrepr.models.convlstm:ConvLSTMAutoencoder",
    {
        "hidden_channels": 32,
        "num_layers": 1,
        "latent_dim": 128,
        "kernel_size": 3,
        "peephole": True,
        "variant": "ae",
        "frontend_channels": [16, 32],
        "mask_channel": False,
        "decoder_input": "latent",
        "cell": "fast",
    },
    "ConvLSTM autoencoder over the wavelength-ordered line maps (Shi et al. 2015 cells)",
)

#: Per-line CNN features into a plain LSTM; see `ifsrepr.models.cnn_lstm.CNNLSTMAutoencoder`.
CNN_LSTM = Architecture(
    "cnn-lstm",
    "ifsrepr.models.cnn_lstm:CNNLSTMAutoencoder",
    {
        "frontend_channels": [16, 32, 64, 64],
        "feature_dim": 256,
        "hidden_size": 256,
        "num_layers": 1,
        "latent_dim": 128,
        "variant": "ae",
        "mask_channel": False,
    },
    "per-line CNN feature vectors into a plain LSTM, and a mirrored decoder",
)

#: Linear baseline; see `ifsrepr.models.pca.PCABaseline`.
PCA = Architecture(
    "pca",
    "ifsrepr.models.pca:PCABaseline",
    {"n_components": 128, "fill": "iterative", "n_iter": 10, "seed": 0},
    "principal components of the flattened stacks (closed-form baseline)",
)


@hookimpl
def ifsrepr_register_architectures(register):
    """Register ``convlstm``, ``cnn-lstm`` and ``pca``."""
    for architecture in (CONVLSTM, CNN_LSTM, PCA):
        register(architecture)
