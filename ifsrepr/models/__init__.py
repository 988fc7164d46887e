"""Encoder/decoder networks: ConvLSTM and CNN-LSTM autoencoders, a PCA baseline, losses.

Every network maps a batch of normalised line maps ``x`` shaped
``(batch, n_lines, 1, height, width)`` (plus an optional non-negative
``weight`` of the same shape, zero where masked) to a latent vector and back:

``encode(x, weight=None) -> (batch, latent_dim)``
    The representation (the posterior mean for the ``vae`` variant).
``decode(latent) -> (batch, n_lines, 1, height, width)``
    The reconstruction in normalised units.
``forward(x, weight=None) -> (x_hat, latent, extras)``
    Both, plus a dict of extra tensors the loss needs (``mu``/``logvar`` for a VAE).

The networks are registered as architectures (``convlstm``, ``cnn-lstm``,
``pca``) by `ifsrepr.models.builtin`, through the same plugin hook a
third-party package uses; build them with
``ifsrepr.plugins.get_architectures().get(name).build(n_lines, image_size, **options)``.

Importing this package does not import torch: the torch-based names below
are loaded on first access, so plugin discovery stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ModelConfigError, ModelInputError, NotFittedError

__all__ = [
    "AutoencoderLoss",
    "CNNLSTMAutoencoder",
    "ConvLSTM",
    "ConvLSTMAutoencoder",
    "ConvLSTMCell",
    "ModelConfigError",
    "ModelInputError",
    "NotFittedError",
    "PCABaseline",
    "ReferenceConvLSTMCell",
    "SequenceAutoencoder",
    "copy_weights",
    "kl_divergence",
    "reconstruction_loss",
]

_LAZY = {
    "AutoencoderLoss": "losses",
    "CNNLSTMAutoencoder": "cnn_lstm",
    "ConvLSTM": "convlstm",
    "ConvLSTMAutoencoder": "convlstm",
    "ConvLSTMCell": "convlstm",
    "PCABaseline": "pca",
    "ReferenceConvLSTMCell": "reference",
    "SequenceAutoencoder": "base",
    "copy_weights": "reference",
    "kl_divergence": "losses",
    "reconstruction_loss": "losses",
}


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
