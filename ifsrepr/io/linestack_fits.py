"""Reader plugin ``linestack``: files written by `ifsrepr.LineStack.write`.

So that stacks saved by ifsrepr (extracted maps, mock surveys written with
``--products linestack``) flow through `ifsrepr.read` and ``ifsrepr extract``
like any survey file.
"""

from __future__ import annotations

import os
from pathlib import Path

from astropy.io import fits

from ..linestack import FILE_FORMAT, LineStack
from ..plugins import hookimpl

__all__ = ["LineStackReader"]


class LineStackReader:
    """Read ifsrepr's own line-stack FITS files."""

    name = "linestack"

    def identify(self, path: Path, header: fits.Header | None) -> bool:
        """Files whose primary header says ``FORMAT = 'IFSREPR-LINESTACK'``."""
        return header is not None and header.get("FORMAT") == FILE_FORMAT

    def read(self, path: str | os.PathLike) -> LineStack:
        """Read the stack (see `LineStack.read`)."""
        return LineStack.read(path)


@hookimpl
def ifsrepr_register_readers(register):
    """Register the line-stack reader."""
    register(LineStackReader())
