"""A ConvLSTM layer's recurrence as one autograd node with hand-written backpropagation.

Used by `ifsrepr.models.convlstm.ConvLSTMCell` (``fused=True``, the default).
Autograd would record ~10 element-wise nodes per step, each allocating its
output and, in the backward pass, its gradient; here the forward pass updates
the gates in place and the backward pass computes each step's gate gradients
with a handful of in-place operations into one preallocated tensor, which is
also handed back as the gradient of the (batched) input-to-state
convolution. Results equal autograd's to rounding (checked by the tests
against `ifsrepr.models.reference.ReferenceConvLSTMCell` and gradcheck).

Without autograd (``torch.no_grad``, ``torch.inference_mode``) the same
forward pass runs outside the autograd node and keeps no step's tensors, so
the allocator reuses the same buffers step after step; its input gates may
then come from a generator, one chunk at a time.

On CPU ``tanh`` is evaluated as ``2 * sigmoid(2 x) - 1``: the same function,
and PyTorch's CPU sigmoid kernel measured ~5x faster than its tanh kernel.

Under autocast the convolutions run in the autocast dtype while the cell
state and the element-wise updates stay in the parameters' dtype, as
recommended for recurrent networks in reduced precision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["fused_convlstm"]

_conv_backward = torch.ops.aten.convolution_backward


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """In-place ``tanh``; on CPU through the faster sigmoid kernel."""
    if x.device.type != "cpu":
        # On GPUs tanh is as fast as sigmoid, and one kernel launch beats four.
        return x.tanh_()
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def _sigmoid_grad_(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad * y * (1 - y)`` in place, for ``y = sigmoid(x)``."""
    grad.mul_(y)
    return grad.addcmul_(grad, y, value=-1.0)


def _reduce_like(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``x`` over the batch axis and any axis broadcast in ``shape`` (peephole grads)."""
    x = x.sum(0)
    dims = [d for d, n in enumerate(shape) if n == 1 and x.shape[d] != 1]
    return x.sum(dims, keepdim=True) if dims else x


def _compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return dtype


def _recurrence(
    hidden: int,
    padding: int,
    batch: int,
    h0: torch.Tensor | None,
    c0: torch.Tensor | None,
    weight: torch.Tensor,
    peepholes: tuple[Any, Any, Any],
    context: torch.Tensor | None,
    chunks: Iterable[torch.Tensor],
    *,
    steps: int,
    cdtype: torch.dtype,
    keep: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """The forward recurrence; with ``keep``, also each step's activations, cell states, tanh's.

    Without ``keep`` (no gradient wanted) nothing is held past its step, so the
    allocator hands the same buffers back step after step; ``chunks`` may then
    be a generator that computes each chunk when it is reached.
    """
    peep_i, peep_f, peep_o = peepholes
    peephole = peep_i is not None
    dtype = weight.dtype
    device = weight.device
    acts: list[torch.Tensor] = []
    cells: list[torch.Tensor] = []
    tanhs: list[torch.Tensor] = []
    with torch.autocast(device.type, enabled=False):
        weight_c = weight.to(cdtype)
        out: torch.Tensor | None = None
        h_prev, c_prev = h0, c0
        step = 0
        for chunk in chunks:
            if out is None:
                shape = (steps, batch, hidden, *chunk.shape[3:])
                out = torch.empty(shape, dtype=dtype, device=device)
            for gx in chunk.unbind(0):
                if h_prev is None:
                    gates = gx.to(dtype).expand(batch, *gx.shape[1:]).clone()
                else:
                    gates = F.conv2d(h_prev.to(cdtype), weight_c, padding=padding).to(dtype)
                    gates.add_(gx)
                if context is not None:
                    gates.add_(context)
                i = gates[:, :hidden]
                f = gates[:, hidden : 2 * hidden]
                o = gates[:, 2 * hidden : 3 * hidden]
                g = gates[:, 3 * hidden :]
                if peephole and c_prev is not None:
                    i.addcmul_(c_prev, peep_i)
                    f.addcmul_(c_prev, peep_f)
                # With peepholes o needs the new cell state, so it is activated later.
                gates[:, : (2 if peephole else 3) * hidden].sigmoid_()
                _tanh_(g)
                c = i * g
                if c_prev is not None:
                    c.addcmul_(f, c_prev)
                if peephole:
                    o.addcmul_(c, peep_o).sigmoid_()
                tanh_c = _tanh_(c.clone())
                torch.mul(o, tanh_c, out=out[step])
                if keep:
                    acts.append(gates)
                    cells.append(c)
                    tanhs.append(tanh_c)
                h_prev, c_prev = out[step], c
                step += 1
            # Drop this chunk before the next one is computed (a generator's).
            del chunk, gx
    assert out is not None and c_prev is not None and step == steps
    return out, c_prev, acts, cells, tanhs


class _FusedConvLSTM(torch.autograd.Function):
    """Inputs: ``hidden, padding, batch, h0, c0, weight, peep_i, peep_f, peep_o, context, *chunks``.

    ``chunks`` are the precomputed input-to-state gates, each
    ``(steps_in_chunk, batch or 1, 4 * hidden, h, w)``; ``context`` (optional,
    ``(batch, 4 * hidden, h, w)``) is added at every step. Returns the stacked
    hidden states ``(steps, batch, hidden, h, w)`` and the final cell state.
    """

    @staticmethod
    def forward(ctx: Any, hidden: int, padding: int, batch: int, *args: Any) -> Any:
        h0, c0, weight, peep_i, peep_f, peep_o, context, *chunks = args
        peephole = peep_i is not None
        cdtype = _compute_dtype(weight.device, weight.dtype)
        out, c_prev, acts, cells, tanhs = _recurrence(
            hidden,
            padding,
            batch,
            h0,
            c0,
            weight,
            (peep_i, peep_f, peep_o),
            context,
            chunks,
            steps=sum(chunk.shape[0] for chunk in chunks),
            cdtype=cdtype,
            keep=True,
        )
        steps = out.shape[0]
        ctx.hidden, ctx.padding, ctx.batch = hidden, padding, batch
        ctx.chunk_shapes = [chunk.shape for chunk in chunks]
        ctx.chunk_dtypes = [chunk.dtype for chunk in chunks]
        ctx.has_state = h0 is not None
        ctx.peephole = peephole
        ctx.cdtype = cdtype
        ctx.steps = steps
        ctx.set_materialize_grads(False)
        ctx.has_context = context is not None
        ctx.context_dtype = context.dtype if context is not None else None
        ctx.save_for_backward(h0, c0, weight, peep_i, peep_f, peep_o, out, *acts, *cells, *tanhs)
        return out, c_prev

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_c_last: torch.Tensor | None) -> Any:
        steps, hidden, padding = ctx.steps, ctx.hidden, ctx.padding
        saved = ctx.saved_tensors
        h0, c0, weight, peep_i, peep_f, peep_o, out = saved[:7]
        acts = saved[7 : 7 + steps]
        cells = saved[7 + steps : 7 + 2 * steps]
        tanhs = saved[7 + 2 * steps :]
        peephole = ctx.peephole
        device = weight.device
        cdtype = ctx.cdtype
        need_h0, need_c0, need_w = ctx.needs_input_grad[3:6]
        need_peep = peephole and any(ctx.needs_input_grad[6:9])
        need_context = ctx.has_context and ctx.needs_input_grad[9]
        grad_context = None

        grad_w = torch.zeros_like(weight) if need_w else None
        grad_peep = [torch.zeros_like(p) for p in (peep_i, peep_f, peep_o)] if need_peep else None
        grad_chunks = [
            torch.empty(shape, dtype=out.dtype, device=device) for shape in ctx.chunk_shapes
        ]
        # Map each step to its slot in the chunk gradients.
        slots = [(k, j) for k, shape in enumerate(ctx.chunk_shapes) for j in range(shape[0])]

        dh_next: torch.Tensor | None = None
        dc_next = grad_c_last
        with torch.autocast(device.type, enabled=False):
            weight_c = weight.to(cdtype)
            for t in range(steps - 1, -1, -1):
                act, c, tanh_c = acts[t], cells[t], tanhs[t]
                i = act[:, :hidden]
                f = act[:, hidden : 2 * hidden]
                o = act[:, 2 * hidden : 3 * hidden]
                g = act[:, 3 * hidden :]
                if t > 0:
                    h_prev, c_prev = out[t - 1], cells[t - 1]
                else:
                    h_prev, c_prev = h0, c0
                dh = grad_out[t] if grad_out is not None else None
                if dh_next is not None:
                    dh = dh_next if dh is None else dh + dh_next
                k, j = slots[t]
                broadcast = ctx.chunk_shapes[k][1] != ctx.batch
                dgates = torch.empty_like(act) if broadcast else grad_chunks[k][j]
                if dh is None and dc_next is None:
                    dgates.zero_()
                    dc_prev = None
                else:
                    di = dgates[:, :hidden]
                    df = dgates[:, hidden : 2 * hidden]
                    do = dgates[:, 2 * hidden : 3 * hidden]
                    dg = dgates[:, 3 * hidden :]
                    # dc = dc_next + dh * o * (1 - tanh(c)^2) [+ do_pre * W_co]
                    if dh is not None:
                        torch.mul(dh, tanh_c, out=do)
                        _sigmoid_grad_(do, o)
                        dc = torch.mul(tanh_c, tanh_c).neg_().add_(1.0).mul_(o).mul_(dh)
                        if dc_next is not None:
                            dc.add_(dc_next)
                    else:
                        do.zero_()
                        dc = dc_next.clone()
                    if peephole:
                        dc.addcmul_(do, peep_o)
                        if need_peep:
                            grad_peep[2].add_(_reduce_like(do * c, peep_o.shape))
                    torch.mul(dc, g, out=di)
                    _sigmoid_grad_(di, i)
                    torch.mul(dc, i, out=dg)
                    dg.addcmul_(dg * g, g, value=-1.0)
                    if c_prev is not None:
                        torch.mul(dc, c_prev, out=df)
                        _sigmoid_grad_(df, f)
                        dc_prev = dc.mul_(f)
                        if peephole:
                            dc_prev.addcmul_(di, peep_i).addcmul_(df, peep_f)
                            if need_peep:
                                grad_peep[0].add_(_reduce_like(di * c_prev, peep_i.shape))
                                grad_peep[1].add_(_reduce_like(df * c_prev, peep_f.shape))
                    else:
                        df.zero_()
                        dc_prev = None
                if broadcast:
                    grad_chunks[k][j].copy_(dgates.sum(0, keepdim=True))
                if need_context:
                    if grad_context is None:
                        grad_context = dgates.clone()
                    else:
                        grad_context.add_(dgates)
                dh_next = None
                if h_prev is not None:
                    mask = [t > 0 or need_h0, need_w, False]
                    if mask[0] or mask[1]:
                        gi, gw, _ = _conv_backward(
                            dgates.to(cdtype),
                            h_prev.to(cdtype),
                            weight_c,
                            None,
                            [1, 1],
                            [padding, padding],
                            [1, 1],
                            False,
                            [0, 0],
                            1,
                            mask,
                        )
                        if gw is not None:
                            grad_w.add_(gw)
                        if gi is not None:
                            dh_next = gi.to(out.dtype)
                dc_next = dc_prev
        grad_chunks = [g.to(dt) for g, dt in zip(grad_chunks, ctx.chunk_dtypes, strict=True)]
        grad_h0 = dh_next if (ctx.has_state and need_h0) else None
        grad_c0 = dc_next if (ctx.has_state and need_c0) else None
        peeps = grad_peep if grad_peep is not None else [None, None, None]
        if grad_context is not None:
            grad_context = grad_context.to(ctx.context_dtype)
        return (None, None, None, grad_h0, grad_c0, grad_w, *peeps, grad_context, *grad_chunks)


def fused_convlstm(
    chunks: Iterable[torch.Tensor],
    state: tuple[torch.Tensor, torch.Tensor] | None,
    weight: torch.Tensor,
    peepholes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    context: torch.Tensor | None = None,
    *,
    hidden: int,
    padding: int,
    batch: int,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence; return stacked hidden states ``(T, B, H, h, w)`` and the last cell state.

    Parameters
    ----------
    chunks : list of tensor
        Input-to-state gates (bias included), ``(steps, batch or 1, 4H, h, w)`` each.
        Under ``torch.no_grad`` or ``torch.inference_mode``, any iterable, e.g. a
        generator computing each chunk when the recurrence reaches it
        (``steps`` is then required).
    state : (h0, c0), optional
        Initial states; None for zeros (the first state convolution is skipped).
    weight : tensor
        State-to-state kernel ``(4H, H, k, k)``.
    peepholes : (W_ci, W_cf, W_co), optional
        Peephole weights.
    context : tensor, optional
        ``(batch, 4H, h, w)`` gates added at every step (a per-sequence input).
    hidden, padding, batch : int
        Hidden channels, convolution padding, batch size.
    steps : int, optional
        Number of steps (the chunks' lengths summed), needed for a generator.
    """
    h0, c0 = state if state is not None else (None, None)
    peep = peepholes if peepholes is not None else (None, None, None)
    if not isinstance(chunks, (list, tuple)) and torch.is_grad_enabled():
        chunks = list(chunks)  # autograd may need them all: no streaming
    if isinstance(chunks, (list, tuple)):
        tensors = [h0, c0, weight, *peep, context, *chunks]
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            return _FusedConvLSTM.apply(hidden, padding, batch, *tensors)
        steps = sum(chunk.shape[0] for chunk in chunks)
    elif steps is None:
        raise ValueError("fused_convlstm: steps is required when chunks is not a list")
    # No gradient wanted: the plain forward pass, keeping nothing for a backward one.
    out, c, *_ = _recurrence(
        hidden,
        padding,
        batch,
        h0,
        c0,
        weight,
        peep,
        context,
        chunks,
        steps=steps,
        cdtype=_compute_dtype(weight.device, weight.dtype),
        keep=False,
    )
    return out, c
