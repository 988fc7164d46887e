"""The work done for one batch of input files, in whatever process runs it.

`process_batch` is a plain module-level function of one picklable argument, so
the same code runs in the calling process, in a local process pool, or on a
Dask worker. It never raises for a bad input: each file either becomes a
galaxy in the batch's part file, a failure (file and reason) or a skipped
non-survey file; only a failure to write the part file itself propagates.
"""

from __future__ import annotations

import json
import re
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.wcs import FITSFixedWarning

from ..cube import IFSCube
from ..exceptions import FileFormatError, IFSReprError
from ..linestack import LineStack
from ..preprocess import MissingLinesWarning, Preprocessor
from ..units import parse_bunit
from .catalog import Catalog, load_catalog
from .errors import DatasetError
from .inputs import InputItem
from .writer import GalaxyRecord, write_part

__all__ = ["BatchReport", "BatchTask", "process_batch", "process_item"]

_PLATEIFU_IN_NAME = re.compile(r"manga-(\d+)-(\d+)")


@dataclass(frozen=True)
class BatchTask:
    """One unit of work: some input files and the part file to write them to."""

    items: tuple[InputItem, ...]
    part_path: str
    settings: dict[str, Any]
    preprocessor: dict[str, Any]
    catalog: str | None = None


@dataclass
class BatchReport:
    """What a batch did (sent back to the process driving the run)."""

    part: str
    n_items: int
    n_done: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class _Skip(Exception):
    """Internal: a discovered file that is not a survey file."""


def process_batch(task: BatchTask) -> BatchReport:
    """Process every file of a batch and write the batch's part file.

    Parameters
    ----------
    task : BatchTask

    Returns
    -------
    BatchReport
    """
    start = time.perf_counter()
    preprocessor = Preprocessor.from_dict(task.preprocessor)
    catalog = load_catalog(task.catalog) if task.catalog else None
    records: list[GalaxyRecord] = []
    failures: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for item in task.items:
        try:
            records.append(process_item(item, preprocessor, task.settings, catalog))
        except _Skip as exc:
            skipped.append((item.path, str(exc)))
        except IFSReprError as exc:
            failures.append((item.path, _reason(item.path, exc)))
        except Exception as exc:
            # An unexpected error in one file must not stop a survey-sized run;
            # the reason keeps the exception type and where it was raised.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(
                (
                    item.path,
                    f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
                )
            )
    write_part(
        Path(task.part_path),
        records,
        failures=failures,
        skipped=skipped,
        settings=json.dumps(task.settings, sort_keys=True),
    )
    return BatchReport(
        part=Path(task.part_path).name,
        n_items=len(task.items),
        n_done=len(records),
        failures=failures,
        skipped=skipped,
        seconds=time.perf_counter() - start,
    )


def process_item(
    item: InputItem,
    preprocessor: Preprocessor,
    settings: dict[str, Any],
    catalog: Catalog | None = None,
) -> GalaxyRecord:
    """Read one file, extract its lines if it is a cube, and put it on the model grid.

    Raises
    ------
    ifsrepr.IFSReprError
        With the reason the file cannot become a galaxy of the dataset.
    """
    from ..io import read, read_primary_header
    from ..io.read import identify_readers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Recorded in the missing_lines column instead; header fixes are noise.
        warnings.simplefilter("ignore", MissingLinesWarning)
        warnings.simplefilter("ignore", FITSFixedWarning)
        hint = _wavelength_hint(item, preprocessor, settings, catalog)
        try:
            data = read(item.path, wavelength_ranges=hint[1] if hint else None)
        except FileFormatError:
            if item.discovered and Path(item.path).is_file():
                # Skip only a sound FITS file that is simply not survey data (a
                # catalogue beside the cubes); a broken one is a failure.
                try:
                    header = read_primary_header(item.path)
                    foreign = header is not None and not identify_readers(item.path, header)
                except IFSReprError:
                    foreign = False
                if foreign:
                    raise _Skip("a FITS file no reader recognises") from None
            raise
        plateifu = (
            item.overrides.get("plateifu")
            or _text(data.meta.get("plateifu"))
            or _plateifu_from_name(item.path)
        )
        listed = catalog.lookup(plateifu) if catalog is not None else {}
        redshift, redshift_origin = _first(
            (item.overrides.get("redshift"), "input table"),
            (listed.get("redshift"), "catalog"),
            (data.redshift, "file"),
        )
        reff, reff_origin = _first(
            (item.overrides.get("reff"), "input table"),
            (listed.get("reff"), "catalog"),
            (data.meta.get("reff"), "file"),
        )
        if isinstance(data, IFSCube):
            kind = "cube"
            if hint and hint[0] != redshift and "channels_read" in data.meta:
                # The redshift known before reading was not the one to use
                # (the header names another galaxy): the channels kept may
                # not be the ones needed.
                data = read(item.path)
            stack = _extract(data, preprocessor, settings, redshift, catalog)
        elif isinstance(data, LineStack):
            kind = "linestack"
            stack = data
            if redshift is not None:
                stack.redshift = redshift
        else:  # pragma: no cover - read() guarantees one of the two
            raise DatasetError(f"{item.path}: read returned {type(data).__name__}")
        stack.meta["plateifu"] = plateifu
        if reff is not None:
            stack.meta["reff"] = reff
        regridded = preprocessor.regrid(stack)
    notes = sorted({f"{w.category.__name__}: {w.message}" for w in caught})

    unit = parse_bunit(settings["unit"])
    flux, ivar = regridded.flux, regridded.ivar
    if regridded.unit != unit:
        try:
            factor = float(regridded.unit.to(unit))
        except u.UnitConversionError:
            raise DatasetError(
                f"{item.path}: surface brightness in {regridded.unit}, which cannot be "
                f"converted to the dataset unit {unit}"
            ) from None
        flux, ivar = flux * factor, ivar / factor**2
    grid = dict(regridded.meta["ifsrepr_grid"], unit=settings["unit"])
    missing = list(regridded.meta.get("missing_lines", []))
    meta = regridded.meta
    row = {
        "plateifu": plateifu or "",
        "mangaid": _text(meta.get("mangaid")) or listed.get("mangaid", ""),
        "source": item.path,
        "reader": _text(data.meta.get("reader")),
        "kind": kind,
        "redshift": redshift,
        "redshift_origin": redshift_origin,
        "reff": reff,
        "reff_origin": reff_origin,
        "objra": _number(meta.get("objra")),
        "objdec": _number(meta.get("objdec")),
        "status": "partial" if (missing or notes) else "ok",
        "missing_lines": ",".join(missing),
        "warnings": " | ".join(notes),
        "pixel_scale": grid["pixel_scale"],
        "grid": json.dumps(grid, sort_keys=True),
    }
    return GalaxyRecord(
        flux=np.asarray(flux, dtype=np.float32),
        ivar=np.asarray(ivar, dtype=np.float32),
        mask=np.asarray(regridded.mask, dtype=bool),
        meta=row,
    )


def _wavelength_hint(
    item, preprocessor: Preprocessor, settings: dict[str, Any], catalog: Catalog | None
) -> tuple[float, list[tuple[float, float]]] | None:
    """The redshift and the wavelengths extraction will use, when known before reading.

    With them a reader can keep only those channels (a gzipped MaNGA cube:
    a quarter of it, read in less time). The redshift must come from the
    input table or the catalogue, by the plate-IFU of the input table, the
    file's primary header or its name, as after reading.
    """
    from ..io import read_primary_header

    redshift = _number(item.overrides.get("redshift"))
    if redshift is None and catalog is not None:
        plateifu = item.overrides.get("plateifu")
        if not plateifu:
            try:
                header = read_primary_header(item.path)
            except IFSReprError:
                return None  # read() says what is wrong with the file
            plateifu = _text(header.get("PLATEIFU") if header is not None else None)
        plateifu = plateifu or _plateifu_from_name(item.path)
        redshift = _number(catalog.lookup(plateifu).get("redshift"))
    if redshift is None:
        return None
    from ..plugins import get_line_extractors

    extraction = settings["extraction"]
    extractor = get_line_extractors().get(extraction["method"])
    needs = getattr(extractor, "wavelength_ranges", None)
    if needs is None:
        return None
    lines = preprocessor.emission_lines
    return redshift, needs(lines, redshift, **extraction.get("options", {}))


def _extract(
    cube: IFSCube,
    preprocessor: Preprocessor,
    settings: dict[str, Any],
    redshift: float | None,
    catalog: Catalog | None,
) -> LineStack:
    if redshift is None:
        hint = (
            "the catalogue does not list it (or has no valid nsa_z)"
            if catalog is not None
            else "pass --catalog with an nsa_z column (DRPall)"
        )
        raise DatasetError(f"{cube.name}: no redshift: the cube has none and {hint}")
    try:
        from ..extraction import extract_lines
    except ImportError as exc:
        raise DatasetError(
            f"{cube.name}: line extraction is not available in this ifsrepr ({exc})"
        ) from None
    extraction = settings["extraction"]
    return extract_lines(
        cube,
        lines=preprocessor.emission_lines,
        method=extraction["method"],
        redshift=redshift,
        **extraction.get("options", {}),
    )


def _reason(path: str, exc: Exception) -> str:
    """The error message without the leading file name (the table has a source column)."""
    message = str(exc)
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _first(*candidates: tuple[Any, str]) -> tuple[float | None, str]:
    """The first usable number among (value, origin) pairs."""
    for value, origin in candidates:
        number = _number(value)
        if number is not None:
            return number, origin
    return None, ""


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _plateifu_from_name(path: str) -> str:
    match = _PLATEIFU_IN_NAME.search(Path(path).name)
    return f"{match[1]}-{match[2]}" if match else ""
