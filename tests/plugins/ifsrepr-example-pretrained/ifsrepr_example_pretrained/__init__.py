"""An example third-party ifsrepr plugin: pretrained weights shipped as a package.

It exists to show, and to test, how a package outside ifsrepr publishes a
named pretrained encoder through the ``ifsrepr`` entry-point group. After
``pip install``, ``ifsrepr.IFSEncoder.from_pretrained("example-bpt-pca")``
loads it with no network.
"""

from .plugin import CITATION, MODEL_NAME, SHA256, hosted_model, packaged_model

__all__ = ["CITATION", "MODEL_NAME", "SHA256", "hosted_model", "packaged_model"]
