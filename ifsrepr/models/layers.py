"""Convolutional front and back ends shared by the sequence autoencoders."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["DownsamplingCNN", "UpsamplingCNN"]


class DownsamplingCNN(nn.Sequential):
    """Per-image encoder: one stride-2 3x3 convolution (and SiLU) per entry of ``channels``.

    Each level halves the map, so ``len(channels)`` levels shrink 64x64 to
    ``64 / 2**len(channels)``. One convolution per level keeps the front end
    cheap next to the recurrent part, which is where the work belongs.

    Parameters
    ----------
    in_channels : int
        Channels per input image (1, or 2 with a mask channel).
    channels : sequence of int
        Output channels of each level.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        previous = in_channels
        for out in channels:
            layers += [nn.Conv2d(previous, out, 3, stride=2, padding=1), nn.SiLU()]
            previous = out
        super().__init__(*layers)


class UpsamplingCNN(nn.Sequential):
    """Per-image decoder mirroring `DownsamplingCNN`: stride-2 transposed convolutions.

    Each level doubles the map exactly (kernel 4, stride 2, padding 1). The
    last level has no activation: normalised fluxes can be negative.

    Parameters
    ----------
    in_channels : int
        Channels of the incoming feature maps.
    channels : sequence of int
        The front end's ``channels`` (mirrored here: the decoder passes through
        ``reversed(channels[:-1])`` and ends in ``out_channels``).
    out_channels : int
        Channels per output image.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], out_channels: int = 1) -> None:
        layers: list[nn.Module] = []
        previous = in_channels
        targets = [*reversed(list(channels)[:-1]), out_channels]
        for index, out in enumerate(targets):
            layers.append(nn.ConvTranspose2d(previous, out, 4, stride=2, padding=1))
            if index < len(targets) - 1:
                layers.append(nn.SiLU())
            previous = out
        super().__init__(*layers)
