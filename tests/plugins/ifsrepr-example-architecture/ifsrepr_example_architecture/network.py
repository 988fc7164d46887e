"""The ``conv-ae`` network: a plain 2-D convolutional autoencoder with a dense bottleneck.

The line maps of a galaxy are read as the channels of one image, as an
ordinary multi-band image is: strided convolutions halve the map size block
by block, a dense layer maps the last feature map to the latent vector, and a
mirrored decoder (dense layer, transposed convolutions) rebuilds all the maps
at once. Unlike the ConvLSTM it has no notion of the wavelength order of the
lines; it is the baseline that says what reading the lines as a sequence
gains.

Masked pixels arrive as zeros (`~ifsrepr.models.base.SequenceAutoencoder`
cleans the input); with ``mask_channels=True`` the validity mask of every
line is given to the encoder as extra input channels, so it can tell "no
data" from "zero flux".

This module imports torch. The plugin module (`ifsrepr_example_architecture.plugin`)
does not import it: ifsrepr imports every plugin to list what is installed,
and the network is only imported when an encoder is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ifsrepr.models import SequenceAutoencoder
from ifsrepr.models.base import check_int, check_int_list, downsampled_size

__all__ = ["ConvAutoencoder"]


class ConvAutoencoder(SequenceAutoencoder):
    """Convolutional autoencoder of a stack of line maps, with a dense latent.

    Parameters
    ----------
    n_lines : int
        Number of line maps per galaxy (the input channels).
    image_size : int or (int, int)
        Map size in pixels; each side must be divisible by
        ``2 ** len(channels)``.
    channels : sequence of int
        Feature channels of the encoder's stride-2 convolution blocks (the
        decoder mirrors them).
    latent_dim : int
        Size of the latent vector.
    mask_channels : bool
        Give the encoder each line's validity mask as an extra channel.

    Raises
    ------
    ifsrepr.models.ModelConfigError
        For an invalid option or a map size the blocks cannot halve.

    Examples
    --------
    >>> import torch
    >>> net = ConvAutoencoder(4, 16, channels=[8, 16], latent_dim=32)
    >>> x_hat, latent, extras = net(torch.randn(2, 4, 1, 16, 16))
    >>> tuple(x_hat.shape), tuple(latent.shape), extras
    ((2, 4, 1, 16, 16), (2, 32), {})
    """

    architecture = "conv-ae"

    def __init__(
        self,
        n_lines: int = 19,
        image_size: int | Sequence[int] = 64,
        *,
        channels: Sequence[int] = (16, 32, 64),
        latent_dim: int = 128,
        mask_channels: bool = True,
    ) -> None:
        blocks = check_int_list(self.architecture, "channels", channels)
        options = {
            "channels": list(blocks),
            "latent_dim": latent_dim,
            "mask_channels": bool(mask_channels),
        }
        super().__init__(
            n_lines, image_size, check_int(self.architecture, "latent_dim", latent_dim), options
        )
        # Each stride-2 block halves the map: the core checks the sides divide.
        height, width = downsampled_size(
            self.architecture, self.image_size, len(blocks), f"channels={list(blocks)}"
        )
        self.mask_channels = bool(mask_channels)
        self._bottleneck = (blocks[-1], height, width)
        flat = blocks[-1] * height * width

        layers: list[nn.Module] = []
        previous = n_lines * (2 if self.mask_channels else 1)
        for out in blocks:
            layers += [nn.Conv2d(previous, out, 3, stride=2, padding=1), nn.GELU()]
            previous = out
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, latent_dim))

        self.expand = nn.Sequential(nn.Linear(latent_dim, flat), nn.GELU())
        layers = []
        widths = [*reversed(blocks), blocks[0]]
        for inner, out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(inner, out, 4, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(blocks[0], n_lines, 3, padding=1))
        self.decoder = nn.Sequential(*layers)

    def _encode_clean(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latent of cleaned input ``(batch, n_lines, 1, H, W)``; no log-variance (plain AE)."""
        images = x[:, :, 0]
        if self.mask_channels:
            images = torch.cat([images, valid[:, :, 0]], dim=1)
        return self.encoder(images), None

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Maps ``(batch, n_lines, 1, H, W)`` from latents ``(batch, latent_dim)``."""
        features = self.expand(latent).view(latent.shape[0], *self._bottleneck)
        return self.decoder(features).unsqueeze(2)

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return f"{super().extra_repr()}, channels={self.options['channels']}"
