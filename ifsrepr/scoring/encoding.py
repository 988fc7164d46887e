"""`Encoding`: what a trained encoder makes of a survey, stored once and scored many times.

Encoding a survey is the expensive step (a forward pass per galaxy); scoring,
similarity search and reports only need its results. `encode_dataset` runs
the encoder once over a survey dataset (or a list of line stacks), streaming
in batches, and keeps for every galaxy:

* its latent vector;
* its reconstruction error: the inverse-variance-weighted squared residual
  in the normalised units the network sees, ``w * (x_hat - x)**2``, averaged
  over the unmasked pixels (a reduced chi-square per pixel, about 1 for a
  reconstruction as good as the noise allows, whatever the galaxy's
  brightness), as a whole, per line and per spaxel (summed over lines and
  divided by the number of lines unmasked there);
* where its error map peaks (on a 3x3-smoothed map, so one noisy pixel does
  not win), for the "which region" explanation of `AnomalyScorer`.

It also records which model made it (a name and a hash of the model's
configuration and weights), so that scores are never computed from latents
of one model against a reference from another, and which galaxies could not
be encoded (extraction failures of the dataset, stacks with nothing
unmasked), so that reports list them instead of silently dropping them.

`Encoding.save` writes an HDF5 file (atomically); `Encoding.load` reads it,
optionally without the per-spaxel maps, which are by far its largest part.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from astropy.table import Table

from .._atomic import atomic_path
from ..exceptions import FileFormatError, IFSReprError
from ..linestack import LineStack

__all__ = [
    "DuplicatePlateIFUWarning",
    "Encoding",
    "ModelMismatchError",
    "ENCODING_FORMAT",
    "encode_dataset",
    "is_encoding_file",
    "model_identity",
]

#: The ``format`` attribute of an encoding file.
ENCODING_FORMAT = "ifsrepr-encoding"
ENCODING_VERSION = 1

#: Grid pixel size of ``grid="native"`` (arcsec), for the region of a peak.
_NATIVE_PIXEL_SCALE = 0.5


class ModelMismatchError(IFSReprError, ValueError):
    """Latents or errors from one model are combined with another model's."""


class DuplicatePlateIFUWarning(UserWarning):
    """The same plate-IFU appears more than once; the rows are kept apart by ``uid``."""


# -- the model's identity -----------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)
    raise TypeError(f"cannot hash {type(value).__name__}")


def model_identity(encoder: Any) -> tuple[str, str]:
    """A name and a hash that identify a fitted `~ifsrepr.encoder.IFSEncoder`.

    The hash is SHA-256 over the encoder's configuration (what ``config.json``
    holds: architecture, options, preprocessing with its learned scales,
    training settings; less the ifsrepr version that wrote it) and over its
    weights. So a model copied to another directory keeps its identity, and a
    retrained model with the same settings gets a new one.

    Parameters
    ----------
    encoder : IFSEncoder
        A fitted encoder.

    Returns
    -------
    name, sha256 : str
        ``name`` is what the encoder was loaded from (a registered name, or
        the absolute path of its directory), or ``"unsaved <architecture>
        model"`` for one fitted in this session.

    Examples
    --------
    A copy of a model saved elsewhere keeps its hash:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.scoring import model_identity
    >>> encoder = ifsrepr.IFSEncoder.from_pretrained("manga-convlstm", device="cpu")
    >>> name, sha256 = model_identity(encoder)
    >>> name, len(sha256)
    ('manga-convlstm', 64)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     copy = ifsrepr.IFSEncoder.from_pretrained(encoder.save_pretrained(tmp), device="cpu")
    ...     model_identity(copy)[1] == sha256
    True
    """
    config = dict(encoder.config())
    config.pop("ifsrepr_version", None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=_json_default).encode())
    for key, tensor in sorted(encoder.network_.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    source = getattr(encoder, "pretrained_from_", None)
    if source is None:
        name = f"unsaved {encoder.architecture} model"
    elif Path(str(source)).is_dir():
        name = str(Path(str(source)).resolve())
    else:
        name = str(source)
    return name, digest.hexdigest()


def describe_model(name: str, sha256: str) -> str:
    """``name (sha256 1a2b3c4d5e6f)`` for messages."""
    return f"{name} (sha256 {sha256[:12]})"


# -- the container -------------------------------------------------------------------------


@dataclasses.dataclass
class Encoding:
    """Latents and reconstruction errors of a set of galaxies, from one model.

    Attributes
    ----------
    plateifu : numpy.ndarray of str
        ``(n,)`` plate-IFU of each galaxy (or the stack's name). Duplicates
        are allowed and kept apart by ``uid``.
    latents : numpy.ndarray
        ``(n, latent_dim)`` float32.
    error : numpy.ndarray
        ``(n,)`` mean over unmasked pixels of ``w * (x_hat - x)**2`` (``x``
        the normalised maps, ``w`` their inverse-variance weights).
    line_errors : numpy.ndarray
        ``(n, n_lines)``: the same per line (NaN for a line with no unmasked pixel).
    n_good : numpy.ndarray
        ``(n,)`` number of unmasked pixels.
    line_names : list of str
        The model's lines, in order.
    model_name, model_sha256 : str
        The encoder that made it (`model_identity`).
    source : str
        What was encoded (the dataset path, or ``"<n LineStacks>"``).
    spaxel_errors : numpy.ndarray or None
        ``(n, size, size)`` float16: ``w * (x_hat - x)**2`` summed over
        lines and divided by the number of unmasked lines at each spaxel (NaN
        where none is). None when not kept or not loaded.
    peak : numpy.ndarray
        ``(n, 2)`` (row, column) of the maximum of the 3x3-smoothed spaxel
        error map, on the model grid.
    peak_error : numpy.ndarray
        ``(n,)`` that maximum: the error of the worst 3x3 patch.
    peak_contrast : numpy.ndarray
        ``(n,)`` ``peak_error`` over the mean of the spaxel error map: large
        for a localised problem, near 1 for an error spread over the galaxy.
    pixels_per_reff : numpy.ndarray
        ``(n,)`` grid pixels per effective radius (NaN if unknown).
    uid : numpy.ndarray of str
        ``(n,)`` unique labels: the plate-IFU, with ``#2``, ``#3``... added to
        its second and later occurrences.
    galaxy_source : numpy.ndarray of str
        ``(n,)`` the input file of each galaxy (empty if unknown).
    row : numpy.ndarray of int
        ``(n,)`` row of each galaxy in the encoded dataset (or list).
    redshift : numpy.ndarray
        ``(n,)`` (NaN if unknown).
    not_scored : astropy.table.Table
        Galaxies that could not be encoded: ``plateifu``, ``source``, ``reason``.
    grid : dict
        The model grid: ``grid``, ``size``, ``n_reff``.
    model_config : str
        The model's configuration as JSON (for the record).
    created : str
        ISO time of encoding.

    Examples
    --------
    `encode_dataset` makes encodings; one can also be built from arrays:

    >>> import numpy as np
    >>> from ifsrepr.scoring import Encoding
    >>> rng = np.random.default_rng(0)
    >>> line_errors = rng.normal(1.0, 0.1, (30, 4))
    >>> line_errors[7, 1] = 12.0  # galaxy 7: [OIII] badly reconstructed
    >>> encoding = Encoding(
    ...     plateifu=[f"9000-{12701 + i}" for i in range(30)],
    ...     latents=rng.normal(size=(30, 8)),
    ...     error=line_errors.mean(axis=1),
    ...     line_errors=line_errors,
    ...     n_good=np.full(30, 1024),
    ...     line_names=["Hb-4862", "OIII-5008", "Ha-6564", "NII-6585"],
    ...     model_name="demo",
    ...     model_sha256="0" * 64,
    ...     peak_error=2 * line_errors.max(axis=1),
    ... )
    >>> encoding
    <Encoding of 30 galaxies (0 not scored) by demo (sha256 000000000000), latent_dim=8>
    >>> encoding.index_of("9000-12708"), str(encoding.uid[7])
    (7, '9000-12708')
    >>> encoding.select([7, 8]).plateifu.tolist()
    ['9000-12708', '9000-12709']

    It saves to (and loads from) an HDF5 file:

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = encoding.save(Path(tmp) / "encoding.h5")
    ...     loaded = Encoding.load(path)
    >>> loaded.same_model(encoding), loaded.line_names
    (True, ['Hb-4862', 'OIII-5008', 'Ha-6564', 'NII-6585'])
    """

    plateifu: np.ndarray
    latents: np.ndarray
    error: np.ndarray
    line_errors: np.ndarray
    n_good: np.ndarray
    line_names: list[str]
    model_name: str
    model_sha256: str
    source: str = ""
    spaxel_errors: np.ndarray | None = None
    peak: np.ndarray | None = None
    peak_contrast: np.ndarray | None = None
    peak_error: np.ndarray | None = None
    pixels_per_reff: np.ndarray | None = None
    uid: np.ndarray | None = None
    galaxy_source: np.ndarray | None = None
    row: np.ndarray | None = None
    redshift: np.ndarray | None = None
    not_scored: Table | None = None
    grid: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_config: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        self.plateifu = np.asarray(self.plateifu, dtype=str)
        n = len(self.plateifu)
        self.latents = np.asarray(self.latents, dtype=np.float32)
        self.latents = self.latents.reshape(n, self.latents.shape[-1] if n == 0 else -1)
        self.error = np.asarray(self.error, dtype=np.float64)
        self.line_errors = np.asarray(self.line_errors, dtype=np.float64)
        self.line_errors = self.line_errors.reshape(n, len(self.line_names) if n == 0 else -1)
        self.n_good = np.asarray(self.n_good, dtype=np.int64)
        self.line_names = [str(name) for name in self.line_names]
        if self.line_errors.shape[1] != len(self.line_names):
            raise ValueError(
                f"line_errors has {self.line_errors.shape[1]} columns for "
                f"{len(self.line_names)} line names"
            )
        for name in ("error", "n_good"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, plateifu {n}")
        if self.peak is None:
            self.peak = np.full((n, 2), -1, dtype=np.int32)
        self.peak = np.asarray(self.peak, dtype=np.int32).reshape(n, 2)
        self.peak_contrast = _column(self.peak_contrast, n, np.nan, np.float64)
        self.peak_error = _column(self.peak_error, n, np.nan, np.float64)
        self.pixels_per_reff = _column(self.pixels_per_reff, n, np.nan, np.float64)
        self.redshift = _column(self.redshift, n, np.nan, np.float64)
        self.row = _column(self.row, n, None, np.int64, default=np.arange(n))
        self.galaxy_source = np.asarray(
            [""] * n if self.galaxy_source is None else self.galaxy_source, dtype=str
        )
        if self.uid is None:
            self.uid = unique_ids(self.plateifu)
        self.uid = np.asarray(self.uid, dtype=str)
        if self.not_scored is None:
            self.not_scored = _empty_failures()

    def __len__(self) -> int:
        return len(self.plateifu)

    def __repr__(self) -> str:
        return (
            f"<Encoding of {len(self)} galaxies ({len(self.not_scored)} not scored) by "
            f"{describe_model(self.model_name, self.model_sha256)}, "
            f"latent_dim={self.latents.shape[1]}>"
        )

    @property
    def latent_dim(self) -> int:
        """Length of a latent vector."""
        return int(self.latents.shape[1])

    def same_model(self, other: Encoding) -> bool:
        """True when ``other`` was made by the same model."""
        return self.model_sha256 == other.model_sha256

    def check_model(self, name: str, sha256: str, *, what: str = "the model") -> None:
        """Raise `ModelMismatchError` unless this encoding was made by the given model."""
        if sha256 != self.model_sha256:
            path = getattr(self, "path", None)
            label = f"{path} (an encoding of {self.source})" if path else self.source
            raise ModelMismatchError(
                f"{label or 'the encoding'} was encoded by "
                f"{describe_model(self.model_name, self.model_sha256)}, not by {what} "
                f"{describe_model(name, sha256)}; encode it again with that model "
                "(ifsrepr encode) or use the model that made it"
            )

    def index_of(self, key: str) -> int:
        """Row of a galaxy given its ``uid`` or plate-IFU.

        A plate-IFU that occurs more than once is ambiguous: the error lists
        the uids to use instead.
        """
        # A repeated plate-IFU is ambiguous even though its first uid is the
        # plate-IFU itself: the user may mean either observation.
        matches = np.flatnonzero(self.plateifu == key)
        if len(matches) == 0:
            matches = np.flatnonzero(self.uid == key)
        if len(matches) == 1:
            return int(matches[0])
        if len(matches) > 1:
            raise KeyError(
                f"{key} occurs {len(matches)} times; use one of {', '.join(self.uid[matches])}"
            )
        failed = self.not_scored["plateifu"] == key
        if np.any(failed):
            reason = self.not_scored["reason"][np.flatnonzero(failed)[0]]
            raise KeyError(f"{key} was not encoded ({reason})")
        raise KeyError(f"{key} is not in {self.source or 'this encoding'} ({len(self)} galaxies)")

    def select(self, rows: Sequence[int] | np.ndarray) -> Encoding:
        """A new encoding with only the given rows (the failures are kept)."""
        rows = np.asarray(rows)
        arrays = {
            field.name: getattr(self, field.name)[rows]
            for field in dataclasses.fields(self)
            if isinstance(getattr(self, field.name), np.ndarray)
        }
        return dataclasses.replace(self, **arrays)

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the encoding to an HDF5 file, atomically.

        Returns
        -------
        pathlib.Path
        """
        path = Path(path)
        strings = h5py.string_dtype()
        with atomic_path(path) as temporary, h5py.File(temporary, "w") as out:
            out.attrs["format"] = ENCODING_FORMAT
            out.attrs["format_version"] = ENCODING_VERSION
            out.attrs["model_name"] = self.model_name
            out.attrs["model_sha256"] = self.model_sha256
            out.attrs["model_config"] = self.model_config
            out.attrs["source"] = self.source
            out.attrs["line_names"] = json.dumps(self.line_names)
            out.attrs["grid"] = json.dumps(self.grid)
            out.attrs["created"] = self.created
            from .. import __version__

            out.attrs["ifsrepr_version"] = __version__
            for name in ("plateifu", "uid", "galaxy_source"):
                out.create_dataset(name, data=getattr(self, name).astype(object), dtype=strings)
            for name in (
                "latents", "error", "line_errors", "n_good", "peak", "peak_contrast",
                "peak_error", "pixels_per_reff", "row", "redshift",
            ):  # fmt: skip
                out.create_dataset(name, data=getattr(self, name))
            if self.spaxel_errors is not None and len(self):
                out.create_dataset(
                    "spaxel_errors",
                    data=self.spaxel_errors,
                    chunks=(1, *self.spaxel_errors.shape[1:]),
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
            failed = out.create_group("not_scored")
            for name in ("plateifu", "source", "reason"):
                values = np.asarray(self.not_scored[name], dtype=str).astype(object)
                failed.create_dataset(name, data=values, dtype=strings)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, spaxel_errors: bool = True) -> Encoding:
        """Read an encoding written by `save`.

        Parameters
        ----------
        path : path-like
            The HDF5 file.
        spaxel_errors : bool
            Also read the per-spaxel error maps (skip them for speed when
            only scores or similarity are needed).

        Raises
        ------
        ifsrepr.FileFormatError
            For a file that is not an encoding, or from a newer ifsrepr.
        """
        path = Path(path)
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
        with handle:
            if handle.attrs.get("format") != ENCODING_FORMAT:
                raise FileFormatError(
                    f"{path}: not an ifsrepr encoding (write one with `ifsrepr encode`)"
                )
            if int(handle.attrs.get("format_version", 0)) > ENCODING_VERSION:
                raise FileFormatError(f"{path}: written by a newer ifsrepr; upgrade to read it")

            def text(name: str, group: Any = handle) -> np.ndarray:
                return np.asarray(group[name].asstr()[()], dtype=str)

            failed = handle["not_scored"]
            not_scored = Table(
                {name: text(name, failed) for name in ("plateifu", "source", "reason")}
            )
            maps = None
            if spaxel_errors and "spaxel_errors" in handle:
                maps = handle["spaxel_errors"][()]
            attrs = handle.attrs
            encoding = cls(
                plateifu=text("plateifu"),
                uid=text("uid"),
                galaxy_source=text("galaxy_source"),
                latents=handle["latents"][()],
                error=handle["error"][()],
                line_errors=handle["line_errors"][()],
                n_good=handle["n_good"][()],
                peak=handle["peak"][()],
                peak_contrast=handle["peak_contrast"][()],
                peak_error=handle["peak_error"][()],
                pixels_per_reff=handle["pixels_per_reff"][()],
                row=handle["row"][()],
                redshift=handle["redshift"][()],
                spaxel_errors=maps,
                line_names=json.loads(_text_attr(attrs["line_names"])),
                grid=json.loads(_text_attr(attrs["grid"])),
                model_name=_text_attr(attrs["model_name"]),
                model_sha256=_text_attr(attrs["model_sha256"]),
                model_config=_text_attr(attrs.get("model_config", "")),
                source=_text_attr(attrs.get("source", "")),
                created=_text_attr(attrs.get("created", "")),
                not_scored=not_scored,
            )
        encoding.path = str(path)
        return encoding


def is_encoding_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is an HDF5 file written by `Encoding.save`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import ifsrepr
    >>> from ifsrepr.scoring import Encoding, is_encoding_file
    >>> encoding = Encoding(plateifu=["8485-1901"], latents=[[0.1, 0.2]], error=[1.0],
    ...                     line_errors=[[1.0]], n_good=[100], line_names=["Ha-6564"],
    ...                     model_name="demo", model_sha256="0" * 64)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = encoding.save(Path(tmp) / "encoding.h5")
    ...     is_encoding_file(path)
    True
    >>> is_encoding_file(ifsrepr.datasets.get_path("manga-7815-3702-maps"))  # a FITS file
    False
    """
    try:
        with h5py.File(path, "r") as handle:
            return handle.attrs.get("format") == ENCODING_FORMAT
    except (OSError, ValueError):
        return False


def _text_attr(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _column(values, n: int, fill, dtype, default=None) -> np.ndarray:
    if values is None:
        return np.asarray(default if default is not None else np.full(n, fill), dtype=dtype)
    values = np.asarray(values, dtype=dtype)
    if values.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {values.shape}")
    return values


def _empty_failures() -> Table:
    return Table(
        {"plateifu": np.array([], dtype=str), "source": np.array([], dtype=str),
         "reason": np.array([], dtype=str)}
    )  # fmt: skip


def unique_ids(plateifu: Sequence[str] | np.ndarray) -> np.ndarray:
    """Plate-IFUs made unique: second and later occurrences get ``#2``, ``#3``...

    Examples
    --------
    >>> from ifsrepr.scoring.encoding import unique_ids
    >>> unique_ids(["8485-1901", "7443-12703", "8485-1901"]).tolist()
    ['8485-1901', '7443-12703', '8485-1901#2']
    """
    seen: Counter[str] = Counter()
    out = []
    for name in plateifu:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return np.asarray(out, dtype=str)


def warn_duplicates(plateifu: np.ndarray, where: str) -> None:
    """Warn with `DuplicatePlateIFUWarning` if plate-IFUs repeat."""
    counts = Counter(str(p) for p in plateifu)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        listed = ", ".join(f"{name} (x{counts[name]})" for name in repeated[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        warnings.warn(
            f"{where}: {len(repeated)} plate-IFU(s) occur more than once: {listed}{more}; "
            "each occurrence is kept and scored separately (uids PLATEIFU#2, #3...)",
            DuplicatePlateIFUWarning,
            stacklevel=3,
        )


# -- encoding ------------------------------------------------------------------------------

_FILE_PLATEIFU = re.compile(r"(\d{4,5}-\d{3,5})")


def _plateifu_from_source(source: str) -> str:
    match = _FILE_PLATEIFU.search(Path(source).name)
    return match.group(1) if match else Path(source).name


def encode_dataset(
    encoder: Any,
    data: str | os.PathLike | Any | Iterable[LineStack],
    *,
    batch_size: int = 32,
    progress: bool = True,
    spaxel_errors: bool = True,
) -> Encoding:
    """Encode a survey and measure how well each galaxy is reconstructed.

    Parameters
    ----------
    encoder : IFSEncoder
        A fitted encoder.
    data : path-like, SurveyDataset or iterable of LineStack
        A survey dataset (``ifsrepr extract`` output; its galaxies are
        normalised with the *encoder's* preprocessing, so the grids must
        match), or line stacks as read or extracted.
    batch_size : int
        Galaxies per forward pass.
    progress : bool
        Show a progress bar on stderr.
    spaxel_errors : bool
        Keep the per-spaxel error maps (``n * size**2`` float16 values).

    Returns
    -------
    Encoding
        Extraction failures recorded in the dataset, and stacks that cannot
        be encoded (no line in common with the model, nothing unmasked on
        the grid), are listed in ``not_scored``.

    Warns
    -----
    DuplicatePlateIFUWarning
        When a plate-IFU occurs more than once (all occurrences are kept).

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid, and a small PCA encoder
    fitted on it:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> from ifsrepr.scoring import encode_dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> encoding = encode_dataset(encoder, dataset, progress=False)
    >>> encoding
    <Encoding of 4 galaxies (0 not scored) by unsaved pca model (sha256 ...), latent_dim=3>
    >>> encoding.line_errors.shape, encoding.spaxel_errors.shape
    ((4, 19), (4, 16, 16))
    >>> tmp.cleanup()
    """
    import torch

    if not hasattr(encoder, "network_"):
        raise IFSReprError("the encoder is not fitted; fit it or load one with from_pretrained")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    preprocessor = encoder.preprocessor_
    loader, info, source = _batches(encoder, data, batch_size)
    name, sha256 = model_identity(encoder)
    size = int(preprocessor.size)

    network = encoder.network_
    network.eval()
    param = next(network.parameters(), None)
    device = param.device if param is not None else next(network.buffers()).device
    parts: dict[str, list[np.ndarray]] = {key: [] for key in _BATCH_KEYS}
    bar = _progress(len(info["plateifu"]), progress)
    with torch.no_grad():
        for x, w in loader:
            x = x.to(device)
            w = w.to(device)
            x_hat, latent, _ = network(x, w)
            for key, value in _batch_errors(x, w, x_hat, spaxel_errors).items():
                parts[key].append(value)
            parts["latents"].append(latent.float().cpu().numpy())
            bar.update(len(x))
    bar.close()
    n = len(info["plateifu"])
    arrays = {
        key: (
            np.concatenate(values)
            if values
            else _empty(key, int(network.latent_dim), len(preprocessor.line_names), size)
        )
        for key, values in parts.items()
    }
    if not spaxel_errors:
        arrays["spaxel_errors"] = None
    plateifu = np.asarray(info["plateifu"], dtype=str)
    warn_duplicates(plateifu, source)
    if preprocessor.grid == "reff":
        per_reff = np.full(n, size / (2.0 * float(preprocessor.n_reff)))
    else:
        per_reff = np.asarray(info["reff"], dtype=np.float64) / _NATIVE_PIXEL_SCALE
    return Encoding(
        plateifu=plateifu,
        latents=arrays["latents"],
        error=arrays["error"],
        line_errors=arrays["line_errors"],
        n_good=arrays["n_good"],
        spaxel_errors=arrays["spaxel_errors"],
        peak=arrays["peak"],
        peak_contrast=arrays["peak_contrast"],
        peak_error=arrays["peak_error"],
        pixels_per_reff=per_reff,
        galaxy_source=np.asarray(info["source"], dtype=str),
        row=np.asarray(info["row"], dtype=np.int64),
        redshift=np.asarray(info["redshift"], dtype=np.float64),
        line_names=list(preprocessor.line_names),
        model_name=name,
        model_sha256=sha256,
        model_config=json.dumps(encoder.config(), default=_json_default),
        source=source,
        grid={
            "grid": preprocessor.grid,
            "size": size,
            "n_reff": float(preprocessor.n_reff),
        },
        not_scored=info["failures"],
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


_BATCH_KEYS = (
    "latents", "error", "line_errors", "n_good", "spaxel_errors", "peak", "peak_contrast",
    "peak_error",
)  # fmt: skip


def _empty(key: str, latent_dim: int, n_lines: int, size: int) -> np.ndarray:
    shapes = {
        "latents": (0, latent_dim), "error": (0,), "line_errors": (0, n_lines), "n_good": (0,),
        "spaxel_errors": (0, size, size), "peak": (0, 2), "peak_contrast": (0,),
        "peak_error": (0,),
    }  # fmt: skip
    return np.zeros(shapes[key])


def _batch_errors(x, w, x_hat, keep_maps: bool) -> dict[str, np.ndarray]:
    """Reconstruction errors of a batch, from 4-D ``(batch, lines, H, W)`` tensors."""
    import torch
    import torch.nn.functional as F

    if x_hat.dim() == 5:
        x_hat = x_hat[:, :, 0]
    good = (w > 0) & torch.isfinite(w) & torch.isfinite(x)
    chi = torch.where(good, w * (x_hat.to(x.dtype) - x) ** 2, torch.zeros((), dtype=x.dtype))
    chi = chi.double()  # sums of many pixels: float32 would lose digits on 1e5-pixel stacks
    count = good.double()
    n_pix = count.sum(dim=(1, 2, 3))
    error = chi.sum(dim=(1, 2, 3)) / n_pix.clamp_min(1)
    line_count = count.sum(dim=(2, 3))
    line_errors = torch.where(
        line_count > 0, chi.sum(dim=(2, 3)) / line_count.clamp_min(1), torch.nan
    )
    spaxel_sum, spaxel_count = chi.sum(dim=1), count.sum(dim=1)
    spaxel = torch.where(spaxel_count > 0, spaxel_sum / spaxel_count.clamp_min(1), torch.nan)
    # The peak of a 3x3 box average (of sums and counts separately, so masked
    # spaxels do not pull it down): one hot pixel of noise should not decide
    # where a galaxy's problem lies.
    smooth_sum = F.avg_pool2d(spaxel_sum[:, None], 3, stride=1, padding=1)[:, 0]
    smooth_count = F.avg_pool2d(spaxel_count[:, None], 3, stride=1, padding=1)[:, 0]
    smooth = torch.where(smooth_count > 0, smooth_sum / smooth_count.clamp_min(1e-12), -1.0)
    flat = smooth.flatten(1).argmax(dim=1)
    width = smooth.shape[-1]
    peak = torch.stack([flat // width, flat % width], dim=1)
    mean = torch.nanmean(spaxel.flatten(1), dim=1)
    peak_error = smooth.flatten(1).max(dim=1).values
    contrast = peak_error / mean
    out = {
        "error": torch.where(n_pix > 0, error, torch.nan).cpu().numpy(),
        "line_errors": line_errors.cpu().numpy(),
        "n_good": n_pix.long().cpu().numpy(),
        "peak": peak.int().cpu().numpy(),
        "peak_contrast": contrast.cpu().numpy(),
        "peak_error": torch.where(n_pix > 0, peak_error, torch.nan).cpu().numpy(),
    }
    if keep_maps:
        # float16 keeps the maps at a quarter of float64's size; chi-square
        # values beyond its range (65504) only occur for broken data, which
        # stays recognisably saturated.
        limit = float(np.finfo(np.float16).max)
        out["spaxel_errors"] = spaxel.clamp(max=limit).to(torch.float16).cpu().numpy()
    else:
        out["spaxel_errors"] = np.zeros((len(x), 0, 0), dtype=np.float16)
    return out


def _batches(encoder: Any, data: Any, batch_size: int):
    """(iterable of (x, w) batches, per-galaxy info, source description)."""
    from ..dataset import SurveyDataset, load_failures, load_metadata

    if isinstance(data, (str, os.PathLike)):
        data = Path(data)
        if is_encoding_file(data):
            raise IFSReprError(f"{data} is already an encoding; score it directly")
        dataset = SurveyDataset(data, preprocessor=encoder.preprocessor_)
    elif isinstance(data, SurveyDataset):
        dataset = SurveyDataset(data.path, preprocessor=encoder.preprocessor_, indices=data.indices)
    elif isinstance(data, LineStack):
        return _stack_batches(encoder, [data], batch_size)
    else:
        stacks = list(data)
        if not all(isinstance(stack, LineStack) for stack in stacks):
            raise TypeError(
                "encode_dataset takes a survey dataset (path or SurveyDataset) or LineStacks"
            )
        return _stack_batches(encoder, stacks, batch_size)

    table = load_metadata(dataset.path)
    rows = dataset.indices
    reff = np.asarray(table["reff"], dtype=np.float64)[rows]
    # reff is in arcsec; on a native grid that is 0.5" pixels (see _NATIVE_PIXEL_SCALE).
    info = {
        "plateifu": [str(p) for p in np.asarray(table["plateifu"], dtype=str)[rows]],
        "source": [str(s) for s in np.asarray(table["source"], dtype=str)[rows]],
        "redshift": np.asarray(table["redshift"], dtype=np.float64)[rows],
        "reff": reff,
        "row": rows,
    }
    failures = load_failures(dataset.path)
    info["failures"] = (
        Table(
            {
                "plateifu": np.asarray(
                    [_plateifu_from_source(str(s)) for s in failures["source"]], dtype=str
                ),
                "source": np.asarray(failures["source"], dtype=str),
                "reason": np.asarray(failures["reason"], dtype=str),
            }
        )
        if len(failures)
        else _empty_failures()
    )
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    batches = ((x, w) for x, w, _ in loader)
    return batches, info, str(dataset.path)


def _stack_batches(encoder: Any, stacks: list[LineStack], batch_size: int):
    import torch

    preprocessor = encoder.preprocessor_
    xs, ws = [], []
    info: dict[str, Any] = {"plateifu": [], "source": [], "redshift": [], "reff": [], "row": []}
    failed: list[tuple[str, str, str]] = []
    for i, stack in enumerate(stacks):
        label = str(stack.meta.get("plateifu") or stack.name)
        if label == "unnamed stack":
            label = f"stack-{i}"
        origin = str(stack.meta.get("filename") or stack.meta.get("source") or "")
        reason = None
        if not set(stack.line_names) & set(preprocessor.line_names):
            reason = "no line in common with the model"
        else:
            try:
                x, w = preprocessor.transform(stack)
            except IFSReprError as exc:
                reason = str(exc)
            else:
                if not (w > 0).any():
                    reason = "every pixel is masked on the model grid"
        if reason is not None:
            failed.append((label, origin, reason))
            continue
        xs.append(x)
        ws.append(w)
        info["plateifu"].append(label)
        info["source"].append(origin)
        info["redshift"].append(np.nan if stack.redshift is None else stack.redshift)
        reff = stack.meta.get("reff")
        info["reff"].append(np.nan if reff is None else float(reff))
        info["row"].append(i)
    info["failures"] = (
        Table(rows=failed, names=("plateifu", "source", "reason"), dtype=(str, str, str))
        if failed
        else _empty_failures()
    )
    x_all = np.stack(xs) if xs else np.zeros((0,))
    w_all = np.stack(ws) if ws else np.zeros((0,))

    def batches():
        for start in range(0, len(xs), batch_size):
            yield (
                torch.from_numpy(x_all[start : start + batch_size]),
                torch.from_numpy(w_all[start : start + batch_size]),
            )

    return batches(), info, f"<{len(stacks)} LineStacks>"


def _progress(total: int, show: bool):
    if show:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="galaxy", desc="encoding")

    class _Quiet:
        def update(self, n: int) -> None:
            pass

        def close(self) -> None:
            pass

    return _Quiet()
