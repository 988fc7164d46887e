"""Train/validation split by galaxy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_by_galaxy"]


def split_by_galaxy(
    n: int,
    validation_fraction: float,
    seed: int,
    groups: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows ``0..n-1`` into training and validation indices.

    Rows sharing a group label (a MaNGA ID: the same galaxy observed under
    two plate-IFUs) always land on the same side, so no galaxy is in both.

    Parameters
    ----------
    n : int
        Number of rows.
    validation_fraction : float
        Share of groups held out, in [0, 1).
    seed : int
        The split depends only on this, never on the global random state.
    groups : sequence of str, optional
        A label per row; default one group per row.

    Returns
    -------
    train, validation : numpy.ndarray
        Sorted row indices.

    Examples
    --------
    >>> from ifsrepr.training import split_by_galaxy
    >>> train, val = split_by_galaxy(10, 0.2, seed=0)
    >>> len(train), len(val), set(train) & set(val)
    (8, 2, set())
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    labels = np.arange(n).astype(str) if groups is None else np.asarray(groups, dtype=str)
    if labels.size != n:
        raise ValueError(f"{labels.size} group labels for {n} rows")
    unique = np.unique(labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(unique.size)
    n_val = int(round(validation_fraction * unique.size))
    if validation_fraction > 0 and unique.size > 1:
        n_val = min(max(n_val, 1), unique.size - 1)
    held_out = set(unique[order[:n_val]])
    in_val = np.array([label in held_out for label in labels], dtype=bool)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)
