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

It checks that the three give the same reconstruction, then times training
steps (forward + backward + Adam step on the masked weighted loss) and
inference (forward under ``torch.inference_mode``). Rounds interleave the
implementations so that a busy machine slows them alike; per-batch times are
summarised by their median and their best (the least disturbed) round.

Run ``python benchmarks/bench_convlstm.py`` (about 1-2 minutes on 2 CPU cores);
``--device cuda --bf16`` on a GPU; ``--help`` for the options.

Measured (default model: 1 layer of 32 hidden channels on 16x16 maps, peepholes;
batch 16 x 19 lines x 64x64; speed-up of ``fast`` over ``reference``, median rounds):

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
allocations and autograd nodes. On CPU that is bounded by the ~1.3x fewer
convolution FLOPs; on the GPU a batch of 16 is bound by kernel launches.
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

from ifsrepr.models import AutoencoderLoss, ConvLSTMAutoencoder, copy_weights

CELLS = ("fast", "batched", "reference")


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
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per implementation")
    parser.add_argument("--steps", type=int, default=2, help="batches per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per implementation")
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

    def train_step(cell):
        model, optimiser = models[cell], optimisers[cell]
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            x_hat, _, extras = model(x, weight)
        loss, _ = loss_fn(x_hat.float(), x, weight, extras)
        loss.backward()
        optimiser.step()

    def infer_step(cell):
        with torch.inference_mode(), autocast():
            models[cell](x, weight)

    # Same weights, same input: the implementations must agree.
    with torch.no_grad(), autocast():
        outputs = {c: models[c](x, weight)[0].float() for c in cells}
    agreement = {c: float((outputs[c] - outputs[cells[-1]]).abs().max()) for c in cells[:-1]}
    scale = float(outputs[cells[-1]].abs().max())

    for cell in cells:
        for _ in range(args.warmup):
            train_step(cell)
            infer_step(cell)
    synchronize(device)

    times = {(c, k): [] for c in cells for k in ("train", "infer")}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for cell in cells:
            for kind, step in (("train", train_step), ("infer", infer_step)):
                synchronize(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step(cell)
                synchronize(device)
                times[(cell, kind)].append((time.perf_counter() - t0) / args.steps)
    elapsed = time.perf_counter() - start

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
    print(f"  {args.rounds} interleaved rounds x {args.steps} batches, {elapsed:.0f} s timed")
    print(
        f"  gradients, fast vs reference cell (float64, small model): max relative "
        f"difference {gradient_error:.1e}"
    )
    for cell, diff in agreement.items():
        print(
            f"  max |x_hat({cell}) - x_hat({cells[-1]})| = {diff:.2e} (outputs up to {scale:.2f})"
        )
    print()
    header = (
        f"  {'cell':<10} {'':<6} {'median s/batch':>15} {'best s/batch':>13} "
        f"{'galaxies/s':>11} {'s/galaxy':>9} {'speed-up':>9}"
    )
    print(header)
    results = {
        "config": vars(args),
        "device": where,
        "torch": torch.__version__,
        "agreement": agreement,
        "gradient_error": gradient_error,
        "cells": {},
    }
    base = cells[-1]
    for kind in ("train", "infer"):
        for cell in cells:
            ts = times[(cell, kind)]
            median, best = statistics.median(ts), min(ts)
            ratio = statistics.median(times[(base, kind)]) / median
            ratio_best = min(times[(base, kind)]) / best
            print(
                f"  {cell:<10} {kind:<6} {median:>15.4f} {best:>13.4f} "
                f"{args.batch / median:>11.1f} {median / args.batch:>9.4f} "
                f"{ratio:>5.2f}x ({ratio_best:.2f}x best)"
            )
            results["cells"].setdefault(cell, {})[kind] = {
                "median_s_per_batch": median,
                "best_s_per_batch": best,
                "galaxies_per_s": args.batch / median,
                "s_per_galaxy": median / args.batch,
                f"speedup_vs_{base}": ratio,
                f"speedup_vs_{base}_best": ratio_best,
                "all_s_per_batch": ts,
            }
    if "fast" in cells:
        per_galaxy = statistics.median(times[("fast", "train")]) / args.batch
        print()
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
