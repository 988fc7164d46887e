"""The ConvLSTM autoencoder (architecture ``convlstm``).

A galaxy's emission-line maps, in wavelength order, are read as a sequence:

1. a small strided CNN (shared by all lines) shrinks every map, e.g. 64x64 -> 16x16;
2. a ConvLSTM (Shi et al. 2015, arXiv:1506.04214) runs over the lines;
3. its final hidden state is flattened and projected to the latent vector;
4. the decoder mirrors this: latent -> initial hidden and cell states -> a
   ConvLSTM unrolled over the lines -> transposed convolutions -> one map per line.

Speed
-----
Shi et al.'s gates are ``W_x * x_t + W_h * h_{t-1} + b`` (``*`` a convolution).
The input-to-state term does not depend on the recurrence, so `ConvLSTMCell`
computes it for every step in one convolution over ``(steps * batch)`` images
and leaves only ``W_h * h_{t-1}`` inside the sequential loop. The usual
per-step formulation (one convolution over ``concat(x_t, h_{t-1})``, see
`ifsrepr.models.reference`) does the same arithmetic in many small calls.
The decoder's inputs are learned per-line maps shared by every galaxy, so
their input-to-state convolution is computed once per batch, not once per
galaxy.

At these sizes the convolutions of both formulations run near the CPU's peak,
so the speed-up is bounded by the ratio of their arithmetic: about 1.3x fewer
FLOPs for the recurrent layers, 1.27x for the whole autoencoder with the
default options (``benchmarks/bench_convlstm.py`` counts and times both).

Memory
------
On CPU much of an inference pass's time went to the system allocator mapping
fresh pages for large intermediate maps, on every call. Without autograd,
therefore, the front and back ends run a chunk of images at a time
(`ConvLSTMAutoencoder.CPU_CHUNK_BYTES`), and the fast cell computes each
chunk of input gates only when the recurrence reaches it and keeps nothing
for a backward pass. The results are the same; with training, nothing
changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    SequenceAutoencoder,
    check_choice,
    check_int,
    check_int_list,
    downsampled_size,
)
from .errors import ModelConfigError
from .fused import fused_convlstm
from .layers import DownsamplingCNN, UpsamplingCNN

__all__ = ["ConvLSTM", "ConvLSTMAutoencoder", "ConvLSTMCell", "State"]

#: ``(h, c)``, each ``(batch, hidden_channels, height, width)``.
State = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """A ConvLSTM layer that batches its input-to-state convolution over all steps.

    Gates, in channel order ``i, f, o, g`` (the order most public
    implementations use, so weights interchange with `ReferenceConvLSTMCell`)::

        i = sigmoid(W_xi * x_t + W_hi * h + W_ci o c + b_i)
        f = sigmoid(W_xf * x_t + W_hf * h + W_cf o c + b_f)
        g = tanh(W_xg * x_t + W_hg * h + b_g)
        c' = f o c + i o g
        o = sigmoid(W_xo * x_t + W_ho * h + W_co o c' + b_o)
        h' = o o tanh(c')

    where ``*`` is a convolution and ``o`` the element-wise product; the
    ``W_c`` peephole terms are optional.

    Parameters
    ----------
    input_channels : int
        Channels of each step's input.
    hidden_channels : int
        Channels of the hidden and cell states.
    kernel_size : int
        Odd size of both convolution kernels.
    peephole : bool
        Include the peephole terms ``W_ci, W_cf, W_co``.
    spatial_size : (int, int), optional
        Feature-map size. With it the peephole weights are full maps (the
        Hadamard product of the paper); without it, one weight per channel.
    fused : bool
        Run the recurrence as one autograd node with hand-written
        backpropagation (`ifsrepr.models.fused`); False uses plain autograd
        over per-step operations. Same results either way.

    Examples
    --------
    One layer over a batch of two sequences of five 3-channel 8x8 maps:

    >>> import torch
    >>> from ifsrepr.models import ConvLSTMCell
    >>> cell = ConvLSTMCell(3, 4, peephole=True)
    >>> outputs, (h, c) = cell(torch.randn(2, 5, 3, 8, 8))
    >>> tuple(outputs.shape), tuple(h.shape), tuple(c.shape)
    ((2, 5, 4, 8, 8), (2, 4, 8, 8), (2, 4, 8, 8))
    >>> torch.equal(outputs[:, -1], h)  # the last output is the final hidden state
    True
    """

    #: Largest input-gate chunk computed in one convolution on CPU (see `input_gates`).
    CPU_CHUNK_BYTES = 8 * 2**20

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        *,
        kernel_size: int = 3,
        peephole: bool = False,
        spatial_size: tuple[int, int] | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.peephole = peephole
        self.fused = fused
        padding = kernel_size // 2
        # The bias lives on the input convolution: it is applied once, in the
        # batched call, instead of once per step.
        self.input_conv = nn.Conv2d(
            input_channels, 4 * hidden_channels, kernel_size, padding=padding
        )
        self.state_conv = nn.Conv2d(
            hidden_channels, 4 * hidden_channels, kernel_size, padding=padding, bias=False
        )
        if peephole:
            shape = (hidden_channels, *(spatial_size or (1, 1)))
            self.peephole_i = nn.Parameter(torch.zeros(shape))
            self.peephole_f = nn.Parameter(torch.zeros(shape))
            self.peephole_o = nn.Parameter(torch.zeros(shape))
        with torch.no_grad():
            # A forget-gate bias of 1 lets gradients through the early steps at
            # the start of training (Jozefowicz et al. 2015).
            self.input_conv.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def input_gates(
        self, inputs: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """``W_x * x_t + b`` for every step, and ``W_x * context`` if there is a context.

        ``inputs`` ``(T, B, C, h, w)`` gives chunks ``(k, B, 4H, h, w)``: one
        convolution over all ``T * B`` images on GPU. On CPU the steps are cut
        into chunks whose gates take at most `CPU_CHUNK_BYTES`: the result is
        identical, and it avoids one large fresh allocation that the system
        allocator maps anew (and page-faults through) on every call, which
        measured slower than the convolution itself.

        A ``context`` ``(B, C, h, w)`` is an input added at every step. Since
        ``W_x * (x_t + u) = W_x * x_t + W_x * u``, it costs one convolution per
        sequence, returned separately (``(B, 4H, h, w)``, no bias) rather than
        added into a ``(T, B, ...)`` tensor.
        """
        chunks = list(self._input_gate_chunks(inputs))
        return chunks, self._context_gates(context)

    def _input_gate_chunks(self, inputs: torch.Tensor) -> Iterator[torch.Tensor]:
        """The chunks of `input_gates`, one convolution each, computed as they are asked for."""
        steps, batch = inputs.shape[:2]
        per_step = batch * 4 * self.hidden_channels * inputs.shape[3] * inputs.shape[4]
        per_step *= self.input_conv.weight.element_size()
        if inputs.device.type == "cpu":
            size = max(1, min(steps, self.CPU_CHUNK_BYTES // max(per_step, 1)))
        else:
            size = steps
        # The chunks are computed where the recurrence asks for them, which may
        # be under another autocast state: use the caller's.
        device_type = inputs.device.type
        autocast_state = {
            "device_type": device_type,
            "enabled": torch.is_autocast_enabled(device_type),
            "dtype": torch.get_autocast_dtype(device_type),
        }

        def chunk(part: torch.Tensor) -> torch.Tensor:
            with torch.autocast(**autocast_state):
                gates = self.input_conv(part.reshape(part.shape[0] * batch, *part.shape[2:]))
            return gates.unflatten(0, (part.shape[0], batch))

        # chunk() holds no reference once it returns: the generator does not keep
        # one chunk alive while it computes the next.
        return (chunk(part) for part in inputs.split(size, dim=0))

    def _context_gates(self, context: torch.Tensor | None) -> torch.Tensor | None:
        if context is None:
            return None
        return F.conv2d(context, self.input_conv.weight, padding=self.kernel_size // 2)

    def forward(
        self,
        inputs: torch.Tensor,
        state: State | None = None,
        *,
        time_major: bool = False,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:
        """Run the layer over a sequence.

        Parameters
        ----------
        inputs : tensor
            ``(batch, steps, channels, h, w)``, or ``(steps, batch, ...)`` with
            ``time_major=True``. A batch of 1 is broadcast against a larger
            ``state`` or ``context`` (inputs shared by every sequence).
        state : (h, c), optional
            Initial states; zeros when omitted.
        time_major : bool
            Whether ``inputs`` and the returned outputs have the step axis first.
        context : tensor, optional
            ``(batch, channels, h, w)`` added to the input of every step.

        Returns
        -------
        outputs : tensor
            Hidden state after each step, laid out like ``inputs``.
        state : (h, c)
            The final states.
        """
        if not time_major:
            inputs = inputs.transpose(0, 1)
        batch = inputs.shape[1]
        if context is not None:
            batch = context.shape[0]
        elif state is not None:
            batch = state[0].shape[0]
        # Time-major, so that each step's slice of the precomputed gates is contiguous.
        chunks: Iterable[torch.Tensor]
        if self.fused and not torch.is_grad_enabled():
            # Inference: each chunk of input gates is computed when the recurrence
            # reaches it and freed after it (nothing is kept for a backward pass).
            chunks = self._input_gate_chunks(inputs)
            context_gates = self._context_gates(context)
        else:
            chunks, context_gates = self.input_gates(inputs, context)
        if self.fused:
            peepholes = (
                (self.peephole_i, self.peephole_f, self.peephole_o) if self.peephole else None
            )
            outputs, c = fused_convlstm(
                chunks,
                state,
                self.state_conv.weight,
                peepholes,
                context_gates,
                hidden=self.hidden_channels,
                padding=self.kernel_size // 2,
                batch=batch,
                steps=inputs.shape[0],
            )
            h = outputs[-1]
        else:
            outputs, (h, c) = self._loop(chunks, state, context_gates)
        if not time_major:
            outputs = outputs.transpose(0, 1)
        return outputs, (h, c)

    def _loop(
        self,
        chunks: Iterable[torch.Tensor],
        state: State | None,
        context_gates: torch.Tensor | None,
    ) -> tuple[torch.Tensor, State]:
        """The recurrence with plain autograd (``fused=False``)."""
        hidden = self.hidden_channels
        h: torch.Tensor | None = None
        c: torch.Tensor | None = None
        if state is not None:
            h, c = state
        outputs = []
        for chunk in chunks:
            # unbind, not chunk[step]: each indexing op's backward would allocate
            # and zero-fill a gradient the size of the whole chunk, once per step.
            for gates in chunk.unbind(0):
                if context_gates is not None:
                    gates = gates + context_gates
                if h is not None:
                    # With a zero initial state W_h * h is zero: skip the convolution.
                    gates = gates + self.state_conv(h)
                h, c = self._update(gates, c, hidden)
                outputs.append(h)
        assert h is not None and c is not None
        return torch.stack(outputs), (h, c)

    def _update(
        self, gates: torch.Tensor, c: torch.Tensor | None, hidden: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.tanh(gates[:, 3 * hidden :])
        if not self.peephole:
            # i, f, o are adjacent channels: one sigmoid call instead of three.
            sig = torch.sigmoid(gates[:, : 3 * hidden])
            i, f, o = sig[:, :hidden], sig[:, hidden : 2 * hidden], sig[:, 2 * hidden :]
            c_new = i * g if c is None else torch.addcmul(i * g, f, c)
        elif c is None:
            # Zero cell state: the i and f peepholes vanish, so i and f share one sigmoid.
            sig = torch.sigmoid(gates[:, : 2 * hidden])
            c_new = sig[:, :hidden] * g
        else:
            i = torch.sigmoid(torch.addcmul(gates[:, :hidden], self.peephole_i, c))
            f = torch.sigmoid(torch.addcmul(gates[:, hidden : 2 * hidden], self.peephole_f, c))
            c_new = torch.addcmul(i * g, f, c)
        if self.peephole:
            o = torch.sigmoid(
                torch.addcmul(gates[:, 2 * hidden : 3 * hidden], self.peephole_o, c_new)
            )
        return o * torch.tanh(c_new), c_new

    def extra_repr(self) -> str:
        """Summary shown by ``repr(module)``."""
        return (
            f"{self.input_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, "
            f"peephole={self.peephole}"
        )


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM layers; each layer reads the whole output sequence of the one below.

    Parameters
    ----------
    input_channels : int
        Channels of the input sequence.
    hidden_channels : sequence of int
        Hidden channels of each layer, bottom first.
    kernel_size : int
        Convolution kernel size.
    peephole : bool
        Peephole terms in every layer.
    spatial_size : (int, int), optional
        Feature-map size (for full-map peephole weights).
    cell : {"fast", "batched", "reference"}
        ``"fast"``: `ConvLSTMCell` (batched input convolution, fused
        recurrence); ``"batched"``: `ConvLSTMCell` with ``fused=False`` (plain
        autograd recurrence); ``"reference"``: `ReferenceConvLSTMCell` (one
        convolution on the concatenated input and state per step). All three
        compute the same function; the last two exist for tests and benchmarks.

    Examples
    --------
    Two stacked layers (4 then 6 hidden channels) over sequences of 3-channel maps:

    >>> import torch
    >>> from ifsrepr.models import ConvLSTM
    >>> stack = ConvLSTM(3, [4, 6])
    >>> outputs, states = stack(torch.randn(2, 5, 3, 8, 8))
    >>> tuple(outputs.shape), [tuple(h.shape) for h, c in states]
    ((2, 5, 6, 8, 8), [(2, 4, 8, 8), (2, 6, 8, 8)])

    The three cell implementations compute the same function:

    >>> from ifsrepr.models import copy_weights
    >>> reference = ConvLSTM(3, [4, 6], cell="reference")
    >>> copy_weights(stack, reference)
    >>> sequence = torch.randn(1, 5, 3, 8, 8)
    >>> torch.allclose(stack(sequence)[0], reference(sequence)[0], atol=1e-5)
    True
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: Sequence[int],
        *,
        kernel_size: int = 3,
        peephole: bool = False,
        spatial_size: tuple[int, int] | None = None,
        cell: str = "fast",
    ) -> None:
        super().__init__()
        extra: dict[str, Any] = {}
        if cell in ("fast", "batched"):
            cell_class: type[nn.Module] = ConvLSTMCell
            extra["fused"] = cell == "fast"
        elif cell == "reference":
            from .reference import ReferenceConvLSTMCell

            cell_class = ReferenceConvLSTMCell
        else:
            raise ModelConfigError(f"cell must be 'fast', 'batched' or 'reference', got {cell!r}")
        layers = []
        previous = input_channels
        for channels in hidden_channels:
            layers.append(
                cell_class(
                    previous,
                    channels,
                    kernel_size=kernel_size,
                    peephole=peephole,
                    spatial_size=spatial_size,
                    **extra,
                )
            )
            previous = channels
        self.layers = nn.ModuleList(layers)

    def forward(
        self,
        inputs: torch.Tensor,
        states: Sequence[State | None] | None = None,
        *,
        time_major: bool = False,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[State]]:
        """Run all layers; return the top layer's outputs and every layer's final state.

        ``context`` (added to every step's input) goes to the bottom layer only.
        """
        if states is None:
            states = [None] * len(self.layers)
        finals = []
        for layer, state in zip(self.layers, states, strict=True):
            inputs, final = layer(inputs, state, time_major=time_major, context=context)
            context = None
            finals.append(final)
        return inputs, finals


class ConvLSTMAutoencoder(SequenceAutoencoder):
    """ConvLSTM autoencoder of a wavelength-ordered stack of line maps.

    Parameters
    ----------
    n_lines : int
        Number of line maps (sequence steps).
    image_size : int or (int, int)
        Map size; each side must be divisible by ``2 ** len(frontend_channels)``.
    hidden_channels : int or sequence of int
        ConvLSTM hidden channels, one per encoder layer (the decoder mirrors them).
    num_layers : int
        Number of stacked ConvLSTM layers in the encoder and in the decoder.
    latent_dim : int
        Size of the latent vector.
    kernel_size : int
        Odd ConvLSTM kernel size.
    peephole : bool
        Shi et al.'s peephole terms (full-map Hadamard weights).
    variant : {"ae", "vae"}
        Plain autoencoder, or variational (latent mean and log-variance, with
        the reparameterisation trick while training).
    frontend_channels : sequence of int
        Channels of the stride-2 front-end levels; their number sets the
        downsampling (two levels: 64x64 -> 16x16).
    mask_channel : bool
        Feed the validity mask to the front end as a second channel, so the
        network can tell a masked pixel from a zero flux.
    decoder_input : {"latent", "queries"}
        The decoder's input at step t: a learned map for line t plus a
        projection of the latent (``"latent"``), or the learned map alone
        (``"queries"``: the galaxy reaches the decoder only through its
        initial states).
    cell : {"fast", "batched", "reference"}
        ConvLSTM implementation (see `ConvLSTM`); only ``"fast"`` is meant for
        use, the others exist for the equivalence tests and the benchmark.

    Examples
    --------
    A small network for three 16x16 line maps (the registered ``convlstm``
    architecture builds the same class):

    >>> import torch
    >>> from ifsrepr.models import ConvLSTMAutoencoder
    >>> model = ConvLSTMAutoencoder(3, 16, hidden_channels=4, latent_dim=8,
    ...                             frontend_channels=[4])
    >>> x = torch.randn(2, 3, 16, 16)
    >>> x[0, 1, :4] = float("nan")  # masked pixels are zeroed, never passed on
    >>> x_hat, latent, extras = model(x)
    >>> tuple(x_hat.shape), tuple(latent.shape), extras
    ((2, 3, 16, 16), (2, 8), {})
    >>> bool(torch.isfinite(latent).all())
    True
    >>> ConvLSTMAutoencoder(3, 18, frontend_channels=[4, 4])
    Traceback (most recent call last):
    ...
    ifsrepr.models.errors.ModelConfigError: architecture 'convlstm': image_size ...
    """

    architecture = "convlstm"

    #: Largest map a front- or back-end level produces in one call, in inference on CPU
    #: (see `_per_image`).
    CPU_CHUNK_BYTES = 8 * 2**20

    def __init__(
        self,
        n_lines: int = 19,
        image_size: int | Sequence[int] = 64,
        *,
        hidden_channels: int | Sequence[int] = 32,
        num_layers: int = 1,
        latent_dim: int = 128,
        kernel_size: int = 3,
        peephole: bool = True,
        variant: str = "ae",
        frontend_channels: Sequence[int] = (16, 32),
        mask_channel: bool = False,
        decoder_input: str = "latent",
        cell: str = "fast",
    ) -> None:
        name = self.architecture
        options: dict[str, Any] = {
            "hidden_channels": hidden_channels
            if isinstance(hidden_channels, int)
            else list(hidden_channels),
            "num_layers": num_layers,
            "latent_dim": latent_dim,
            "kernel_size": kernel_size,
            "peephole": peephole,
            "variant": variant,
            "frontend_channels": list(frontend_channels)
            if not isinstance(frontend_channels, int)
            else frontend_channels,
            "mask_channel": mask_channel,
            "decoder_input": decoder_input,
            "cell": cell,
        }
        super().__init__(n_lines, image_size, latent_dim, options)
        check_int(name, "num_layers", num_layers)
        hidden = check_int_list(name, "hidden_channels", hidden_channels, length=num_layers)
        front = check_int_list(name, "frontend_channels", frontend_channels)
        check_int(name, "kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ModelConfigError(
                f"architecture {name!r}: option kernel_size must be odd (to keep the map size), "
                f"got {kernel_size}"
            )
        self.variant = check_choice(name, "variant", variant, ("ae", "vae"))
        check_choice(name, "peephole", peephole, (True, False))
        check_choice(name, "mask_channel", mask_channel, (True, False))
        self.decoder_input = check_choice(
            name, "decoder_input", decoder_input, ("latent", "queries")
        )
        check_choice(name, "cell", cell, ("fast", "batched", "reference"))
        self.feature_size = downsampled_size(
            name, self.image_size, len(front), f"frontend_channels={list(front)}"
        )
        self.mask_channel = mask_channel
        spatial = self.feature_size
        n_pixels = spatial[0] * spatial[1]

        self.frontend_channels = front
        self.frontend = DownsamplingCNN(2 if mask_channel else 1, front)
        rnn_options = dict(
            kernel_size=kernel_size, peephole=peephole, spatial_size=spatial, cell=cell
        )
        self.encoder_rnn = ConvLSTM(front[-1], hidden, **rnn_options)
        self.to_latent = nn.Linear(
            hidden[-1] * n_pixels, latent_dim * (2 if variant == "vae" else 1)
        )

        self.decoder_hidden = tuple(reversed(hidden))
        self.from_latent = nn.Linear(latent_dim, 2 * sum(self.decoder_hidden) * n_pixels)
        # The decoder's input at step t is a learned map for line t, the same for
        # every galaxy: it tells the decoder which line to draw, while the galaxy
        # itself arrives through the initial states.
        self.line_queries = nn.Parameter(0.1 * torch.randn(n_lines, front[-1], *spatial))
        if decoder_input == "latent":
            # ... and optionally the latent too, at every step: a second, direct
            # path from the latent to every line, which shortens the early
            # plateau where a decoder fed only through its initial state draws
            # the mean galaxy.
            self.latent_to_input = nn.Linear(latent_dim, front[-1] * n_pixels)
        self.decoder_rnn = ConvLSTM(front[-1], self.decoder_hidden, **rnn_options)
        self.backend = UpsamplingCNN(self.decoder_hidden[-1], front, 1)

    def _encode_clean(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mask_channel:
            x = torch.cat([x, valid], dim=2)
        batch, steps = x.shape[:2]
        # Time-major from here on, so the recurrent layers see contiguous steps.
        images = x.transpose(0, 1).reshape(steps * batch, *x.shape[2:])
        features = self._per_image(self.frontend, images)
        features = features.view(steps, batch, *features.shape[1:])
        _, finals = self.encoder_rnn(features, time_major=True)
        h_last = finals[-1][0]
        out = self.to_latent(h_last.flatten(1))
        if self.variant == "vae":
            mu, logvar = out.chunk(2, dim=1)
            # Bounded log-variance keeps exp() finite early in training.
            return mu, logvar.clamp(-12.0, 12.0)
        return out, None

    def _per_image(self, module: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``module(images)``; in inference on CPU, a chunk of images at a time.

        The front and back ends work image by image, so the result is the same;
        chunks keep each intermediate map small enough for the allocator to
        reuse one buffer across chunks instead of mapping (and page-faulting
        through) fresh memory for every level on every call.
        """
        if torch.is_grad_enabled() or images.device.type != "cpu":
            return module(images)
        # An upper bound on any level's map per image: the widest level at half
        # the image size (the first front-end level, the last back-end one).
        height, width = self.image_size
        per_image = max(self.frontend_channels) * (height // 2) * (width // 2)
        per_image = max(per_image * images.element_size(), 1)
        size = max(1, self.CPU_CHUNK_BYTES // per_image)
        if size >= images.shape[0]:
            return module(images)
        return torch.cat([module(part) for part in images.split(size)])

    def initial_states(self, latent: torch.Tensor) -> list[State]:
        """Decoder initial ``(h, c)`` per layer from the latent vectors."""
        batch = latent.shape[0]
        flat = self.from_latent(latent)
        states = []
        offset = 0
        for channels in self.decoder_hidden:
            size = channels * self.feature_size[0] * self.feature_size[1]
            h = flat[:, offset : offset + size].view(batch, channels, *self.feature_size)
            c = flat[:, offset + size : offset + 2 * size].view(batch, channels, *self.feature_size)
            # h of an LSTM lives in (-1, 1); c is unbounded.
            states.append((torch.tanh(h), c))
            offset += 2 * size
        return states

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``(batch, n_lines, 1, H, W)`` normalised maps from the latent vectors."""
        batch = latent.shape[0]
        queries = self.line_queries.unsqueeze(1)  # (T, 1, C, h, w): broadcast over the batch
        context = None
        if self.decoder_input == "latent":
            context = self.latent_to_input(latent).view(batch, -1, *self.feature_size)
        outputs, _ = self.decoder_rnn(
            queries, self.initial_states(latent), time_major=True, context=context
        )
        steps = outputs.shape[0]
        images = self._per_image(self.backend, outputs.reshape(steps * batch, *outputs.shape[2:]))
        return images.view(steps, batch, *images.shape[1:]).transpose(0, 1)
