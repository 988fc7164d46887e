"""`extract_survey`: files in, one resumable survey dataset out."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
from astropy.table import Table

from .. import __version__
from ..lines import EmissionLine, resolve_lines
from ..preprocess import Preprocessor, config_differences
from ..units import parse_bunit, unit_to_string
from .catalog import load_catalog
from .errors import DatasetError, SettingsMismatchError
from .inputs import resolve_inputs
from .runner import run_tasks
from .tables import load_failures
from .worker import BatchReport, BatchTask, process_batch
from .writer import (
    FORMAT,
    FORMAT_VERSION,
    IndexContents,
    PartSummary,
    dataset_lock,
    list_parts,
    part_name,
    part_sequence,
    parts_dir_for,
    plan_index,
    read_part_summary,
    remove_stale_temporaries,
    write_index,
)

__all__ = ["DEFAULT_UNIT", "SurveySummary", "dataset_settings", "extract_survey"]

#: Surface-brightness unit of the stored arrays (MaNGA's flux unit per arcsec^2).
DEFAULT_UNIT = "1e-17 erg / (s cm2 arcsec2)"


@dataclass
class SurveySummary:
    """The outcome of `extract_survey`.

    Attributes
    ----------
    path : pathlib.Path
        The dataset file.
    n_galaxies : int
        Galaxies in the dataset now.
    n_processed, n_already_done : int
        Inputs processed by this run, and inputs found done by an earlier one.
    failures, skipped : astropy.table.Table
        Inputs that failed, and found files that no reader recognises
        (`load_failures`).
    seconds : float
        Duration of the run.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import extract_survey
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> broken = Path(tmp.name) / "broken.fits"
    >>> _ = broken.write_text("not a FITS file")
    >>> maps = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    >>> summary = extract_survey([maps, broken], Path(tmp.name) / "survey.h5",
    ...                          preprocessor=Preprocessor("manga19", size=16), progress=False)
    >>> summary.ok, summary.n_galaxies, len(summary.failures)
    (False, 1, 1)
    >>> print(summary.failures["reason"][0])
    no reader recognises this file (not a FITS file); tried: ...
    >>> tmp.cleanup()
    """

    path: Path
    n_galaxies: int
    n_processed: int
    n_already_done: int
    failures: Table
    skipped: Table
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return len(self.failures) == 0


def dataset_settings(
    preprocessor: Preprocessor,
    *,
    method: str = "window",
    options: Mapping[str, Any] | None = None,
    unit: str = DEFAULT_UNIT,
) -> dict[str, Any]:
    """The settings that define a dataset's content; a rerun must match them.

    Learned normalisation scales are not part of it: they are refitted on the
    dataset at the end of every run that adds galaxies.

    Examples
    --------
    >>> from ifsrepr.dataset import dataset_settings
    >>> from ifsrepr.preprocess import Preprocessor
    >>> settings = dataset_settings(Preprocessor("manga19", size=16), method="gaussian")
    >>> sorted(settings)
    ['extraction', 'format_version', 'preprocessing', 'unit']
    >>> settings["extraction"], settings["preprocessing"]["size"], settings["unit"]
    ({'method': 'gaussian', 'options': {}}, 16, '1e-17 erg / (s arcsec2 cm2)')
    """
    try:
        json.dumps(dict(options or {}))
    except TypeError as exc:
        raise DatasetError(f"extraction options must be JSON-serialisable ({exc})") from None
    return {
        "format_version": FORMAT_VERSION,
        "unit": unit_to_string(parse_bunit(unit)),
        "extraction": {"method": method, "options": dict(options or {})},
        "preprocessing": preprocessor.params_dict(),
    }


def extract_survey(
    inputs: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    catalog: str | os.PathLike | None = None,
    lines: str | Sequence[str | EmissionLine] | None = None,
    method: str = "window",
    options: Mapping[str, Any] | None = None,
    preprocessor: Preprocessor | None = None,
    unit: str = DEFAULT_UNIT,
    jobs: int = 1,
    scheduler: str | Any | None = None,
    batch_size: int = 8,
    retry_failed: bool = True,
    progress: bool = True,
    index_interval: float = 10.0,
    echo: Callable[[str], None] | None = None,
) -> SurveySummary:
    """Turn survey files into one resumable, chunked HDF5 dataset.

    Each input is read with `ifsrepr.read`; cubes go through
    `ifsrepr.extraction.extract_lines` (redshift from the catalogue, matched
    by plate-IFU), line stacks (DAP MAPS) pass straight on; every galaxy is
    then put on the model grid by ``preprocessor.regrid`` and stored in
    physical surface brightness. At the end the normalisation is fitted on
    the whole dataset and stored with it.

    Parameters
    ----------
    inputs : iterable of str or path-like
        Files, directories, glob patterns, or tables of paths (see
        `ifsrepr.dataset.inputs`).
    output : path-like
        The dataset file (``survey.h5``); part files go to ``survey.h5.d/``.
        If it exists, the run resumes it: finished galaxies are skipped, and
        settings that differ from the dataset's are refused.
    catalog : path-like, optional
        DRPall-like table with ``plateifu`` and ``nsa_z`` (and
        ``nsa_elpetro_th50_r``) columns.
    lines : str or sequence, optional
        Line set or names; default ``"manga19"``, or the preprocessor's.
    method : str
        Line extractor for cubes (``"window"``, ``"gaussian"``).
    options : mapping, optional
        Extra keyword arguments for the extractor (JSON-serialisable).
    preprocessor : Preprocessor, optional
        Grid and normalisation; default ``Preprocessor(lines)``.
    unit : str
        Unit the stored surface brightness is converted to.
    jobs : int
        Local worker processes.
    scheduler : str or distributed.Client, optional
        Dask scheduler address: run the batches on that cluster instead.
    batch_size : int
        Files per batch (one part file each; the unit of resumption).
    retry_failed : bool
        Retry inputs that failed in an earlier run (the default: a fixed file
        or catalogue then just works); False leaves them recorded as failed.
    progress : bool
        Show a progress bar on stderr.
    index_interval : float
        Least seconds between rewrites of the index during the run (it is
        always rewritten at the end); 0 rewrites it after every batch.
    echo : callable, optional
        Called with a line of text for each failure and at the end.

    Returns
    -------
    SurveySummary

    Raises
    ------
    SettingsMismatchError
        If ``output`` was written with other settings.
    DatasetError
        If ``output`` is not an ifsrepr dataset, or another run is writing it.

    Examples
    --------
    The bundled MaNGA MAPS file on a 16x16 grid (its header gives the redshift
    and effective radius; a survey takes them from ``catalog=``):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.dataset import extract_survey, load_metadata
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> output = Path(tmp.name) / "survey.h5"
    >>> maps = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    >>> summary = extract_survey([maps], output, preprocessor=Preprocessor("manga19", size=16),
    ...                          progress=False)
    >>> summary.n_galaxies, summary.n_processed
    (1, 1)

    A rerun resumes: the galaxy is done already. Other settings are refused:

    >>> extract_survey([maps], output, preprocessor=Preprocessor("manga19", size=16),
    ...                progress=False).n_already_done
    1
    >>> extract_survey([maps], output, preprocessor=Preprocessor("manga19", size=32),
    ...                progress=False)
    Traceback (most recent call last):
    ...
    ifsrepr.dataset.errors.SettingsMismatchError: ... was written with different settings:
      preprocessing.size: 16 in the dataset, 32 in this run
    Resume it with the dataset's settings, or write to a new output.
    >>> tmp.cleanup()
    """
    start = time.perf_counter()
    say = echo or (lambda message: None)
    output = Path(output).resolve()
    if output.suffix == ".d" or output.is_dir():
        raise DatasetError(f"{output}: the output must be a file name such as survey.h5")
    if jobs < 1 or batch_size < 1:
        raise DatasetError("jobs and batch_size must be at least 1")
    preprocessor = _choose_preprocessor(preprocessor, lines)
    settings = dataset_settings(preprocessor, method=method, options=options, unit=unit)
    settings_json = json.dumps(settings, sort_keys=True)
    _check_existing(output, settings)
    catalog_path = None
    if catalog is not None:
        catalog_path = str(Path(catalog).resolve())
        load_catalog(catalog_path)  # fail now on a bad catalogue, not in every batch
    parts_dir = parts_dir_for(output)
    items = resolve_inputs(inputs, exclude=[p for p in (catalog_path, output) if p])
    shape = (len(preprocessor.line_names), preprocessor.size, preprocessor.size)

    with dataset_lock(parts_dir):
        remove_stale_temporaries(parts_dir)
        for stale in output.parent.glob(f".{output.name}.*.part.h5"):
            stale.unlink(missing_ok=True)
        summaries = _read_parts(parts_dir, settings_json, settings)
        plan = plan_index(summaries)
        finished = plan.done_sources | {s for s, _ in plan.skipped}
        if not retry_failed:
            finished |= {s for s, _ in plan.failures}
        pending = [item for item in items if item.path not in finished]
        n_already = len(items) - len(pending)

        unfitted = Preprocessor.from_dict({**preprocessor.to_dict(), "fitted": None})
        attrs = {
            "settings": settings_json,
            "preprocessor": json.dumps(unfitted.to_dict()),
            "lines": json.dumps(preprocessor.line_names),
            "unit": settings["unit"],
            "ifsrepr_version": __version__,
            "catalog": catalog_path or "",
            "complete": False,
            "parts_hash": "",
        }
        if not pending and _index_is_current(output, summaries):
            say(f"{output.name}: nothing to do ({len(plan.rows)} galaxies already in it)")
            return _summary(output, 0, n_already, start)

        # An index exists from the start, so a run killed at any moment leaves
        # a readable (if incomplete) dataset.
        write_index(output, summaries, shape=shape, attrs=attrs)
        next_sequence = 1 + max((part_sequence(s.name) for s in summaries), default=-1)
        tasks = [
            BatchTask(
                items=tuple(pending[i : i + batch_size]),
                part_path=str(parts_dir / part_name(next_sequence + n, secrets.token_hex(4))),
                settings=settings,
                preprocessor=unfitted.to_dict(),
                catalog=catalog_path,
            )
            for n, i in enumerate(range(0, len(pending), batch_size))
        ]
        n_processed = 0
        try:
            n_processed = _run(
                tasks, summaries, output, shape, attrs, jobs, scheduler, progress,
                index_interval, say, len(pending),
            )  # fmt: skip
        except BaseException:
            # Interrupted (Ctrl-C, a broken worker): leave an index of what is done.
            write_index(output, summaries, shape=shape, attrs=attrs)
            raise

        plan = plan_index(summaries)
        fitted = _fit(preprocessor, summaries, plan, parts_dir, settings["unit"])
        attrs["preprocessor"] = json.dumps(fitted.to_dict())
        attrs["complete"] = True
        attrs["parts_hash"] = _parts_hash(summaries)
        write_index(output, summaries, shape=shape, attrs=attrs)
    summary = _summary(output, n_processed, n_already, start)
    say(
        f"{output.name}: {summary.n_galaxies} galaxies ({n_processed} new, {n_already} already "
        f"done), {len(summary.failures)} failed, {len(summary.skipped)} skipped, "
        f"{summary.seconds:.1f} s"
    )
    return summary


def _choose_preprocessor(
    preprocessor: Preprocessor | None, lines: str | Sequence[str | EmissionLine] | None
) -> Preprocessor:
    if preprocessor is None:
        return Preprocessor("manga19" if lines is None else lines)
    if lines is not None:
        wanted = [line.name for line in resolve_lines(lines)]
        if wanted != preprocessor.line_names:
            raise DatasetError(
                "lines and preprocessor.lines disagree; give the lines to the preprocessor only"
            )
    return preprocessor


def _check_existing(output: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a file that is not ours or was written with other settings."""
    if not output.exists():
        return
    try:
        with h5py.File(output, "r") as existing:
            attrs = dict(existing.attrs)
    except OSError:
        raise DatasetError(
            f"{output}: exists and is not an HDF5 file; choose another output"
        ) from None
    if attrs.get("format") != FORMAT:
        raise DatasetError(
            f"{output}: exists and is not an ifsrepr survey dataset; choose another output"
        )
    if attrs.get("consolidated"):
        raise DatasetError(
            f"{output}: is a consolidated dataset and cannot be extended; write a new output"
        )
    _compare_settings(output, json.loads(attrs["settings"]), settings)


def _compare_settings(where: Path, stored: dict[str, Any], settings: dict[str, Any]) -> None:
    differences = config_differences(stored, settings, labels=("the dataset", "this run"))
    if differences:
        listed = "\n  ".join(differences)
        raise SettingsMismatchError(
            f"{where} was written with different settings:\n  {listed}\n"
            "Resume it with the dataset's settings, or write to a new output.",
            differences,
        )


def _read_parts(parts_dir: Path, settings_json: str, settings: dict[str, Any]) -> list[PartSummary]:
    summaries = []
    for path in list_parts(parts_dir):
        summary = read_part_summary(path)
        if summary.settings != settings_json:
            # Possible when the index was never written (killed in the first batch).
            _compare_settings(path, json.loads(summary.settings), settings)
        summaries.append(summary)
    return summaries


def _index_is_current(output: Path, summaries: Sequence[PartSummary]) -> bool:
    if not output.is_file():
        return False
    with h5py.File(output, "r") as index:
        return bool(index.attrs.get("complete")) and index.attrs.get("parts_hash") == _parts_hash(
            summaries
        )


def _parts_hash(summaries: Sequence[PartSummary]) -> str:
    names = "\n".join(sorted(s.name for s in summaries))
    return hashlib.sha256(names.encode()).hexdigest()


def _run(
    tasks: list[BatchTask],
    summaries: list[PartSummary],
    output: Path,
    shape: tuple[int, int, int],
    attrs: dict[str, Any],
    jobs: int,
    scheduler: Any,
    progress: bool,
    index_interval: float,
    say: Callable[[str], None],
    n_pending: int,
) -> int:
    from tqdm.auto import tqdm

    parts_dir = parts_dir_for(output)
    n_processed = n_failed = 0
    last_index = time.monotonic()
    index_cost = 0.0
    with tqdm(
        total=n_pending, unit="file", desc=output.name, disable=not progress, file=sys.stderr
    ) as bar:
        report: BatchReport
        for report in run_tasks(process_batch, tasks, jobs=jobs, scheduler=scheduler):
            summaries.append(read_part_summary(parts_dir / report.part))
            summaries.sort(key=lambda s: (part_sequence(s.name), s.name))
            n_processed += report.n_done
            n_failed += len(report.failures)
            with tqdm.external_write_mode(file=sys.stderr):
                for source, reason in report.failures:
                    say(f"failed: {source}: {reason}")
            bar.update(report.n_items)
            bar.set_postfix(failed=n_failed, refresh=False)
            # Rewriting the index costs O(dataset) time, so it is throttled; the
            # parts are the record of progress either way.
            now = time.monotonic()
            if now - last_index >= max(index_interval, 10 * index_cost):
                began = time.perf_counter()
                write_index(output, summaries, shape=shape, attrs=attrs)
                index_cost = time.perf_counter() - began
                last_index = time.monotonic()
    return n_processed


def _fit(
    preprocessor: Preprocessor,
    summaries: Sequence[PartSummary],
    plan: IndexContents,
    parts_dir: Path,
    unit: str,
) -> Preprocessor:
    """Fit the normalisation on every galaxy of the dataset, one part at a time."""
    fitted = Preprocessor.from_dict({**preprocessor.to_dict(), "fitted": None})
    rows_by_part: dict[int, list[int]] = {}
    for p, r in plan.rows:
        rows_by_part.setdefault(p, []).append(r)
    if not rows_by_part:
        return fitted
    for p, rows in sorted(rows_by_part.items()):
        with h5py.File(parts_dir / summaries[p].name, "r") as part:
            flux = part["flux"][sorted(rows)]
            mask = part["mask"][sorted(rows)].astype(bool)
        fitted.partial_fit_arrays(flux, mask, unit)
    return fitted


def _summary(output: Path, n_processed: int, n_already: int, start: float) -> SurveySummary:
    with h5py.File(output, "r") as index:
        n_galaxies = int(index.attrs["n_galaxies"])
    return SurveySummary(
        path=output,
        n_galaxies=n_galaxies,
        n_processed=n_processed,
        n_already_done=n_already,
        failures=load_failures(output),
        skipped=load_failures(output, skipped=True),
        seconds=time.perf_counter() - start,
    )
