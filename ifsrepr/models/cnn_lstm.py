"""The CNN-LSTM autoencoder (architecture ``cnn-lstm``).

The published descriptions of the method's network disagree on whether its
recurrent part is convolutional; this is the other reading, for comparison
with ``convlstm``: every line map is turned into a feature *vector* by a
strided CNN shared across lines, a plain `torch.nn.LSTM` runs over the
vectors in wavelength order, and its final hidden state is projected to the
latent vector. The decoder mirrors it: latent -> initial LSTM states -> LSTM
unrolled over the lines (its input at step t is a learned vector for line t)
-> linear -> feature map -> transposed convolutions -> one map per line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .base import (
    SequenceAutoencoder,
    check_choice,
    check_int,
    check_int_list,
    downsampled_size,
)
from .layers import DownsamplingCNN, UpsamplingCNN

__all__ = ["CNNLSTMAutoencoder"]


class CNNLSTMAutoencoder(SequenceAutoencoder):
    """Per-line CNN features into a plain LSTM, and back.

    Parameters
    ----------
    n_lines : int
        Number of line maps (sequence steps).
    image_size : int or (int, int)
        Map size; each side must be divisible by ``2 ** len(frontend_channels)``.
    frontend_channels : sequence of int
        Channels of the stride-2 CNN levels (four levels: 64x64 -> 4x4).
    feature_dim : int
        Length of each line's feature vector (the LSTM input).
    hidden_size : int
        LSTM hidden size.
    num_layers : int
        Stacked LSTM layers (encoder and decoder each).
    latent_dim : int
        Size of the latent vector.
    variant : {"ae", "vae"}
        Plain or variational autoencoder.
    mask_channel : bool
        Feed the validity mask to the CNN as a second channel.

    Examples
    --------
    A small network for three 16x16 line maps:

    >>> import torch
    >>> from ifsrepr.models import CNNLSTMAutoencoder
    >>> model = CNNLSTMAutoencoder(3, 16, frontend_channels=[4, 8], feature_dim=16,
    ...                            hidden_size=16, latent_dim=8)
    >>> x = torch.randn(2, 3, 16, 16)
    >>> x_hat, latent, extras = model(x)
    >>> tuple(x_hat.shape), tuple(latent.shape), extras
    ((2, 3, 16, 16), (2, 8), {})

    The variational variant also returns what the KL term needs:

    >>> vae = CNNLSTMAutoencoder(3, 16, frontend_channels=[4, 8], feature_dim=16,
    ...                          hidden_size=16, latent_dim=8, variant="vae")
    >>> sorted(vae(x)[2])
    ['logvar', 'mu', 'z']
    """

    architecture = "cnn-lstm"

    def __init__(
        self,
        n_lines: int = 19,
        image_size: int | Sequence[int] = 64,
        *,
        frontend_channels: Sequence[int] = (16, 32, 64, 64),
        feature_dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        latent_dim: int = 128,
        variant: str = "ae",
        mask_channel: bool = False,
    ) -> None:
        name = self.architecture
        options: dict[str, Any] = {
            "frontend_channels": (
                frontend_channels if isinstance(frontend_channels, int) else list(frontend_channels)
            ),
            "feature_dim": feature_dim,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "latent_dim": latent_dim,
            "variant": variant,
            "mask_channel": mask_channel,
        }
        super().__init__(n_lines, image_size, latent_dim, options)
        front = check_int_list(name, "frontend_channels", frontend_channels)
        check_int(name, "feature_dim", feature_dim)
        check_int(name, "hidden_size", hidden_size)
        check_int(name, "num_layers", num_layers)
        self.variant = check_choice(name, "variant", variant, ("ae", "vae"))
        check_choice(name, "mask_channel", mask_channel, (True, False))
        height, width = downsampled_size(
            name, self.image_size, len(front), f"frontend_channels={list(front)}"
        )
        self.mask_channel = mask_channel
        self.feature_map = (front[-1], height, width)
        flat = front[-1] * height * width
        self.num_layers = num_layers
        self.hidden_size = hidden_size

        self.frontend = DownsamplingCNN(2 if mask_channel else 1, front)
        self.to_features = nn.Sequential(nn.Linear(flat, feature_dim), nn.SiLU())
        self.encoder_rnn = nn.LSTM(feature_dim, hidden_size, num_layers)
        self.to_latent = nn.Linear(hidden_size, latent_dim * (2 if variant == "vae" else 1))

        self.from_latent = nn.Linear(latent_dim, 2 * num_layers * hidden_size)
        # As in the ConvLSTM decoder, the step input says which line to draw;
        # the galaxy arrives through the initial states.
        self.line_queries = nn.Parameter(0.1 * torch.randn(n_lines, 1, feature_dim))
        self.decoder_rnn = nn.LSTM(feature_dim, hidden_size, num_layers)
        self.from_hidden = nn.Sequential(nn.Linear(hidden_size, flat), nn.SiLU())
        self.backend = UpsamplingCNN(front[-1], front, 1)

    def _encode_clean(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mask_channel:
            x = torch.cat([x, valid], dim=2)
        batch, steps = x.shape[:2]
        images = x.transpose(0, 1).reshape(steps * batch, *x.shape[2:])
        features = self.to_features(self.frontend(images).flatten(1))
        _, (h_n, _) = self.encoder_rnn(features.view(steps, batch, -1))
        out = self.to_latent(h_n[-1])
        if self.variant == "vae":
            mu, logvar = out.chunk(2, dim=1)
            return mu, logvar.clamp(-12.0, 12.0)
        return out, None

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(batch, n_lines, 1, H, W)`` normalised maps from the latent vectors."""
        batch = latent.shape[0]
        states = self.from_latent(latent).view(batch, 2, self.num_layers, self.hidden_size)
        h0 = torch.tanh(states[:, 0]).transpose(0, 1).contiguous()
        c0 = states[:, 1].transpose(0, 1).contiguous()
        queries = self.line_queries.expand(-1, batch, -1).contiguous()
        outputs, _ = self.decoder_rnn(queries, (h0, c0))
        steps = outputs.shape[0]
        maps = self.from_hidden(outputs.reshape(steps * batch, -1)).view(-1, *self.feature_map)
        images = self.backend(maps)
        return images.view(steps, batch, *images.shape[1:]).transpose(0, 1)
