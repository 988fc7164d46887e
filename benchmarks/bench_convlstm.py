"""Throughput of the ``convlstm`` autoencoder: fast ConvLSTM cell against the per-step reference.

Builds the same autoencoder three times with identical weights, differing only
in the ConvLSTM implementation:

``fast``
    input-to-state convolutions for all steps in batched calls, recurrence as
    one autograd node with hand-written backpropagation (the default);
``batched``
    the same batched input convolutions, recurrence through plain autograd;
``reference``
    one convolution over ``concat(x_t, h_{t-1})`` per step, as most public
    ConvLSTM code does.

It checks that the three give the same reconstruction, then times, in
rounds that interleave the implementations (so that a busy machine slows them
alike), two parts:

``model``
    the whole autoencoder: training steps (forward + backward + Adam step on
    the masked weighted loss) and inference (forward under
    ``torch.inference_mode``);
``recurrent``
    its ConvLSTM layers alone (encoder and decoder, on precomputed front-end
    features, initial states and context): forward + backward, and forward.

Each round begins with ``--settle`` untimed batches, and per-batch times are
summarised by their median and their best (the least disturbed) round. For
each part it also counts the FLOPs (``torch.utils.flop_counter``: the
convolutions, their backward passes, the matrix products); the reference's
over the fast cell's is the speed-up to expect where both run their
convolutions equally fast. And it counts minor page faults per batch: memory
the system allocator maps afresh, which on CPU can cost as much as the
arithmetic.

Run ``python benchmarks/bench_convlstm.py`` (about 2-3 minutes on 2 CPU cores);
``--device cuda --bf16`` on a GPU; ``--cells fast --kinds infer --parts model``
times one implementation's inference alone, as in an encoding loop;
``--help`` for the options.

Measured on CPU (2026-11-28, torch 2.13, a 2-core AMD EPYC (Zen 4) VM shared
with other jobs; default model: 1 layer of 32 hidden channels on 16x16 maps,
peepholes; batch 16 x 19 lines x 64x64). Galaxies/s of ``fast``, and its
speed-up over ``reference`` (median rounds), over three runs (one with glibc's
allocator told to keep freed memory, see ``docs/benchmarks.rst``):

===================  =========================  =========================  ===========
part                 training                   inference                  fewer FLOPs
===================  =========================  =========================  ===========
whole model          33.5-34.6 (1.26-1.38x)     100-104 (1.21-1.32x)       1.27x
ConvLSTM layers      47.6-48.1 (1.24-1.41x)     148-154 (1.36-1.41x)       1.31x
===================  =========================  =========================  ===========

Inference alone in a process (``--kinds infer --parts model``, one cell per
run): ``fast`` 87-100 galaxies/s against 72-79 before the streaming of
2026-11-28 (see ``ifsrepr.models.convlstm``), ``reference`` 65-78; with the
bundled model's shapes (``--frontend 16 32 32 --batch 64``) ``fast`` 146-199
galaxies/s against 82-89 before, page faults per batch down from ~290,000 to
~12,000.

Earlier, with the previous version (same training path; inference then kept
every step's tensors and ran the front and back ends on all images at once):

=====================================  ===========================  ===========================
machine                                training, galaxies/s         inference, galaxies/s
=====================================  ===========================  ===========================
2-core AMD EPYC VM (shared, busy)      29.9 (1.38x; batched 1.18x)  89.9 (1.32x; batched 1.18x)
Xeon host, 2 pinned cores, idle        30.8 (1.33x; batched 1.18x)  82.9 (1.07x; batched 1.12x)
H200, fp32, batch 16                   398 (1.23x)                  1229 (1.40x)
H200, bf16 autocast, batch 16          404 (1.15x)                  1354 (1.28x)
H200, bf16 autocast, batch 128         3491 (1.02x)                 13098 (1.24x)
=====================================  ===========================  ===========================

The batched formulation does the same arithmetic as the per-step one; what
it saves is the zero-state convolution of the first step, the decoder's
input convolutions (its inputs are the same for every galaxy, so they are
convolved once per batch rather than once per galaxy and step), per-step
allocations and autograd nodes. On CPU both run their convolutions near the
cores' peak, so the speed-up is bounded by the ~1.3x fewer FLOPs (1.27x for
the whole model, whose front and back ends are the same for both); the 1.5x
aimed for is not reached. On the GPU a batch of 16 is bound by kernel
launches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ifsrepr.models import AutoencoderLoss, ConvLSTMAutoencoder, copy_weights

try:
    import resource
except ImportError:  # not on Windows: page faults are then not counted
    resource = None

CELLS = ("fast", "batched", "reference")
PARTS = ("model", "recurrent")


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where not available)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1..."
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (meant for GPUs)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lines", type=int, default=19)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=[32],
        help="ConvLSTM hidden channels per layer (several values: stacked layers)",
    )
    parser.add_argument(
        "--frontend",
        type=int,
        nargs="+",
        default=[16, 32],
        help="front-end channels per stride-2 level",
    )
    parser.add_argument("--no-peephole", action="store_true")
    parser.add_argument(
        "--cells", default=",".join(CELLS), help="comma-separated subset of " + ",".join(CELLS)
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="what to time: model (the whole autoencoder), recurrent (its ConvLSTM layers "
        "alone, on precomputed features, initial states and context), or both",
    )
    parser.add_argument(
        "--kinds", default="train,infer", help="train, infer, or both (comma-separated)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per implementation")
    parser.add_argument("--steps", type=int, default=2, help="batches per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per implementation")
    parser.add_argument(
        "--settle",
        type=int,
        default=1,
        help="untimed batches at the start of each round, after switching implementation",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args(argv)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_gradients(device: torch.device) -> float:
    """Largest relative gradient difference, fast vs reference, on a small float64 model."""
    torch.manual_seed(1)
    options = dict(hidden_channels=[6, 5], num_layers=2, frontend_channels=[4, 8], latent_dim=7)
    fast = ConvLSTMAutoencoder(5, 16, cell="fast", **options).double().to(device)
    ref = ConvLSTMAutoencoder(5, 16, cell="reference", **options).double().to(device)
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(0.3 * torch.randn_like(p))
    copy_weights(fast, ref)
    x = torch.randn(3, 5, 1, 16, 16, dtype=torch.float64, device=device)
    for model in (fast, ref):
        x_hat, latent, _ = model(x)
        (x_hat.square().sum() + latent.sin().sum()).backward()
    # Compare in the reference layout: copy the fast gradients in as weights.
    holder = ConvLSTMAutoencoder(5, 16, cell="fast", **options).double().to(device)
    converted = ConvLSTMAutoencoder(5, 16, cell="reference", **options).double().to(device)
    with torch.no_grad():
        for p, q in zip(holder.parameters(), fast.parameters(), strict=True):
            p.copy_(q.grad)
    copy_weights(holder, converted)
    worst = 0.0
    with torch.no_grad():
        for p, q in zip(converted.parameters(), ref.parameters(), strict=True):
            error = (p - q.grad).abs().max() / q.grad.abs().max().clamp_min(1e-30)
            worst = max(worst, float(error))
    return worst


def count_flops(run) -> tuple[float, float]:
    """FLOPs of ``run()``'s forward pass and of its backward pass (0 if it returns None).

    Counted by `torch.utils.flop_counter` from the aten calls actually made
    (convolutions, their backward passes and matrix products).
    """
    with FlopCounterMode(display=False) as counter:
        loss = run()
    forward = counter.get_total_flops()
    backward = 0
    if loss is not None:
        with FlopCounterMode(display=False) as counter:
            loss.backward()
        backward = counter.get_total_flops()
    return float(forward), float(backward)


def recurrent_part(model: ConvLSTMAutoencoder, batch: int, device: torch.device):
    """The ConvLSTM layers of ``model`` alone: a training step and an inference pass.

    Inputs as the autoencoder gives them: front-end features (time-major), the
    decoder's initial states and per-galaxy context, and the learned line
    queries. Training is forward and backward (gradients into the inputs too,
    as the front end and the latent projections need them), without the
    optimiser.
    """
    steps, (h, w) = model.n_lines, model.feature_size
    channels = model.frontend[-2].out_channels  # the last front-end convolution
    generator = torch.Generator(device="cpu").manual_seed(2)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    features = randn(steps, batch, channels, h, w)
    latent = randn(batch, model.latent_dim)
    with torch.no_grad():
        states = [(a.clone(), b.clone()) for a, b in model.initial_states(latent)]
        context = None
        if model.decoder_input == "latent":
            context = model.latent_to_input(latent).view(batch, -1, h, w)
    grad_out = randn(steps, batch, model.decoder_hidden[-1], h, w)
    grad_h = randn(batch, model.encoder_rnn.layers[-1].hidden_channels, h, w)

    def forward(train):
        inputs = [features, *(t for pair in states for t in pair)]
        if context is not None:
            inputs.append(context)
        leaves = [t.detach().requires_grad_(train) for t in inputs]
        feats, flat = leaves[0], leaves[1:]
        init = [(flat[2 * k], flat[2 * k + 1]) for k in range(len(states))]
        ctx = flat[2 * len(states)] if context is not None else None
        _, finals = model.encoder_rnn(feats, time_major=True)
        queries = model.line_queries.unsqueeze(1)
        outputs, _ = model.decoder_rnn(queries, init, time_major=True, context=ctx)
        return outputs, finals[-1][0]

    def train_step():
        model.zero_grad(set_to_none=True)
        outputs, h_last = forward(True)
        torch.autograd.backward([outputs, h_last], [grad_out, grad_h])

    def infer_step():
        with torch.inference_mode():
            forward(False)

    def flop_run():
        model.zero_grad(set_to_none=True)
        outputs, h_last = forward(True)
        return (outputs * grad_out).sum() + (h_last * grad_h).sum()

    return train_step, infer_step, flop_run


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for cell in cells:
        if cell not in CELLS:
            sys.exit(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for part in parts:
        if part not in PARTS:
            sys.exit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for kind in kinds:
        if kind not in ("train", "infer"):
            sys.exit(f"unknown kind {kind!r}; choose from train, infer")
    options = dict(
        hidden_channels=args.hidden,
        num_layers=len(args.hidden),
        frontend_channels=args.frontend,
        peephole=not args.no_peephole,
    )
    autocast_dtype = torch.bfloat16 if args.bf16 else None

    gradient_error = check_gradients(device)
    torch.manual_seed(0)
    models = {}
    for cell in cells:
        models[cell] = ConvLSTMAutoencoder(args.lines, args.size, cell=cell, **options).to(device)
        if len(models) > 1:
            copy_weights(models[cells[0]], models[cell])
    n_params = sum(p.numel() for p in models[cells[0]].parameters())
    optimisers = {c: torch.optim.Adam(m.parameters(), lr=1e-4) for c, m in models.items()}
    loss_fn = AutoencoderLoss()

    shape = (args.batch, args.lines, 1, args.size, args.size)
    x = torch.randn(shape, device=device)
    weight = torch.rand(shape, device=device) + 0.1
    weight[:, :, :, : args.size // 8] = 0  # a masked strip, as real maps have
    x = torch.where(weight > 0, x, float("nan"))

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    def model_train(cell):
        model, optimiser = models[cell], optimisers[cell]
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            x_hat, _, extras = model(x, weight)
        loss, _ = loss_fn(x_hat.float(), x, weight, extras)
        loss.backward()
        optimiser.step()

    def model_infer(cell):
        with torch.inference_mode(), autocast():
            models[cell](x, weight)

    def model_flops(cell):
        models[cell].zero_grad(set_to_none=True)
        x_hat, _, extras = models[cell](x, weight)
        return loss_fn(x_hat, x, weight, extras)[0]

    steps: dict = {}  # (part, cell, kind) -> callable
    flop_runs = {}  # (part, cell) -> callable returning a loss
    for cell in cells:
        if "model" in parts:
            steps[("model", cell, "train")] = lambda c=cell: model_train(c)
            steps[("model", cell, "infer")] = lambda c=cell: model_infer(c)
            flop_runs[("model", cell)] = lambda c=cell: model_flops(c)
        if "recurrent" in parts:
            train, infer, flop_run = recurrent_part(models[cell], args.batch, device)

            def wrap(step):
                def run():
                    with autocast():
                        step()

                return run

            steps[("recurrent", cell, "train")] = wrap(train)
            steps[("recurrent", cell, "infer")] = wrap(infer)
            flop_runs[("recurrent", cell)] = flop_run
    steps = {key: step for key, step in steps.items() if key[2] in kinds}

    # Same weights, same input: the implementations must agree.
    with torch.no_grad(), autocast():
        outputs = {c: models[c](x, weight)[0].float() for c in cells}
    agreement = {c: float((outputs[c] - outputs[cells[-1]]).abs().max()) for c in cells[:-1]}
    scale = float(outputs[cells[-1]].abs().max())

    for step in steps.values():
        for _ in range(args.warmup):
            step()
    synchronize(device)

    times = {key: [] for key in steps}
    faults = {key: 0 for key in steps}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for key, step in steps.items():
            # A few untimed batches first: the allocator's state after another
            # implementation is not this one's steady state.
            for _ in range(args.settle):
                step()
            synchronize(device)
            f0, t0 = minor_faults(), time.perf_counter()
            for _ in range(args.steps):
                step()
            synchronize(device)
            times[key].append((time.perf_counter() - t0) / args.steps)
            faults[key] += (minor_faults() - f0) / args.steps / args.rounds
    elapsed = time.perf_counter() - start
    # Counted after the timing, so that the training pass it makes does not
    # change the allocator's state ahead of an inference-only run.
    flops = {key: count_flops(run) for key, run in flop_runs.items()}

    threads = torch.get_num_threads()
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}), {threads} torch threads, "
        f"{os.cpu_count()} cores visible"
    )
    print(f"ConvLSTM autoencoder throughput on {where}")
    print(
        f"  torch {torch.__version__}, autocast {'bf16' if args.bf16 else 'off'}, "
        f"batch {args.batch}, "
        f"{args.lines} lines x {args.size}x{args.size}, hidden {args.hidden}, front end "
        f"{args.frontend} (recurrence on {args.size // 2 ** len(args.frontend)}x"
        f"{args.size // 2 ** len(args.frontend)}), peephole {not args.no_peephole}, "
        f"{n_params / 1e6:.2f} M parameters"
    )
    print(
        f"  {args.rounds} interleaved rounds x ({args.settle} untimed + {args.steps} timed "
        f"batches), {elapsed:.0f} s"
    )
    print(
        f"  gradients, fast vs reference cell (float64, small model): max relative "
        f"difference {gradient_error:.1e}"
    )
    for cell, diff in agreement.items():
        print(
            f"  max |x_hat({cell}) - x_hat({cells[-1]})| = {diff:.2e} (outputs up to {scale:.2f})"
        )
    print()
    print(
        "  model: the whole autoencoder (training: forward, backward, Adam); recurrent: its "
        "ConvLSTM layers alone"
    )
    header = (
        f"  {'part':<9} {'cell':<9} {'':<5} {'median s/batch':>14} {'best':>7} "
        f"{'galaxies/s':>10} {'speed-up (best)':>16} {'GFLOP':>7} {'fewer FLOPs':>11} "
        f"{'faults':>7}"
    )
    print(header)
    results = {
        "config": vars(args),
        "device": where,
        "torch": torch.__version__,
        "agreement": agreement,
        "gradient_error": gradient_error,
        "cells": {},
        "recurrent": {},
    }
    base = cells[-1]
    for part in parts:
        for kind in kinds:
            for cell in cells:
                key = (part, cell, kind)
                ts, ref = times[key], times[(part, base, kind)]
                median, best = statistics.median(ts), min(ts)
                ratio = statistics.median(ref) / median
                ratio_best = min(ref) / best
                forward, backward = flops[(part, cell)]
                gflop = (forward + backward if kind == "train" else forward) / 1e9
                base_forward, base_backward = flops[(part, base)]
                base_gflop = (
                    base_forward + base_backward if kind == "train" else base_forward
                ) / 1e9
                print(
                    f"  {part:<9} {cell:<9} {kind:<5} {median:>14.4f} {best:>7.4f} "
                    f"{args.batch / median:>10.1f} {ratio:>7.2f}x ({ratio_best:.2f}x) "
                    f"{gflop:>7.1f} {base_gflop / gflop:>10.2f}x {faults[key]:>7.0f}"
                )
                entry = {
                    "median_s_per_batch": median,
                    "best_s_per_batch": best,
                    "galaxies_per_s": args.batch / median,
                    "s_per_galaxy": median / args.batch,
                    f"speedup_vs_{base}": ratio,
                    f"speedup_vs_{base}_best": ratio_best,
                    "gflop_per_batch": gflop,
                    f"flop_ratio_{base}_over_this": base_gflop / gflop,
                    "minor_page_faults_per_batch": faults[key],
                    "all_s_per_batch": ts,
                }
                target = results["cells"] if part == "model" else results["recurrent"]
                target.setdefault(cell, {})[kind] = entry
    print()
    print(
        "  fewer FLOPs: the reference's counted FLOPs over this implementation's (convolutions "
        "and matrix products), the speed-up to expect where both run their convolutions equally "
        "fast; faults: minor page faults per batch (fresh memory mapped by the allocator)"
    )
    if "fast" in cells and "model" in parts and "train" in kinds:
        per_galaxy = statistics.median(times[("model", "fast", "train")]) / args.batch
        print(
            f"  training budget: {per_galaxy:.3f} s/galaxy -> 1000 galaxies x 20 epochs "
            f"~ {per_galaxy * 20000 / 60:.0f} min"
        )
        results["train_minutes_1000x20"] = per_galaxy * 20000 / 60
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
