"""Training checkpoints: atomic, verified, with a fallback to the previous one."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_path
from ..exceptions import IFSReprError

__all__ = ["CheckpointError", "save_checkpoint", "load_latest_checkpoint", "KEEP"]

#: How many epoch checkpoints are kept (the newest and the one before it).
KEEP = 2


class CheckpointError(IFSReprError):
    """No usable checkpoint could be loaded."""


def _paths(directory: Path) -> list[Path]:
    found = []
    for path in directory.glob("checkpoint-epoch*.pt"):
        stem = path.stem.removeprefix("checkpoint-epoch")
        if stem.isdigit():
            found.append((int(stem), path))
    return [path for _, path in sorted(found)]


def save_checkpoint(directory: str | os.PathLike, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``checkpoint-epochNNNN.pt`` atomically and prune all but the newest `KEEP`.

    Parameters
    ----------
    directory : path-like
        The run's output directory.
    epoch : int
        The epoch (from 0), in the file name.
    state : dict
        What to save; `load_latest_checkpoint` needs an ``"epoch"`` entry.

    Returns
    -------
    pathlib.Path
        The checkpoint written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from ifsrepr.training import save_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for epoch in range(4):
    ...         path = save_checkpoint(tmp, epoch, {"epoch": epoch})
    ...     kept = sorted(p.name for p in Path(tmp).iterdir())
    >>> path.name, kept
    ('checkpoint-epoch0003.pt', ['checkpoint-epoch0002.pt', 'checkpoint-epoch0003.pt'])
    """
    directory = Path(directory)
    target = directory / f"checkpoint-epoch{epoch:04d}.pt"
    with atomic_path(target) as temporary:
        torch.save(state, temporary)
    for old in _paths(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return target


def load_latest_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that loads, newest first; None if there is none at all.

    A checkpoint that fails to load (truncated, corrupt) is reported with a
    warning and skipped, so training resumes from the last good one.

    Raises
    ------
    CheckpointError
        If checkpoints exist but none of them loads.

    Examples
    --------
    A truncated newest checkpoint is skipped, with a warning, for the one before:

    >>> import tempfile
    >>> import warnings
    >>> from ifsrepr.training import load_latest_checkpoint, save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> print(load_latest_checkpoint(tmp.name))
    None
    >>> _ = save_checkpoint(tmp.name, 0, {"epoch": 0, "loss": 0.5})
    >>> newest = save_checkpoint(tmp.name, 1, {"epoch": 1, "loss": 0.4})
    >>> _ = newest.write_bytes(newest.read_bytes()[:100])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     state, path = load_latest_checkpoint(tmp.name)
    >>> path.name, state["loss"], len(caught)
    ('checkpoint-epoch0000.pt', 0.5, 1)
    >>> tmp.cleanup()
    """
    candidates = list(reversed(_paths(Path(directory))))
    if not candidates:
        return None
    for path in candidates:
        try:
            # weights_only: a checkpoint is data (tensors, numbers, strings),
            # never code to execute.
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("not an ifsrepr training checkpoint")
            return state, path
        except Exception as exc:
            warnings.warn(
                f"{path}: checkpoint is unreadable ({type(exc).__name__}: {exc}); "
                "trying the previous one",
                RuntimeWarning,
                stacklevel=2,
            )
    raise CheckpointError(
        f"{directory}: none of the checkpoints loads ({', '.join(p.name for p in candidates)})"
    )
