"""Extraction of 19 emission lines from a full-size MaNGA cube, against the alternatives.

A 74x74x4563 mock DR17 LOGCUBE (the 127-fibre size, made by ``ifsrepr.mock``)
is written uncompressed and gzipped to a temporary directory; then, in the
same run, each figure the median of ``--repeat`` runs after a warm-up:

* **ifsrepr**: ``ifsrepr.read`` + ``extract_lines(cube, "manga19")`` (window
  method, stellar-continuum fit with templates, velocity-following bands, exact
  ivar, Galactic-extinction correction), on the ``.fits`` and on the
  ``.fits.gz`` file, and the same with ``continuum="linear"`` (side-bands only);
* **(a) the spectral-cube route**: ``SpectralCube.read(path, hdu="FLUX")`` and
  19 x ``spectral_slab(line ± 8 Å).moment0()`` on the same files (no
  continuum subtraction, no ivar, no mask);
* **(b) astropy**: ``fits.open`` of the ``.fits.gz`` and loading FLUX, IVAR
  and MASK, nothing else;
* **(c) the floor**: isal decompressing just the bytes of the HDUs needed
  (up to the end of MASK; the wavelength grid is in the header), nothing else.

It also shows that spectral-cube's ``moment0`` is wrong on MaNGA's log-lambda
axis (it multiplies every channel by the constant ``CD3_3``), and compares the
peak memory of extracting ``--n-cubes`` cubes one after the other with that of
one cube (Python's tracemalloc, which sees numpy's allocations).

Run::

    python benchmarks/bench_extraction.py [--repeat 3] [--n-cubes 20]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from isal import igzip

import ifsrepr
from ifsrepr.lines import get_line_set


def timed(function, repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up."""
    function()
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    cube = ifsrepr.read(path, redshift=redshift)
    return ifsrepr.extract_lines(cube, lines="manga19", continuum=continuum)


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


def peak_memory(function, calls: int) -> float:
    """Peak traced memory (MB) of calling ``function`` ``calls`` times in a row."""
    gc.collect()
    tracemalloc.start()
    for _ in range(calls):
        function()
        gc.collect()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-cubes", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ifsrepr.extraction.LineCoverageWarning)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        plain, gz, redshift = make_cube(Path(tmp))
        sizes = f"{plain.stat().st_size / 1e6:.0f} MB plain, {gz.stat().st_size / 1e6:.0f} MB gz"
        print(f"mock 74x74x4563 cube written in {time.perf_counter() - started:.1f} s ({sizes})")
        runs = {
            "ifsrepr .fits": lambda: ifsrepr_extract(plain, redshift),
            "ifsrepr .fits.gz": lambda: ifsrepr_extract(gz, redshift),
            "ifsrepr .fits, linear continuum": lambda: ifsrepr_extract(plain, redshift, "linear"),
            "ifsrepr .fits.gz, linear continuum": lambda: ifsrepr_extract(gz, redshift, "linear"),
            "(a) spectral-cube .fits": lambda: spectral_cube_route(plain, redshift),
            "(a) spectral-cube .fits.gz": lambda: spectral_cube_route(gz, redshift),
            "(b) astropy load .fits.gz": lambda: astropy_load(gz),
        }
        stop = end_of_mask(plain)
        runs["(c) isal floor .fits.gz"] = lambda: decompress_until(gz, stop)
        figures = {name: timed(run, args.repeat) for name, run in runs.items()}
        width = max(map(len, figures))
        print(f"\nseconds per cube (median of {args.repeat}):")
        for name, seconds in figures.items():
            print(f"  {name:<{width}}  {seconds:7.3f}")
        versus_spectral_cube = figures["(a) spectral-cube .fits"] / figures["ifsrepr .fits"]
        versus_floor = figures["ifsrepr .fits.gz"] / figures["(c) isal floor .fits.gz"]
        versus_astropy = figures["(b) astropy load .fits.gz"] / figures["ifsrepr .fits.gz"]
        print("\nratios:")
        print(f"  spectral-cube / ifsrepr, .fits      {versus_spectral_cube:6.1f}x  (target >= 30)")
        print(f"  ifsrepr / isal floor, .fits.gz      {versus_floor:6.2f}x  (target <= 1.3)")
        print(f"  astropy load / ifsrepr, .fits.gz    {versus_astropy:6.1f}x")
        print("\nspectral-cube moment0 / true integral over the same channels (flat spectrum):")
        for name, ratio in moment0_error(plain, redshift):
            print(f"  {name:<10} {ratio:.3f}")
        one = peak_memory(lambda: ifsrepr_extract(gz, redshift), 1)
        many = peak_memory(lambda: ifsrepr_extract(gz, redshift), args.n_cubes)
        print(f"\npeak memory: 1 cube {one:.0f} MB, {args.n_cubes} cubes in a row {many:.0f} MB")


if __name__ == "__main__":
    main()
