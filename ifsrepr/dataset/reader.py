"""`SurveyDataset`: a survey dataset as a streaming torch `Dataset`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import h5py
import numpy as np
import torch
from astropy.wcs import WCS
from torch.utils.data import Dataset

from ..linestack import LineStack
from ..preprocess import Preprocessor
from ..units import parse_bunit
from .errors import DatasetError
from .tables import _check_index, read_attrs
from .writer import INDEX_COLUMNS

__all__ = ["SurveyDataset"]

#: HDF5 chunk cache per dataset when streaming (a few galaxies' chunks).
_CACHE_BYTES = 4 * 1024**2


class SurveyDataset(Dataset):
    """A streaming torch `~torch.utils.data.Dataset` over a survey dataset.

    Item ``i`` is ``(x, w, index)``: the normalised maps and loss weights of
    galaxy ``indices[i]`` as float32 tensors ``(n_lines, size, size)``, and
    that galaxy's row in the dataset (`load_metadata`). Galaxies are read one
    at a time from the HDF5 file (one compressed chunk per array), which each
    worker process opens for itself on first use, so memory stays bounded
    whatever the survey size and the dataset works with
    ``DataLoader(num_workers>0)`` under any start method.

    Parameters
    ----------
    path : path-like
        The dataset's index file (or a consolidated copy).
    preprocessor : Preprocessor, optional
        The normalisation to apply; by default the one fitted on the dataset
        when it was written. Its grid must match the dataset's.
    indices : sequence of int, optional
        Rows to use (a training split, say); default all.

    Examples
    --------
    A dataset of three mock galaxies on a 16x16 grid, streamed in batches:

    >>> import tempfile
    >>> from torch.utils.data import DataLoader
    >>> from ifsrepr.dataset import SurveyDataset, extract_survey
    >>> from ifsrepr.mock import small_survey
    >>> from ifsrepr.preprocess import Preprocessor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> output, _ = small_survey(tmp.name, 3, seed=1)
    >>> data = SurveyDataset(output)
    >>> data
    <SurveyDataset survey.h5: 3 galaxies>
    >>> x, w, index = next(iter(DataLoader(data, batch_size=2)))
    >>> tuple(x.shape), tuple(w.shape), index.tolist()
    ((2, 19, 16, 16), (2, 19, 16, 16), [0, 1])

    Item by item, in physical units:

    >>> data.stack(2)
    <LineStack 9862-1902: 19 lines x 16 x 16 spaxels, unit=1e-17 erg / (s arcsec2 cm2)>
    >>> data.close()
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        preprocessor: Preprocessor | None = None,
        indices: Sequence[int] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        attrs = read_attrs(self.path)
        self.attrs = attrs
        n_total = int(attrs["n_galaxies"])
        if preprocessor is None:
            config = attrs.get("preprocessor")
            if not config or not config.get("fitted"):
                raise DatasetError(
                    f"{self.path}: the dataset has no fitted normalisation (the run that wrote "
                    "it did not finish); rerun `ifsrepr extract` to finish it, or pass a "
                    "fitted preprocessor"
                )
            preprocessor = Preprocessor.from_dict(config)
        stored = attrs["settings"]["preprocessing"]
        grid_keys = ("lines", "grid", "size", "n_reff")
        mine = preprocessor.params_dict()
        different = [k for k in grid_keys if mine[k] != stored[k]]
        if different:
            raise DatasetError(
                f"{self.path}: the preprocessor's {', '.join(different)} differ from the "
                f"dataset's ({', '.join(f'{k}={stored[k]!r}' for k in different)})"
            )
        self.preprocessor = preprocessor
        self._lines = preprocessor.emission_lines
        # Arrays are stored in the dataset's unit; the normalisation expects its own.
        self._factor = 1.0
        fitted_unit = getattr(preprocessor, "unit_", None)
        if fitted_unit is not None and fitted_unit != parse_bunit(attrs["unit"]):
            try:
                self._factor = float(parse_bunit(attrs["unit"]).to(fitted_unit))
            except u.UnitConversionError:
                raise DatasetError(
                    f"{self.path}: the dataset unit {attrs['unit']} cannot be converted to "
                    f"the preprocessor's {fitted_unit}"
                ) from None
        if indices is None:
            self.indices = np.arange(n_total)
        else:
            self.indices = np.asarray(indices, dtype=np.int64)
            if self.indices.ndim != 1:
                raise DatasetError("indices must be one-dimensional")
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n_total):
                raise DatasetError(f"indices must lie in [0, {n_total})")
        self._unit = attrs["unit"]
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def _file(self) -> h5py.File:
        # One handle per process: h5py handles must not cross a fork.
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r", rdcc_nbytes=_CACHE_BYTES)
            _check_index(self.path, self._handle)
            self._pid = os.getpid()
        return self._handle

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Physical ``(flux, ivar, mask)`` of item ``i`` on the model grid."""
        row = int(self.indices[i])
        handle = self._file()
        return (
            handle["flux"][row],
            handle["ivar"][row],
            handle["mask"][row].astype(bool),
        )

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} galaxies")
        i = i % len(self)
        flux, ivar, mask = self.read(i)
        if self._factor != 1.0:
            flux, ivar = flux * self._factor, ivar / self._factor**2
        x, w = self.preprocessor.normalise(flux, ivar, mask)
        return torch.from_numpy(x), torch.from_numpy(w), int(self.indices[i])

    def stack(self, i: int) -> LineStack:
        """Item ``i`` as a physical `LineStack` on the model grid (with its WCS)."""
        flux, ivar, mask = self.read(i)
        row = int(self.indices[i])
        meta_group = self._file()["meta"]
        meta = {
            name: _scalar(meta_group[name], row, kind)
            for name, kind in INDEX_COLUMNS.items()
            if name in meta_group
        }
        grid = json.loads(meta.pop("grid") or "{}")
        wcs = None
        if grid.get("wcs"):
            wcs = WCS(grid["wcs"])
            wcs.pixel_shape = flux.shape[:0:-1]
        redshift = meta.get("redshift")
        return LineStack(
            self._lines,
            flux,
            parse_bunit(self._unit),
            ivar,
            mask,
            wcs=wcs,
            redshift=None if redshift is None or np.isnan(redshift) else redshift,
            meta={**meta, "ifsrepr_grid": {**grid, "unit": self._unit}},
        )

    def close(self) -> None:
        """Close the file handle of this process (reopened on next use)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None  # each worker opens its own
        state["_pid"] = None
        return state

    def __del__(self) -> None:
        # At interpreter shutdown module globals may already be gone: no
        # contextlib here, and nothing to report if closing fails.
        try:
            self.close()
        except Exception:  # noqa: BLE001
            return

    def __repr__(self) -> str:
        return f"<SurveyDataset {self.path.name}: {len(self)} galaxies>"


def _scalar(dataset: h5py.Dataset, row: int, kind: str) -> Any:
    if kind == "str":
        return dataset.asstr()[row]
    value = dataset[row]
    return float(value) if kind == "float" else int(value)
