"""On-disk layout of a survey dataset: part files, and the index that joins them.

A dataset ``survey.h5`` is written as a pair::

    survey.h5          the index: virtual datasets + metadata + failures + attrs
    survey.h5.d/       one part file per processed batch of galaxies
        part-000000-1a2b3c4d.h5
        ...

Each part file is written complete to a temporary name and renamed, so a part
either exists whole or not at all; the part files are the record of what is
done, and a rerun skips their galaxies. The index is rebuilt from them (also
through a temporary file and a rename) every few seconds and at the end, so a
reader always finds a consistent index, at worst a few batches behind the
parts. Its ``flux``, ``ivar`` and ``mask`` are HDF5 virtual datasets whose
sources are named relative to the index's directory (HDF5 resolves a
relative source name against the directory of the file holding the virtual
dataset), so the pair can be moved or copied together. `consolidate` writes a
self-contained single file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._atomic import atomic_path
from .errors import DatasetError

__all__ = [
    "ARRAYS",
    "FORMAT",
    "FORMAT_VERSION",
    "GalaxyRecord",
    "PartSummary",
    "consolidate",
    "list_parts",
    "parts_dir_for",
    "read_part_summary",
    "write_index",
    "write_part",
]

FORMAT = "ifsrepr-survey"
PART_FORMAT = "ifsrepr-survey-part"
FORMAT_VERSION = 1

#: The per-galaxy arrays, each ``(n_galaxies, n_lines, size, size)``.
ARRAYS = ("flux", "ivar", "mask")
_DTYPES = {"flux": np.float32, "ivar": np.float32, "mask": np.uint8}
# Fill values of the virtual datasets: what a reader would see for a missing
# part (the reader checks that none is missing before reading).
_FILL = {"flux": np.nan, "ivar": 0.0, "mask": 1}

#: Metadata columns of each galaxy and their types.
META_COLUMNS: dict[str, str] = {
    "plateifu": "str",
    "mangaid": "str",
    "source": "str",
    "reader": "str",
    "kind": "str",
    "redshift": "float",
    "redshift_origin": "str",
    "reff": "float",
    "reff_origin": "str",
    "objra": "float",
    "objdec": "float",
    "status": "str",
    "missing_lines": "str",
    "warnings": "str",
    "pixel_scale": "float",
    "grid": "str",
}
#: The index adds where each row lives.
INDEX_COLUMNS: dict[str, str] = {**META_COLUMNS, "part": "str", "part_row": "int"}
_MISSING = {"str": "", "float": np.nan, "int": -1}
_STRING = h5py.string_dtype("utf-8")


def parts_dir_for(path: str | os.PathLike) -> Path:
    """The directory holding the part files of dataset ``path`` (``survey.h5.d``)."""
    path = Path(path)
    return path.with_name(path.name + ".d")


def part_name(sequence: int, token: str) -> str:
    """File name of a part: its sequence number and a random token (unique across runs)."""
    return f"part-{sequence:06d}-{token}.h5"


def part_sequence(name: str) -> int:
    """The sequence number in a part file name."""
    return int(name.split("-")[1])


def list_parts(directory: Path) -> list[Path]:
    """Finished part files in ``directory``, in sequence order (temporaries excluded)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("part-*.h5") if not p.name.startswith(".")]
    return sorted(found, key=lambda p: (part_sequence(p.name), p.name))


def remove_stale_temporaries(directory: Path) -> int:
    """Delete half-written files a killed run left behind; return how many.

    Only call this while holding the dataset lock, so no live writer's
    temporary file is removed.
    """
    removed = 0
    if directory.is_dir():
        for stale in directory.glob(".part-*.part.h5"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


@dataclass
class GalaxyRecord:
    """One processed galaxy: arrays on the model grid and its metadata row."""

    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any]


@dataclass
class PartSummary:
    """Everything about a part file except its big arrays."""

    name: str
    n_rows: int
    shape: tuple[int, int, int] | None
    meta: dict[str, np.ndarray]
    n_good: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    settings: str = "{}"


# -- part files ------------------------------------------------------------------------


def write_part(
    path: Path,
    records: Sequence[GalaxyRecord],
    *,
    failures: Sequence[tuple[str, str]] = (),
    skipped: Sequence[tuple[str, str]] = (),
    settings: str,
    compression: int = 4,
) -> None:
    """Write one batch of galaxies to a part file, atomically.

    Parameters
    ----------
    path : pathlib.Path
        The part file.
    records : sequence of GalaxyRecord
        Galaxies processed (may be empty when the whole batch failed).
    failures, skipped : sequence of (source, reason)
        Inputs that failed, or were not survey files.
    settings : str
        The dataset's settings as JSON, so a part can be checked on resume
        even before any index exists.
    compression : int
        gzip level (with byte shuffling), chunked one galaxy per chunk.
    """
    with atomic_path(path) as temporary:
        _write_part(temporary, records, failures, skipped, settings, compression)
        _make_shareable(temporary)


def _write_part(
    temporary: Path,
    records: Sequence[GalaxyRecord],
    failures: Sequence[tuple[str, str]],
    skipped: Sequence[tuple[str, str]],
    settings: str,
    compression: int,
) -> None:
    with h5py.File(temporary, "w") as out:
        out.attrs["format"] = PART_FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["settings"] = settings
        out.attrs["n_rows"] = len(records)
        if records:
            shape = records[0].flux.shape
            for name in ARRAYS:
                data = np.stack([getattr(r, name) for r in records]).astype(_DTYPES[name])
                out.create_dataset(
                    name,
                    data=data,
                    chunks=(1, *shape),
                    compression="gzip",
                    compression_opts=compression,
                    shuffle=True,
                )
            good = np.stack([(~r.mask).reshape(r.mask.shape[0], -1).sum(axis=1) for r in records])
            out.create_dataset("n_good", data=good.astype(np.int32))
        _write_columns(out.create_group("meta"), META_COLUMNS, [r.meta for r in records])
        _write_records(out.create_group("failures"), failures)
        _write_records(out.create_group("skipped"), skipped)


def read_part_summary(path: Path) -> PartSummary:
    """Read a part file's metadata, failures and settings (not its arrays)."""
    try:
        with h5py.File(path, "r") as part:
            if part.attrs.get("format") != PART_FORMAT:
                raise DatasetError(f"{path}: not an ifsrepr survey part file")
            n_rows = int(part.attrs["n_rows"])
            shape = tuple(part["flux"].shape[1:]) if "flux" in part else None
            n_good = part["n_good"][()] if "n_good" in part else np.zeros((0, 0), np.int32)
            return PartSummary(
                name=path.name,
                n_rows=n_rows,
                shape=shape,
                meta=_read_columns(part["meta"], META_COLUMNS, n_rows),
                n_good=n_good,
                failures=_read_records(part["failures"]),
                skipped=_read_records(part["skipped"]),
                settings=str(part.attrs["settings"]),
            )
    except (OSError, KeyError) as exc:
        raise DatasetError(f"{path}: cannot read this part file ({exc})") from None


# -- the index -------------------------------------------------------------------------


@dataclass
class IndexContents:
    """What `write_index` wrote: row order, failures and skipped inputs."""

    rows: list[tuple[int, int]]  # (part position, row in part), in index order
    failures: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    done_sources: set[str]


def plan_index(parts: Sequence[PartSummary]) -> IndexContents:
    """Decide the index rows (sorted by plate-IFU, then source) from the parts.

    A source done in several parts (a killed run's orphaned worker may finish
    a batch that a rerun redoes) is kept once. A failure counts only while the
    source has not been done since; the latest failure of a source wins.
    """
    seen: dict[str, tuple[int, int]] = {}
    keys: dict[str, str] = {}
    for p, part in enumerate(parts):
        for r, (source, plateifu) in enumerate(
            zip(part.meta["source"], part.meta["plateifu"], strict=True)
        ):
            if source not in seen:
                seen[source] = (p, r)
                keys[source] = plateifu
    order = sorted(seen, key=lambda s: (keys[s], s))
    skipped: dict[str, str] = {}
    failures: dict[str, str] = {}
    for part in parts:
        for source, reason in part.skipped:
            skipped[source] = reason
            failures.pop(source, None)
        for source, reason in part.failures:
            failures[source] = reason
            skipped.pop(source, None)
    done = set(seen)
    return IndexContents(
        rows=[seen[s] for s in order],
        failures=sorted((s, r) for s, r in failures.items() if s not in done),
        skipped=sorted((s, r) for s, r in skipped.items() if s not in done),
        done_sources=done,
    )


def write_index(
    path: Path,
    parts: Sequence[PartSummary],
    *,
    shape: tuple[int, int, int],
    attrs: Mapping[str, Any],
) -> IndexContents:
    """Rewrite the index file of a dataset from its parts, atomically.

    Parameters
    ----------
    path : pathlib.Path
        The index (``survey.h5``); the parts are in `parts_dir_for` it.
    parts : sequence of PartSummary
        All finished parts, in sequence order.
    shape : tuple
        ``(n_lines, size, size)`` of one galaxy.
    attrs : mapping
        Root attributes (settings, preprocessor, ...); values that are not
        numbers or strings are stored as JSON.

    Returns
    -------
    IndexContents
    """
    plan = plan_index(parts)
    with atomic_path(path) as temporary:
        _write_index(temporary, plan, parts, parts_dir_for(path).name, shape, attrs)
        _make_shareable(temporary)
    return plan


def _write_index(
    temporary: Path,
    plan: IndexContents,
    parts: Sequence[PartSummary],
    directory: str,
    shape: tuple[int, int, int],
    attrs: Mapping[str, Any],
) -> None:
    n = len(plan.rows)
    with h5py.File(temporary, "w") as out:
        for key, value in attrs.items():
            out.attrs[key] = _attr_value(value)
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["parts_dir"] = directory
        out.attrs["consolidated"] = False
        out.attrs["n_galaxies"] = n
        out.attrs["n_failed"] = len(plan.failures)
        out.attrs["n_skipped"] = len(plan.skipped)
        out.attrs["updated"] = _now()
        for name in ARRAYS:
            if n == 0:
                out.create_dataset(name, shape=(0, *shape), dtype=_DTYPES[name])
                continue
            layout = h5py.VirtualLayout(shape=(n, *shape), dtype=_DTYPES[name])
            for start, stop, p, first in _runs(plan.rows):
                part = parts[p]
                source = h5py.VirtualSource(
                    f"{directory}/{part.name}", name, shape=(part.n_rows, *shape)
                )
                layout[start:stop] = source[first : first + (stop - start)]
            out.create_virtual_dataset(name, layout, fillvalue=_FILL[name])
        rows = []
        n_good = np.zeros((n, shape[0]), dtype=np.int32)
        for i, (p, r) in enumerate(plan.rows):
            part = parts[p]
            row = {column: part.meta[column][r] for column in META_COLUMNS}
            row["part"] = part.name
            row["part_row"] = r
            rows.append(row)
            n_good[i] = part.n_good[r]
        _write_columns(out.create_group("meta"), INDEX_COLUMNS, rows)
        out.create_dataset("n_good", data=n_good)
        _write_records(out.create_group("failures"), plan.failures)
        _write_records(out.create_group("skipped"), plan.skipped)


def _runs(rows: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int, int]]:
    """Group index rows into runs read contiguously from one part: (start, stop, part, first)."""
    start = 0
    for i in range(1, len(rows) + 1):
        if (
            i == len(rows)
            or rows[i][0] != rows[start][0]
            or rows[i][1] != rows[start][1] + (i - start)
        ):
            yield start, i, rows[start][0], rows[start][1]
            start = i


def consolidate(path: str | os.PathLike, output: str | os.PathLike, *, chunk: int = 64) -> Path:
    """Copy a dataset into one self-contained HDF5 file (no part directory needed).

    Parameters
    ----------
    path : path-like
        The dataset's index file.
    output : path-like
        The new file; written through a temporary file and a rename.
    chunk : int
        Galaxies copied at a time (bounds the memory used).

    Returns
    -------
    pathlib.Path
        ``output``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import consolidate, extract_survey, read_attrs
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> index = Path(tmp.name) / "survey.h5"
    >>> _ = extract_survey([ifsrepr.datasets.get_path("manga-7815-3702-maps")], index,
    ...                    preprocessor=Preprocessor("manga19", size=16), progress=False)
    >>> sorted(p.name for p in Path(tmp.name).iterdir())  # the index and its parts
    ['survey.h5', 'survey.h5.d']
    >>> single = consolidate(index, Path(tmp.name) / "single.h5")
    >>> single.name, read_attrs(single)["consolidated"], read_attrs(single)["n_galaxies"]
    ('single.h5', True, 1)
    >>> tmp.cleanup()
    """
    from .tables import open_index  # checks the parts exist

    output = Path(output)
    if output.resolve() == Path(path).resolve():
        raise DatasetError("consolidate into a new file, not over the dataset itself")
    with open_index(path) as index, atomic_path(output) as temporary:
        with h5py.File(temporary, "w") as out:
            for key, value in index.attrs.items():
                out.attrs[key] = value
            out.attrs["consolidated"] = True
            out.attrs["parts_dir"] = ""
            for name in ARRAYS:
                source = index[name]
                n = source.shape[0]
                target = out.create_dataset(
                    name,
                    shape=source.shape,
                    dtype=source.dtype,
                    chunks=(1, *source.shape[1:]) if n else None,
                    compression="gzip" if n else None,
                    compression_opts=4 if n else None,
                    shuffle=bool(n),
                )
                for start in range(0, n, chunk):
                    target[start : start + chunk] = source[start : start + chunk]
            for group in ("meta", "failures", "skipped", "n_good"):
                index.copy(index[group], out, name=group)
        _make_shareable(temporary)
    return output


# -- the lock --------------------------------------------------------------------------


@contextlib.contextmanager
def dataset_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on a dataset's part directory while writing it.

    An OS-level lock (``flock``) is released by the kernel however the
    holder dies, SIGKILL included, so a killed run never leaves the dataset
    locked. Where ``fcntl`` does not exist (Windows), no lock is taken.
    """
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    handle = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(
                f"{directory}: another `ifsrepr extract` is writing this dataset"
            ) from None
        yield
    finally:
        os.close(handle)


# -- columns ---------------------------------------------------------------------------


def _write_columns(group: h5py.Group, columns: Mapping[str, str], rows: Sequence[Mapping]) -> None:
    group.attrs["columns"] = json.dumps(list(columns))
    for name, kind in columns.items():
        values = [row.get(name, _MISSING[kind]) for row in rows]
        if kind == "str":
            data = np.array(["" if v is None else str(v) for v in values], dtype=object)
            group.create_dataset(name, data=data, dtype=_STRING, shape=(len(rows),))
        elif kind == "float":
            data = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            group.create_dataset(name, data=data, shape=(len(rows),))
        else:
            group.create_dataset(name, data=np.array(values, dtype=np.int64), shape=(len(rows),))


def _read_columns(group: h5py.Group, columns: Mapping[str, str], n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, kind in columns.items():
        if name not in group:
            out[name] = np.full(n, _MISSING[kind], dtype=object if kind == "str" else None)
        elif kind == "str":
            out[name] = np.asarray(group[name].asstr()[()], dtype=object)
        else:
            out[name] = group[name][()]
    return out


def _write_records(group: h5py.Group, records: Sequence[tuple[str, str]]) -> None:
    for i, name in enumerate(("source", "reason")):
        data = np.array([r[i] for r in records], dtype=object)
        group.create_dataset(name, data=data, dtype=_STRING, shape=(len(records),))


def _read_records(group: h5py.Group) -> list[tuple[str, str]]:
    sources = group["source"].asstr()[()]
    reasons = group["reason"].asstr()[()]
    return list(zip((str(s) for s in sources), (str(r) for r in reasons), strict=True))


def _make_shareable(path: Path) -> None:
    """Give a new file the permissions of an ordinary one (umask applied).

    Temporary files are created private (0600); a survey dataset is usually
    read by other processes, users and cluster workers.
    """
    os.chmod(path, 0o666 & ~_UMASK)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value
    return json.dumps(value)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).isoformat(timespec="seconds")
