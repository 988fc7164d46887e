"""Architecture plugin: registers ``conv-ae`` with ifsrepr.

ifsrepr imports this module whenever it discovers plugins (``ifsrepr
plugins``, the first `ifsrepr.read`...), so it stays cheap: it does not
import torch. `ifsrepr.models.builtin.Architecture` is the same ready-made
recipe the built-in architectures use: it holds the options and their
defaults, refuses unknown options with a message listing the valid ones,
and imports the network class only when an encoder is built.
"""

from __future__ import annotations

import ifsrepr
from ifsrepr.models.builtin import Architecture

__all__ = ["CONV_AE"]

#: The recipe: ``build(n_lines, image_size, **options)`` returns a
#: `~ifsrepr_example_architecture.network.ConvAutoencoder`.
CONV_AE = Architecture(
    "conv-ae",
    "ifsrepr_example_architecture.network:ConvAutoencoder",
    {"channels": [16, 32, 64], "latent_dim": 128, "mask_channels": True},
    "plain 2-D convolutional autoencoder, line maps as channels, dense latent",
)


@ifsrepr.hookimpl
def ifsrepr_register_architectures(register):
    """Register the ``conv-ae`` architecture with ifsrepr."""
    register(CONV_AE)
