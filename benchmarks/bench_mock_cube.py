"""Time making, writing and reading one mock 74x74 MaNGA LOGCUBE.

Usage::

    python benchmarks/bench_mock_cube.py [--fibres 127] [--threads 1] [--outdir DIR]

Prints, for one 127-fibre (74x74x4563) cube:

* simulation time (model, noiseless cube, noise);
* the raw FITS size and the time to serialise it uncompressed;
* gzip compression of the *same bytes* with ISA-L (levels 0-3) and with
  Python's ``gzip`` at level 6 (what astropy uses when writing ``.fits.gz``),
  with sizes and speed ratios;
* the end-to-end ``write_fits`` time the mock survey uses (ISA-L level 1);
* reading the gzipped cube back with astropy (FLUX, IVAR, MASK), through
  Python's gzip and through ISA-L, and the uncompressed file memory-mapped.
"""

from __future__ import annotations

import argparse
import gzip
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from isal import igzip

from ifsrepr.mock import draw_survey, simulate_galaxy
from ifsrepr.mock._fitsio import add_checksums, write_fits
from ifsrepr.mock.drp_format import checksum_comment, cube_hdulist
from ifsrepr.mock.survey import galaxy_rng
from ifsrepr.mock.synth import observe_cube
from ifsrepr.mock.templates import load_library


def _timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f"  {label:<46s} {elapsed:7.2f} s")
    return result, elapsed


def _read_arrays(hdus: fits.HDUList) -> float:
    return float(
        sum(np.asarray(hdus[name].data).sum(dtype=np.float64) for name in ("FLUX", "IVAR", "MASK"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fibres", type=int, default=127, choices=[19, 37, 61, 91, 127])
    parser.add_argument(
        "--threads", type=int, default=1, help="ISA-L threads for the end-to-end write"
    )
    parser.add_argument("--outdir", help="where to write (default: a temporary directory)")
    args = parser.parse_args()

    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="bench-mock-"))
    outdir.mkdir(parents=True, exist_ok=True)
    load_library()
    params = draw_survey(1, 0, fibres=[args.fibres])[0]
    print(f"galaxy {params.plateifu} ({args.fibres} fibres), z = {params.z:.4f}")

    print("simulate")
    model, t_model = _timed("model (maps of light and gas)", simulate_galaxy, params)
    cube, t_cube = _timed(
        "cube: synthesis + PSF + noise", observe_cube, model, galaxy_rng(0, 0, "cube")
    )
    hdus, t_hdus = _timed(
        "HDUs + DR17 headers + images", cube_hdulist, params, cube, model.footprint.covered
    )
    _, t_sum = _timed("checksums", add_checksums, hdus, checksum_comment(params))
    print(f"  cube shape {cube.flux.shape}")

    print("serialise")
    buffer = io.BytesIO()
    _, t_raw = _timed("uncompressed FITS to memory", hdus.writeto, buffer)
    raw = buffer.getvalue()
    print(f"  raw FITS size {len(raw) / 1e6:.1f} MB")

    print("compress the same bytes")
    sizes, times = {}, {}
    for level in (0, 1, 2, 3):
        out, times[f"isal-{level}"] = _timed(
            f"ISA-L level {level}", igzip.compress, raw, level, mtime=0
        )
        sizes[f"isal-{level}"] = len(out)
    out, times["gzip-6"] = _timed("Python gzip level 6", gzip.compress, raw, 6, mtime=0)
    sizes["gzip-6"] = len(out)
    for key in sizes:
        print(
            f"  {key:<8s} {sizes[key] / 1e6:7.1f} MB (ratio {len(raw) / sizes[key]:.2f}), "
            f"{len(raw) / 1e6 / times[key]:6.0f} MB/s, "
            f"{times['gzip-6'] / times[key]:5.1f}x gzip-6 speed"
        )

    print("end to end")
    path = outdir / "bench-LOGCUBE.fits.gz"
    _, t_write = _timed(
        f"write_fits (.fits.gz, ISA-L 1, {args.threads} thread)",
        write_fits, hdus, path, overwrite=True, compresslevel=1, threads=args.threads,
    )  # fmt: skip
    plain = outdir / "bench-LOGCUBE.fits"
    _timed("write_fits (.fits, uncompressed)", write_fits, hdus, plain, overwrite=True)
    print(
        f"  one cube: simulate {t_model + t_cube:.1f} s + format {t_hdus + t_sum:.1f} s "
        f"+ write {t_write:.1f} s = {t_model + t_cube + t_hdus + t_sum + t_write:.1f} s "
        f"({path.stat().st_size / 1e6:.0f} MB on disk)"
    )

    print("read back (FLUX, IVAR, MASK)")

    def read_gzip() -> float:
        with fits.open(path) as opened:
            return _read_arrays(opened)

    def read_isal() -> float:
        # astropy needs a seekable file: decompress with ISA-L into memory first.
        with fits.open(io.BytesIO(igzip.decompress(path.read_bytes()))) as opened:
            return _read_arrays(opened)

    def read_plain() -> float:
        with fits.open(plain, memmap=True) as opened:
            return _read_arrays(opened)

    _, t_read_gzip = _timed("astropy fits.open(.gz) (Python gzip)", read_gzip)
    _, t_read_isal = _timed("ISA-L decompress to memory, then astropy", read_isal)
    _, t_read_plain = _timed("astropy, uncompressed, memory-mapped", read_plain)
    print(f"  ISA-L reading is {t_read_gzip / t_read_isal:.1f}x faster than Python gzip")
    print(f"files in {outdir}")


if __name__ == "__main__":
    main()
