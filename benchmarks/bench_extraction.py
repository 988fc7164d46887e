"""Extraction of 19 emission lines from a full-size MaNGA cube, against the alternatives.

A 74x74x4563 mock DR17 LOGCUBE (the 127-fibre size, made by ``ifsrepr.mock``)
is written uncompressed and gzipped to a temporary directory; then, in the
same run, each figure the median of ``--repeat`` rounds after a warm-up round
(the rounds interleave all the runs, so load from other jobs falls on all alike):

* **ifsrepr**: ``extract_lines(path, "manga19", redshift=z)`` (window method,
  stellar-continuum fit with templates, velocity-following bands, exact ivar,
  Galactic-extinction correction), on the ``.fits`` and on the ``.fits.gz``
  file, and the same with ``continuum="linear"`` (side-bands only). Given a
  path, ``extract_lines`` tells the reader which wavelengths it needs: an
  uncompressed cube is memory-mapped and only those channels are ever read; a
  gzipped one keeps only those channels as it is decompressed. For
  comparison, also ``ifsrepr.read`` of the whole gzipped cube, then
  ``extract_lines`` on it;
* **(a) the spectral-cube route**: ``SpectralCube.read(path, hdu="FLUX")`` and
  19 x ``spectral_slab(line ± 8 Å).moment0()`` on the same files (no
  continuum subtraction, no ivar, no mask);
* **(b) astropy**: ``fits.open`` of the ``.fits.gz`` and loading FLUX, IVAR
  and MASK, nothing else;
* **(c) the floor**: isal decompressing just the bytes of the HDUs needed
  (up to the end of MASK; the wavelength grid is in the header), nothing else;
* **(d) a floor for the uncompressed cube**: summing the channels of FLUX,
  IVAR and MASK that the linear-continuum extraction reads, nothing else.

It also shows that spectral-cube's ``moment0`` is wrong on MaNGA's log-lambda
axis (it multiplies every channel by the constant ``CD3_3``), and compares the
peak memory of extracting ``--n-cubes`` gzipped cubes one after the other
with that of one cube, each in a fresh process: Python's tracemalloc (which
sees numpy's allocations, touched or not) and the peak resident set size.

Run::

    python benchmarks/bench_extraction.py [--repeat 5] [--n-cubes 200]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from isal import igzip

import ifsrepr
from ifsrepr.lines import get_line_set


def timed(runs: dict, repeat: int) -> dict[str, list[float]]:
    """Wall times of each run, ``repeat`` rounds after one warm-up round.

    The rounds interleave the runs, so that load from other jobs on a shared
    machine falls on all of them alike; ratios are taken round by round.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeat + 1):
        for name, function in runs.items():
            gc.collect()
            started = time.perf_counter()
            function()
            if round_:
                times[name].append(time.perf_counter() - started)
    return times


def median_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over the rounds of time(a) / time(b)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def make_cube(directory: Path) -> tuple[Path, Path, float]:
    """One 127-fibre mock LOGCUBE, gzipped and plain, and its redshift."""
    from astropy.table import Table

    from ifsrepr.mock import make_survey

    make_survey(directory, 1, seed=11, products=["cube"], fibres=(127,))
    [gz] = sorted(directory.glob("*-LOGCUBE.fits.gz"))
    plain = gz.with_suffix("")
    with igzip.open(gz, "rb") as source, open(plain, "wb") as target:
        while block := source.read(1 << 24):
            target.write(block)
    catalogue = Table.read(directory / "drpall-mock.fits", hdu="MANGA")
    return plain, gz, float(catalogue["nsa_z"][0])


def ifsrepr_extract(path: Path, redshift: float, continuum: str = "templates"):
    return ifsrepr.extract_lines(path, "manga19", redshift=redshift, continuum=continuum)


def ifsrepr_read_whole_then_extract(path: Path, redshift: float, continuum: str):
    cube = ifsrepr.read(path, redshift=redshift)
    return ifsrepr.extract_lines(cube, "manga19", continuum=continuum)


def channels_needed(plain: Path, redshift: float, continuum: str) -> list[tuple[int, int]]:
    """The channel ranges ``extract_lines`` reads from the cube."""
    from ifsrepr.extraction.window import WindowExtractor

    ranges = WindowExtractor().wavelength_ranges(
        ifsrepr.lines.resolve_lines("manga19"), redshift, continuum=continuum
    )
    with fits.open(plain) as hdus:
        wave = hdus["WAVE"].data
    out = []
    for low, high in ranges:
        start, stop = np.searchsorted(wave, low), np.searchsorted(wave, high)
        if stop > start:
            out.append((int(start), int(stop)))
    return out


def touch_channels(plain: Path, channels: list[tuple[int, int]]) -> float:
    """Sum the given channels of FLUX, IVAR and MASK of a memory-mapped cube."""
    total = 0.0
    with fits.open(plain, memmap=True) as hdus:
        for name in ("FLUX", "IVAR", "MASK"):
            data = hdus[name].data
            for start, stop in channels:
                total += float(data[start:stop].sum(dtype=np.float64))
    return total


def spectral_cube_route(path: Path, redshift: float):
    from spectral_cube import SpectralCube

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its unparseable BUNIT and deprecations
        cube = SpectralCube.read(path, hdu="FLUX")
        maps = []
        for line in get_line_set("manga19"):
            centre = line.rest_wavelength * (1 + redshift)
            maps.append(cube.spectral_slab(centre - 8 * u.AA, centre + 8 * u.AA).moment0())
    return maps


def astropy_load(path: Path) -> None:
    with fits.open(path) as hdus:
        for name in ("FLUX", "IVAR", "MASK"):
            np.asarray(hdus[name].data).sum()


def end_of_mask(plain: Path) -> int:
    with fits.open(plain) as hdus:
        info = hdus.fileinfo(hdus.index_of("MASK"))
        return info["datLoc"] + info["datSpan"]


def decompress_until(path: Path, nbytes: int) -> None:
    remaining = nbytes
    with igzip.open(path, "rb") as stream:
        while remaining > 0:
            block = stream.read(min(1 << 24, remaining))
            if not block:
                break
            remaining -= len(block)


def moment0_error(plain: Path, redshift: float) -> list[tuple[str, float]]:
    """spectral-cube moment0 over a channel-wide flat spectrum / the true integral."""
    from spectral_cube import SpectralCube

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = SpectralCube.read(plain, hdu="FLUX")
        ones = SpectralCube(np.ones((cube.shape[0], 2, 2)), wcs=cube.wcs[:, :2, :2])
        wave = ones.spectral_axis.to_value(u.AA)
        edges = ifsrepr.extraction.grid.channel_edges(wave)
        out = []
        for name in ("Hb-4862", "Ha-6564", "ArIII-7753"):
            centre = next(
                line.rest_wavelength for line in get_line_set("manga35") if line.name == name
            ) * (1 + redshift)
            slab = ones.spectral_slab(centre - 8 * u.AA, centre + 8 * u.AA)
            measured = float(slab.moment0()[0, 0].to_value(u.AA))
            inside = (wave >= slab.spectral_axis.to_value(u.AA).min()) & (
                wave <= slab.spectral_axis.to_value(u.AA).max()
            )
            true = float(np.diff(edges)[inside].sum())
            out.append((name, measured / true))
        return out


_PEAK_SCRIPT = """
import gc, sys, tracemalloc, warnings
import ifsrepr
warnings.simplefilter("ignore")
path, redshift, calls, whole = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tracemalloc.start()
for _ in range(calls):
    source = ifsrepr.read(path) if whole == "whole" else path
    ifsrepr.extract_lines(source, "manga19", redshift=redshift, continuum="linear")
    del source
    gc.collect()
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
status = open("/proc/self/status").read().split("VmHWM:")[1]
resident = float(status.split()[0]) / 1e3
print(tracemalloc.get_traced_memory()[1] / 1e6, resident)
"""


def peak_memory(path: Path, redshift: float, calls: int, whole: bool = False):
    """Peak traced memory and peak RSS (MB) of extracting ``calls`` times in a fresh process.

    ``whole``: read the whole cube first (rather than give the path).
    """
    import subprocess
    import sys

    mode = "whole" if whole else "path"
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path), str(redshift), str(calls), mode],
        check=True,
        capture_output=True,
        text=True,
    )
    traced, resident = map(float, done.stdout.split())
    return traced, resident


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n-cubes", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ifsrepr.extraction.LineCoverageWarning)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        plain, gz, redshift = make_cube(Path(tmp))
        sizes = f"{plain.stat().st_size / 1e6:.0f} MB plain, {gz.stat().st_size / 1e6:.0f} MB gz"
        print(f"mock 74x74x4563 cube written in {time.perf_counter() - started:.1f} s ({sizes})")
        needed = channels_needed(plain, redshift, "linear")
        n_needed = sum(stop - start for start, stop in needed)
        stop = end_of_mask(plain)
        runs = {
            "ifsrepr .fits": lambda: ifsrepr_extract(plain, redshift),
            "ifsrepr .fits.gz": lambda: ifsrepr_extract(gz, redshift),
            "ifsrepr .fits, linear continuum": lambda: ifsrepr_extract(plain, redshift, "linear"),
            "ifsrepr .fits.gz, linear continuum": lambda: ifsrepr_extract(gz, redshift, "linear"),
            "ifsrepr .fits.gz, linear, whole cube read": lambda: ifsrepr_read_whole_then_extract(
                gz, redshift, "linear"
            ),
            "(a) spectral-cube .fits": lambda: spectral_cube_route(plain, redshift),
            "(a) spectral-cube .fits.gz": lambda: spectral_cube_route(gz, redshift),
            "(b) astropy load .fits.gz": lambda: astropy_load(gz),
            "(c) isal floor .fits.gz": lambda: decompress_until(gz, stop),
            f"(d) sum the {n_needed} channels needed, .fits": lambda: touch_channels(plain, needed),
        }
        times = timed(runs, args.repeat)
        figures = {name: statistics.median(values) for name, values in times.items()}
        width = max(map(len, figures))
        print(f"\nseconds per cube (median of {args.repeat} interleaved rounds):")
        for name, seconds in figures.items():
            print(f"  {name:<{width}}  {seconds:7.3f}")
        touch = f"(d) sum the {n_needed} channels needed, .fits"
        print("\nratios (median over the rounds):")
        for label, name in (
            ("linear", "ifsrepr .fits, linear continuum"),
            ("templates", "ifsrepr .fits"),
        ):
            ratio = median_ratio(times, "(a) spectral-cube .fits", name)
            print(
                f"  spectral-cube / ifsrepr ({label}), .fits          {ratio:6.2f}x  (target >= 30)"
            )
        for label, name in (
            ("linear", "ifsrepr .fits.gz, linear continuum"),
            ("linear, whole cube", "ifsrepr .fits.gz, linear, whole cube read"),
            ("templates", "ifsrepr .fits.gz"),
        ):
            ratio = median_ratio(times, name, "(c) isal floor .fits.gz")
            print(f"  ifsrepr ({label}) / isal floor, .fits.gz  {ratio:6.2f}x  (target <= 1.3)")
        ratio = median_ratio(
            times, "(b) astropy load .fits.gz", "ifsrepr .fits.gz, linear continuum"
        )
        print(f"  astropy load / ifsrepr (linear), .fits.gz         {ratio:6.2f}x")
        ratio = median_ratio(times, "(a) spectral-cube .fits", touch)
        print(
            f"  spectral-cube / summing the channels needed       {ratio:6.1f}x"
            "  (the most any extraction reading them could reach)"
        )
        print("\nspectral-cube moment0 / true integral over the same channels (flat spectrum):")
        for name, ratio in moment0_error(plain, redshift):
            print(f"  {name:<10} {ratio:.3f}")
        print("\npeak memory, .fits.gz, linear continuum (a fresh process each):")
        for label, calls, whole in (
            ("1 cube, whole cube read", 1, True),
            ("1 cube", 1, False),
            ("2 cubes in a row", 2, False),
            (f"{args.n_cubes} cubes in a row", args.n_cubes, False),
        ):
            traced, resident = peak_memory(gz, redshift, calls, whole)
            print(f"  {label:<28} {traced:6.0f} MB traced, {resident:6.0f} MB resident")


if __name__ == "__main__":
    main()
