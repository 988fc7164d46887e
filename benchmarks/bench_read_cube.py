"""How long does reading one full-size MaNGA cube take?

Writes a 74x74x4563 cube (the 127-fibre IFU size) in the DR17 LOGCUBE layout
to a temporary directory, uncompressed and gzipped, then times:

* ``ifsrepr.read`` (the ``manga-cube`` reader),
* plain astropy: ``fits.open`` + load FLUX, IVAR and MASK,
* the floor: isal decompressing the file's bytes (whole file, and up to the
  end of MASK, which is where the reader stops: it takes the wavelengths of
  a gzipped cube from the header WCS), with nothing else done.

Every timing ends with the three arrays touched on every memory page, so lazy
memory maps are not flattered. The files are read from the page cache (they
were just written): these are CPU costs, not disk costs. Each figure is the
median of ``--repeat`` runs after a warm-up run.

Run::

    python benchmarks/bench_read_cube.py [--n 74] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import cube_fixtures  # noqa: E402

import ifsrepr  # noqa: E402
from ifsrepr.io.fits_cube import FitsStream  # noqa: E402


def touch(*arrays: np.ndarray) -> float:
    """Read one value per 4 KiB page of each array: forces memory maps in, costs nothing else."""
    total = 0.0
    for array in arrays:
        flat = np.asarray(array).reshape(-1)
        total += float(flat[:: max(1, 4096 // flat.itemsize)].sum())
    return total


def time_it(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best and median wall time of ``repeat`` calls after one warm-up call, in seconds.

    The warm-up matters on virtual machines, where the first touch of fresh
    memory is several times slower than later ones; the best time is the
    figure least disturbed by other work on a shared machine.
    """
    function()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def read_ifsrepr(path: Path) -> None:
    cube = ifsrepr.read(path)
    touch(cube.flux.value, cube.ivar.value, cube.mask)


def read_astropy(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdus:
            flux = hdus["FLUX"].data
            ivar = hdus["IVAR"].data
            mask = hdus["MASK"].data
            touch(flux, ivar, mask)


def decompress_all(path: Path) -> None:
    from isal import igzip

    buffer = bytearray(1 << 20)
    with igzip.open(path, "rb") as stream:
        while stream.readinto(buffer):
            pass


def decompress_until(path: Path, nbytes: int) -> None:
    from isal import igzip

    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    done = 0
    with igzip.open(path, "rb") as stream:
        while done < nbytes:
            got = stream.readinto(view[: min(len(buffer), nbytes - done)])
            if not got:
                break
            done += got


def end_of(path: Path, name: str) -> int:
    """Byte offset (decompressed) of the end of extension ``name``."""
    with FitsStream(path) as stream:
        for hdu in stream:
            if hdu.name == name:
                return hdu.offset + hdu.padded_nbytes
    raise RuntimeError(f"no {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=74, help="spaxels on a side (default 74)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure (median)")
    parser.add_argument("--keep", type=Path, help="write the cubes here and keep them")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        plain = folder / "manga-8485-12701-LOGCUBE.fits"
        gz = folder / "manga-8485-12701-LOGCUBE.fits.gz"

        start = time.perf_counter()
        truth = cube_fixtures.write_manga_cube(plain, n=args.n, plateifu="8485-12701")
        write_plain = time.perf_counter() - start
        start = time.perf_counter()
        cube_fixtures.gzip_file(plain, gz, compresslevel=2)
        write_gz = time.perf_counter() - start
        del truth
        size_plain, size_gz = plain.stat().st_size, gz.stat().st_size
        print(f"cube: {args.n}x{args.n}x{cube_fixtures.N_WAVE}, DR17 LOGCUBE layout")
        print(f"  uncompressed {size_plain / 1e6:8.1f} MB   written in {write_plain:6.2f} s")
        print(
            f"  .fits.gz     {size_gz / 1e6:8.1f} MB   gzipped (isal level 2) in {write_gz:6.2f} s"
        )
        mask_end = end_of(gz, "MASK")
        print(f"  the reader stops after MASK, at {mask_end / 1e6:.1f} MB of decompressed data")
        print()

        rows = [
            ("plain: ifsrepr.read (memmap)", time_it(lambda: read_ifsrepr(plain), args.repeat)),
            ("plain: astropy open+load", time_it(lambda: read_astropy(plain), args.repeat)),
            ("gz:    ifsrepr.read", time_it(lambda: read_ifsrepr(gz), args.repeat)),
            ("gz:    astropy open+load", time_it(lambda: read_astropy(gz), args.repeat)),
            ("gz:    isal floor, whole file", time_it(lambda: decompress_all(gz), args.repeat)),
            (
                "gz:    isal floor, up to MASK",
                time_it(lambda: decompress_until(gz, mask_end), args.repeat),
            ),
        ]
        best = {label: figure[0] for label, figure in rows}
        width = max(len(label) for label, _ in rows)
        print(f"  {'':<{width}}  {'best':>7}  {'median':>7}  (of {args.repeat})")
        for label, (fastest, median) in rows:
            print(f"  {label:<{width}}  {fastest:6.3f}s  {median:6.3f}s")
        print()
        print("  ratios of the best times:")
        ratios = (
            ("gz: astropy / ifsrepr.read", "gz:    astropy open+load", "gz:    ifsrepr.read"),
            (
                "gz: ifsrepr.read / isal floor to MASK",
                "gz:    ifsrepr.read",
                "gz:    isal floor, up to MASK",
            ),
            (
                "plain: astropy / ifsrepr.read",
                "plain: astropy open+load",
                "plain: ifsrepr.read (memmap)",
            ),
        )
        for label, top, bottom in ratios:
            print(f"  {label:<38} = {best[top] / best[bottom]:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
