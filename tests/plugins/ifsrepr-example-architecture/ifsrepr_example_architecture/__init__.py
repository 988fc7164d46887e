"""An example third-party ifsrepr plugin: the ``conv-ae`` encoder architecture.

It exists to show, and to test, how a package outside ifsrepr adds a network
through the ``ifsrepr`` entry-point group. After ``pip install``,
``ifsrepr.IFSEncoder("conv-ae")`` trains, saves and loads it like the
built-in architectures. Importing this package does not import torch; the
network lives in `ifsrepr_example_architecture.network`.
"""

from .plugin import CONV_AE

__all__ = ["CONV_AE"]
