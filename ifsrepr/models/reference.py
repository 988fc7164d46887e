"""The straightforward per-step ConvLSTM cell, and weight conversion to and from the fast one.

`ReferenceConvLSTMCell` is the formulation most public ConvLSTM code uses:
at every step, one convolution over ``concat(x_t, h_{t-1})``. It computes
exactly the function of `ifsrepr.models.convlstm.ConvLSTMCell`; it is kept
as the baseline for the speed benchmark and as an independent check of the
fast cell. `copy_weights` moves weights between the two: the concatenated
convolution's kernel is the input kernel and the state kernel side by side
along the input-channel axis.
"""

from __future__ import annotations

import torch
from torch import nn

from .convlstm import ConvLSTMCell, State

__all__ = ["ReferenceConvLSTMCell", "copy_weights"]


class ReferenceConvLSTMCell(nn.Module):
    """ConvLSTM layer with one convolution on ``concat(x_t, h_{t-1})`` per step.

    Same parameters, gate order (``i, f, o, g``) and equations as
    `~ifsrepr.models.convlstm.ConvLSTMCell`.

    Parameters
    ----------
    input_channels, hidden_channels : int
        Channels of the input maps and of the hidden state.
    kernel_size : int
        Side of the square convolution kernel.
    peephole : bool
        Add the peephole terms (cell state into the gates).
    spatial_size : (int, int), optional
        Map size of the peephole weights (default one weight per channel).

    Examples
    --------
    A sequence of five 2-channel 8x8 maps (batch first):

    >>> import torch
    >>> from ifsrepr.models import ReferenceConvLSTMCell
    >>> cell = ReferenceConvLSTMCell(2, 4)
    >>> outputs, (h, c) = cell(torch.randn(1, 5, 2, 8, 8))
    >>> tuple(outputs.shape), tuple(h.shape)
    ((1, 5, 4, 8, 8), (1, 4, 8, 8))
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        *,
        kernel_size: int = 3,
        peephole: bool = False,
        spatial_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.peephole = peephole
        self.conv = nn.Conv2d(
            input_channels + hidden_channels,
            4 * hidden_channels,
            kernel_size,
            padding=kernel_size // 2,
        )
        if peephole:
            shape = (hidden_channels, *(spatial_size or (1, 1)))
            self.peephole_i = nn.Parameter(torch.zeros(shape))
            self.peephole_f = nn.Parameter(torch.zeros(shape))
            self.peephole_o = nn.Parameter(torch.zeros(shape))

    def step(self, x: torch.Tensor, state: State) -> State:
        """One step: ``(x_t, (h, c)) -> (h', c')``."""
        h, c = state
        gates = self.conv(torch.cat([x, h], dim=1))
        gi, gf, go, gg = torch.split(gates, self.hidden_channels, dim=1)
        if self.peephole:
            gi = gi + self.peephole_i * c
            gf = gf + self.peephole_f * c
        i = torch.sigmoid(gi)
        f = torch.sigmoid(gf)
        g = torch.tanh(gg)
        c_next = f * c + i * g
        if self.peephole:
            go = go + self.peephole_o * c_next
        o = torch.sigmoid(go)
        return o * torch.tanh(c_next), c_next

    def forward(
        self,
        inputs: torch.Tensor,
        state: State | None = None,
        *,
        time_major: bool = False,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:
        """Run over a sequence; same signature as `ConvLSTMCell.forward`."""
        time_axis = 0 if time_major else 1
        steps = inputs.shape[time_axis]
        batch = inputs.shape[1 - time_axis]
        if context is not None:
            batch = context.shape[0]
        elif state is not None:
            batch = state[0].shape[0]
        if state is None:
            shape = (batch, self.hidden_channels, *inputs.shape[3:])
            zeros = inputs.new_zeros(shape)
            state = (zeros, zeros)
        outputs = []
        for t in range(steps):
            x = inputs.select(time_axis, t)
            if context is not None:
                x = x + context
            if x.shape[0] != batch:
                x = x.expand(batch, *x.shape[1:])
            state = self.step(x, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=time_axis), state

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return (
            f"{self.input_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, "
            f"peephole={self.peephole}"
        )


_CELLS = (ConvLSTMCell, ReferenceConvLSTMCell)


@torch.no_grad()
def _copy_cell(source: nn.Module, target: nn.Module) -> None:
    if (source.input_channels, source.hidden_channels, source.kernel_size, source.peephole) != (
        target.input_channels,
        target.hidden_channels,
        target.kernel_size,
        target.peephole,
    ):
        raise ValueError(f"cells differ in shape: {source!r} vs {target!r}")
    n_in = source.input_channels
    if isinstance(source, ConvLSTMCell) and isinstance(target, ReferenceConvLSTMCell):
        target.conv.weight.copy_(
            torch.cat([source.input_conv.weight, source.state_conv.weight], dim=1)
        )
        target.conv.bias.copy_(source.input_conv.bias)
    elif isinstance(source, ReferenceConvLSTMCell) and isinstance(target, ConvLSTMCell):
        target.input_conv.weight.copy_(source.conv.weight[:, :n_in])
        target.state_conv.weight.copy_(source.conv.weight[:, n_in:])
        target.input_conv.bias.copy_(source.conv.bias)
    else:
        target.load_state_dict(source.state_dict())
        return
    if source.peephole:
        for name in ("peephole_i", "peephole_f", "peephole_o"):
            getattr(target, name).copy_(getattr(source, name))


@torch.no_grad()
def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy weights between networks that differ only in their ConvLSTM cell implementation.

    Works on two cells, or on two models (e.g. two `ConvLSTMAutoencoder` built
    with ``cell="fast"`` and ``cell="reference"``): cells are converted, every
    other parameter and buffer is copied as is.

    Parameters
    ----------
    source, target : nn.Module
        Same architecture and options except for the cell implementation.

    Raises
    ------
    ValueError
        If the two do not line up.

    Examples
    --------
    The fast and the reference cell compute the same function:

    >>> import torch
    >>> from ifsrepr.models import ConvLSTMCell, ReferenceConvLSTMCell, copy_weights
    >>> fast, reference = ConvLSTMCell(2, 4), ReferenceConvLSTMCell(2, 4)
    >>> copy_weights(fast, reference)
    >>> sequence = torch.randn(1, 5, 2, 8, 8)
    >>> torch.allclose(fast(sequence)[0], reference(sequence)[0], atol=1e-5)
    True
    >>> copy_weights(fast, ReferenceConvLSTMCell(2, 8))
    Traceback (most recent call last):
    ...
    ValueError: cells differ in shape: ...
    """
    if isinstance(source, _CELLS) and isinstance(target, _CELLS):
        _copy_cell(source, target)
        return
    source_cells = {n: m for n, m in source.named_modules() if isinstance(m, _CELLS)}
    target_cells = {n: m for n, m in target.named_modules() if isinstance(m, _CELLS)}
    if source_cells.keys() != target_cells.keys():
        raise ValueError(
            f"models have ConvLSTM cells at different places: {sorted(source_cells)} vs "
            f"{sorted(target_cells)}"
        )
    for name, cell in source_cells.items():
        _copy_cell(cell, target_cells[name])
    prefixes = tuple(f"{name}." for name in source_cells)
    rest = {k: v for k, v in source.state_dict().items() if not k.startswith(prefixes)}
    result = target.load_state_dict(rest, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(prefixes)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"models do not line up: missing {missing}, unexpected {result.unexpected_keys}"
        )
