"""An example third-party ifsrepr plugin: the ``narrowband`` line extractor.

It exists to show, and to test, how a package outside ifsrepr adds a way of
measuring emission lines through the ``ifsrepr`` entry-point group. After
``pip install``, ``ifsrepr.extract_lines(cube, method="narrowband")`` uses it.
"""

from .plugin import DEFAULT_SIDEBANDS, NarrowbandExtractor

__all__ = ["DEFAULT_SIDEBANDS", "NarrowbandExtractor"]
