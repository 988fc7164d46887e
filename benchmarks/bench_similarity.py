"""Latency of a k-nearest-neighbour query in latent space (`LatentIndex`).

Builds an index of 1,000,000 (by default) 128-d latents, then times single
queries (k = 10) for galaxies of the set, and checks every answer against
brute force. Two kinds of latents: clustered near a 10-dimensional
manifold (as learned representations are) and isotropic Gaussian noise
(the worst case for the pruning: the answer stays exact, it just checks
more candidates).

Run: ``python benchmarks/bench_similarity.py [--n 1000000] [--queries 50]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ifsrepr.scoring import LatentIndex


def latents(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        return rng.normal(size=(n, d)).astype(np.float32)
    centres = rng.normal(scale=3.0, size=(20, 10))
    low = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 10))
    return (low @ rng.normal(size=(10, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for kind in ("clustered", "noise"):
        data = latents(kind, args.n, args.dim, rng)
        start = time.perf_counter()
        index = LatentIndex(data)
        build = time.perf_counter() - start
        rows = rng.choice(args.n, args.queries, replace=False)
        times = []
        for row in rows:
            start = time.perf_counter()
            _, found = index.query(data[row], args.k, exclude=[row])
            times.append(time.perf_counter() - start)
            exact = np.einsum("ij,ij->i", data - data[row], data - data[row])
            exact[row] = np.inf
            truth = np.argsort(exact, kind="stable")[: args.k]
            assert set(found[0]) == set(truth), (kind, row)
        start = time.perf_counter()
        for row in rows[:5]:
            difference = data - data[row]
            np.argpartition(np.einsum("ij,ij->i", difference, difference), args.k)
        brute = (time.perf_counter() - start) / 5
        times_ms = np.array(times) * 1e3
        print(
            f"{kind:>9}: {args.n:,} x {args.dim}-d, index built in {build:.2f} s; "
            f"query k={args.k}: "
            f"median {np.median(times_ms):.1f} ms, 95th percentile "
            f"{np.percentile(times_ms, 95):.1f} ms, max {times_ms.max():.1f} ms "
            f"(all {args.queries} exact); plain brute force {brute * 1e3:.0f} ms",
            flush=True,
        )
        del data, index
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
