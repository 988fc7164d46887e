"""Scratch arrays that the extraction engine reuses from one slab (and cube) to the next.

Why this exists: a slab of a MaNGA cube is a few MB per array, and fresh
arrays of that size come from the operating system as untouched pages,
each of which costs a page fault on first write. Measured on a 74x74 cube,
the 19-line ``window`` extraction took about 25,000 page faults, half its
time. Writing into buffers that stay allocated costs them once per thread
instead of once per slab.

A `Scratch` hands out views of named buffers; a view stays valid until the
same name is asked for again, so each user owns its names (the window
extractor takes the thread's `Scratch` and gives each stage its own prefix).
The buffers are held per thread (`thread_scratch`), so concurrent
extractions in threads never share one; they grow to the largest slabs seen
(46 MB for the 19 lines of a 74x74 MaNGA cube) and are kept for the next
cube, which then extracts about a quarter faster.
``thread_scratch().clear()`` gives the memory back.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["Scratch", "thread_scratch"]


class Scratch:
    """Named, growable buffers returned as arrays of any shape and type.

    Examples
    --------
    >>> from ifsrepr.extraction.scratch import Scratch
    >>> scratch = Scratch()
    >>> a = scratch.array("flux", (3, 4), float)
    >>> a[:] = 1.0
    >>> b = scratch.array("flux", (2, 2), float)  # the same memory, reused
    >>> bool(np.shares_memory(a, b)), b.shape
    (True, (2, 2))
    >>> scratch.nbytes
    96
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """An uninitialised array of ``shape`` in buffer ``name`` (reusing its memory)."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < nbytes:
            # 8-byte items keep every view aligned for any numeric type.
            buffer = np.empty(-(-nbytes // 8), dtype=np.float64).view(np.uint8)
            self._buffers[name] = buffer
        return buffer[:nbytes].view(dtype).reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(buffer.size for buffer in self._buffers.values())

    def clear(self) -> None:
        """Give the memory back."""
        self._buffers.clear()


_local = threading.local()


def thread_scratch() -> Scratch:
    """The calling thread's `Scratch` (made on first use).

    Examples
    --------
    >>> from ifsrepr.extraction.scratch import thread_scratch
    >>> thread_scratch() is thread_scratch()
    True
    """
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = Scratch()
    return scratch
