r"""The encoder as a compressor: bytes of each representation of a survey, and what is kept.

A survey team archiving or shipping a survey can keep the cubes, the
emission-line stacks extracted from them, or one latent vector per galaxy
(plus the decoder that expands it back into maps). `compression_table` puts
the three side by side for a survey dataset, with the fidelity of each
encoder's reconstruction measured on that dataset as the fraction of
variance explained (FVE) of the normalised stacks, the measure of the model
card:

.. math::

    \mathrm{FVE} = 1 - \frac{\sum w (x - \hat{x})^2}{\sum w (x - \bar{x}_\ell)^2}

with the loss weights ``w`` (inverse variances, 0 where masked) and
``\bar{x}_\ell`` the weighted mean of line ``l`` over the galaxies measured.

What the bytes count: a DR17 LOGCUBE's ``FLUX``, ``IVAR`` (float32) and
``MASK`` (int32) arrays, ``N x N x 4563`` with ``N`` set by the IFU bundle
(34 for 19 fibres to 74 for 127), uncompressed; the real files hold more
(LSF cubes, spectral resolution, reconstructed images), so this is a lower
bound. Line stacks: the dataset's ``flux``, ``ivar`` (float32) and ``mask``
(uint8) arrays, uncompressed, and the dataset's files on disk (compressed).
Latents: ``n x latent_dim`` float32, plus, once for the whole survey, the
model's weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from .errors import ProbeError

__all__ = [
    "compression_table",
    "cube_bytes",
    "fraction_of_variance_explained",
    "reconstruction_fve",
]

#: Bytes per LOGCUBE voxel kept: FLUX and IVAR (float32) and MASK (int32).
CUBE_BYTES_PER_VOXEL = 4 + 4 + 4
#: Bytes per dataset pixel: flux and ivar (float32) and mask (uint8).
STACK_BYTES_PER_PIXEL = 4 + 4 + 1


def cube_bytes(plateifu: Sequence[str] | np.ndarray) -> np.ndarray:
    """Bytes of each galaxy's LOGCUBE ``FLUX``, ``IVAR`` and ``MASK`` arrays, by its IFU design.

    Examples
    --------
    >>> from ifsrepr.probes import cube_bytes
    >>> int(cube_bytes(["8485-1901"])[0]), int(cube_bytes(["7443-12703"])[0])  # 34x34, 74x74
    (63297936, 299843856)
    """
    from ..mock.instrument import N_WAVE, cube_size

    out = np.empty(len(plateifu), dtype=np.int64)
    for i, name in enumerate(plateifu):
        try:
            ifudesign = int(str(name).split("#")[0].split("-")[1])
            side = cube_size(ifudesign)
        except (IndexError, ValueError):
            raise ProbeError(
                f"{name!r} is not a MaNGA plate-IFU (PLATE-IFUDESIGN); the cube size follows "
                "from the IFU design"
            ) from None
        out[i] = side * side * N_WAVE * CUBE_BYTES_PER_VOXEL
    return out


def fraction_of_variance_explained(
    x: np.ndarray, x_hat: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, float]:
    """Weighted FVE per line and overall, of arrays ``(n, n_lines, H, W)``.

    Returns
    -------
    per_line : numpy.ndarray
        ``(n_lines,)``; NaN for a line with no weight.
    overall : float

    Examples
    --------
    >>> import numpy as np
    >>> from ifsrepr.probes import fraction_of_variance_explained
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(10, 2, 4, 4))  # 10 galaxies, 2 lines of 4x4 pixels
    >>> w = np.ones_like(x)
    >>> fraction_of_variance_explained(x, x, w)  # a perfect reconstruction
    (array([1., 1.]), 1.0)
    >>> per_line, overall = fraction_of_variance_explained(x, x + 0.1 * rng.normal(size=x.shape), w)
    >>> per_line.round(3), round(overall, 3)
    (array([0.993, 0.988]), 0.991)
    """
    sums = _FVESums(np.shape(x)[1])
    sums.add(np.asarray(x), np.asarray(x_hat), np.asarray(w))
    return sums.result()


class _FVESums:
    """Running per-line sums, so the FVE of a whole survey needs one pass and no storage."""

    def __init__(self, n_lines: int) -> None:
        self.w = np.zeros(n_lines)
        self.wx = np.zeros(n_lines)
        self.wxx = np.zeros(n_lines)
        self.residual = np.zeros(n_lines)

    def add(self, x: np.ndarray, x_hat: np.ndarray, w: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        good = (w > 0) & np.isfinite(x) & np.isfinite(w) & np.isfinite(x_hat)
        w = np.where(good, w, 0.0)
        x = np.where(good, x, 0.0)
        x_hat = np.where(good, np.asarray(x_hat, dtype=np.float64), 0.0)
        axes = (0, 2, 3)
        self.w += w.sum(axis=axes)
        self.wx += (w * x).sum(axis=axes)
        self.wxx += (w * x * x).sum(axis=axes)
        self.residual += (w * (x - x_hat) ** 2).sum(axis=axes)

    def result(self) -> tuple[np.ndarray, float]:
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = self.wxx - self.wx**2 / self.w
            per_line = np.where((self.w > 0) & (spread > 0), 1 - self.residual / spread, np.nan)
            used = (self.w > 0) & (spread > 0)
            overall = 1 - self.residual[used].sum() / spread[used].sum()
        return per_line, float(overall)


def reconstruction_fve(
    encoder: Any,
    dataset: str | os.PathLike,
    *,
    rows: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, float]:
    """The FVE of an encoder's reconstructions of a survey dataset's galaxies.

    Parameters
    ----------
    encoder : IFSEncoder
        Fitted; the dataset is normalised with its preprocessing.
    dataset : path-like
        ``ifsrepr extract`` output on the encoder's grid.
    rows : sequence of int, optional
        Dataset rows to measure (default all): pass galaxies the encoder
        was not fitted on.
    batch_size : int
        Galaxies per forward pass.

    Returns
    -------
    per_line, overall
        As `fraction_of_variance_explained`.

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid and a three-component PCA
    encoder fitted on it:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> from ifsrepr.probes import reconstruction_fve
    >>> per_line, overall = reconstruction_fve(encoder, dataset)
    >>> per_line.shape, 0 < overall <= 1
    ((19,), True)
    >>> tmp.cleanup()
    """
    import torch

    from ..dataset import SurveyDataset

    data = SurveyDataset(dataset, preprocessor=encoder.preprocessor_, indices=rows)
    if len(data) == 0:
        raise ProbeError("no galaxies to measure")
    network = encoder.network_
    network.eval()
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else next(network.buffers()).device
    sums = _FVESums(len(encoder.preprocessor_.line_names))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        for x, w, _ in loader:
            x_hat = network(x.to(device), w.to(device))[0]
            if x_hat.dim() == 5:  # (batch, lines, channels=1, H, W)
                x_hat = x_hat[:, :, 0]
            sums.add(x.numpy(), x_hat.float().cpu().numpy(), w.numpy())
    return sums.result()


def _model_bytes(encoder: Any) -> int:
    network = encoder.network_
    tensors = list(network.parameters()) + list(network.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


def _disk_bytes(path: Path) -> int:
    from ..dataset.writer import parts_dir_for

    total = path.stat().st_size
    parts = parts_dir_for(path)
    if parts.is_dir():
        total += sum(p.stat().st_size for p in parts.rglob("*") if p.is_file())
    return int(total)


def compression_table(
    dataset: str | os.PathLike,
    encoders: Any | Mapping[str, Any] | None = None,
    *,
    rows: Sequence[int] | np.ndarray | Mapping[str, Sequence[int]] | None = None,
    batch_size: int = 32,
) -> Table:
    """Bytes of a survey as cubes, as line stacks and as latents, with each encoder's FVE.

    Parameters
    ----------
    dataset : path-like
        The survey dataset (``ifsrepr extract`` output).
    encoders : IFSEncoder or mapping, optional
        One encoder or ``{name: encoder}`` to measure (e.g. the bundled
        model and a PCA of the same latent size).
    rows : sequence of int or mapping, optional
        Dataset rows on which each encoder's FVE is measured (a mapping
        gives them per encoder name): galaxies it was not fitted on.
    batch_size : int
        Galaxies per forward pass.

    Returns
    -------
    astropy.table.Table
        One row per representation: ``representation``, ``bytes`` (the
        whole survey, uncompressed), ``per_galaxy``, ``vs_cubes`` and
        ``vs_stacks`` (how many times smaller than the cubes and than the
        line stacks), ``fixed_bytes`` (stored once whatever the number of
        galaxies: the model's weights), ``fve`` (of the normalised stacks;
        1 for the stacks themselves, which are the reference, and NaN for
        the cubes, from which the stacks are extracted) and ``note``.
        ``meta['n_galaxies']``, ``meta['dataset_disk_bytes']``.

    Examples
    --------
    A mock survey of four galaxies on a 16x16 grid and a three-component PCA
    encoder fitted on it:

    >>> import tempfile
    >>> import ifsrepr
    >>> from ifsrepr.mock import small_survey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> dataset, truth = small_survey(tmp.name)
    >>> encoder = ifsrepr.IFSEncoder("pca", n_components=3, n_iter=2, device="cpu")
    >>> encoder = encoder.fit(dataset, progress=False, validation_fraction=0.0)
    >>> from ifsrepr.probes import compression_table
    >>> table = compression_table(dataset, encoder)
    >>> table["representation", "bytes", "fixed_bytes"]
    <Table length=3>
                   representation                 bytes   fixed_bytes
                        str43                     int64      int64
    ------------------------------------------- --------- -----------
               cubes (LOGCUBE FLUX, IVAR, MASK) 253191744           0
    line stacks (19 x 16 x 16 flux, ivar, mask)    175104           0
                     latents: pca (3 x float32)        48       ...
    >>> tmp.cleanup()
    """
    import h5py

    from ..dataset import load_metadata

    path = Path(dataset)
    table = load_metadata(path)
    plateifu = np.asarray(table["plateifu"], dtype=str)
    n = len(plateifu)
    if n == 0:
        raise ProbeError(f"{path}: the dataset has no galaxies")
    with h5py.File(path, "r") as handle:
        shape = tuple(handle["flux"].shape[1:])
    cubes = int(cube_bytes(plateifu).sum())
    stacks = int(n * np.prod(shape) * STACK_BYTES_PER_PIXEL)
    out = [
        ("cubes (LOGCUBE FLUX, IVAR, MASK)", cubes, 0, np.nan,
         f"N x N x 4563 by IFU bundle; {n} galaxies"),
        (f"line stacks ({' x '.join(map(str, shape))} flux, ivar, mask)", stacks, 0, 1.0,
         f"the dataset's arrays; {_disk_bytes(path)} bytes compressed on disk"),
    ]  # fmt: skip
    if encoders is not None and not isinstance(encoders, Mapping):
        encoders = {getattr(encoders, "architecture", "encoder"): encoders}
    for name, encoder in (encoders or {}).items():
        chosen = rows.get(name) if isinstance(rows, Mapping) else rows
        _, fve = reconstruction_fve(encoder, path, rows=chosen, batch_size=batch_size)
        dim = int(encoder.network_.latent_dim)
        measured = n if chosen is None else len(chosen)
        out.append(
            (f"latents: {name} ({dim} x float32)", n * dim * 4, _model_bytes(encoder), fve,
             f"FVE on {measured} galaxies; the decoder's weights are stored once")
        )  # fmt: skip
    result = Table(
        rows=out,
        names=("representation", "bytes", "fixed_bytes", "fve", "note"),
        dtype=(str, np.int64, np.int64, np.float64, str),
    )
    result.add_column(result["bytes"] / n, name="per_galaxy", index=2)
    result.add_column(cubes / result["bytes"], name="vs_cubes", index=3)
    result.add_column(stacks / result["bytes"], name="vs_stacks", index=4)
    result["per_galaxy"].format = ".4g"
    result["vs_cubes"].format = result["vs_stacks"].format = ".4g"
    result["fve"].format = ".3f"
    result.meta.update({"n_galaxies": n, "dataset_disk_bytes": _disk_bytes(path)})
    return result
