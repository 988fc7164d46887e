"""How long does `AnomalyScorer` take to score a survey's stored latents and errors?

Scores synthetic encodings of 10,000, 100,000 and 1,000,000 galaxies: 128-d
latents lying near a 10-dimensional manifold in 20 clusters (as learned
representations do; pure noise would be the worst case for the k-d tree),
19 per-line errors, error-map peaks. The reference is the survey itself
(what ``ifsrepr score survey.h5`` does), at most ``max_reference`` = 10,000
galaxies of it, and every galaxy is scored (in-sample). Encoding is not
timed: it is the network's forward pass, done once by ``ifsrepr encode``.

Run: ``python benchmarks/bench_scoring.py [--sizes 10000 100000 1000000]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ifsrepr.scoring import AnomalyScorer, Encoding

LINES = [f"L{i:02d}" for i in range(19)]


def synthetic_encoding(n: int, d: int = 128, seed: int = 0) -> Encoding:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(20, 10))
    low = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 10))
    mixing = rng.normal(size=(10, d))
    latents = (low @ mixing + 0.1 * rng.normal(size=(n, d))).astype(np.float32)
    error = rng.lognormal(0.0, 0.5, n)
    return Encoding(
        plateifu=np.char.add("g", np.arange(n).astype(str)),
        latents=latents,
        error=error,
        line_errors=error[:, None] * rng.lognormal(0.0, 0.3, (n, len(LINES))),
        n_good=np.full(n, 19 * 64 * 64),
        line_names=LINES,
        model_name="synthetic",
        model_sha256="0" * 64,
        peak=rng.integers(0, 64, (n, 2)),
        peak_error=error * rng.lognormal(1.0, 0.5, n),
        peak_contrast=rng.lognormal(1.0, 0.5, n),
        pixels_per_reff=np.full(n, 16.0),
        grid={"grid": "reff", "size": 64, "n_reff": 2.0},
        source="synthetic",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    # Warm up (imports of scikit-learn, first thread-pool start), not timed.
    AnomalyScorer().fit(synthetic_encoding(2000)).score()
    print(f"{'galaxies':>10} {'fit s':>8} {'score s':>8} {'total s':>8} {'galaxies/s':>11}")
    for n in args.sizes:
        encoding = synthetic_encoding(n)
        start = time.perf_counter()
        scorer = AnomalyScorer(n_jobs=args.n_jobs).fit(encoding)
        fitted = time.perf_counter()
        table = scorer.score()
        done = time.perf_counter()
        assert len(table) == n
        total = done - start
        print(
            f"{n:>10,} {fitted - start:>8.2f} {done - fitted:>8.2f} {total:>8.2f} "
            f"{n / total:>11,.0f}",
            flush=True,
        )
        del encoding, scorer, table
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
