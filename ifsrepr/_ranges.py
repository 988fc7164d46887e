"""Merging ranges of channels or wavelengths: one implementation for every stage."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["merge_ranges"]


def merge_ranges(ranges: Iterable[tuple]) -> list[tuple]:
    """Sorted ``(low, high)`` ranges with the overlapping (or touching) ones merged.

    The values keep their type (channel indices stay integers).

    Examples
    --------
    >>> from ifsrepr._ranges import merge_ranges
    >>> merge_ranges([(5.0, 7.0), (1.0, 2.0), (1.5, 3.0)])
    [(1.0, 3.0), (5.0, 7.0)]
    >>> merge_ranges([(10, 20), (20, 25)])
    [(10, 25)]
    """
    merged: list[list] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [(low, high) for low, high in merged]
