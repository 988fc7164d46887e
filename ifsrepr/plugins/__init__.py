"""The plugin system: hook specifications, discovery, and registries.

Third-party packages extend ifsrepr by declaring a module in the ``ifsrepr``
entry-point group that implements some of the hooks in
`ifsrepr.plugins.hookspecs` with the `ifsrepr.hookimpl` marker.
"""

from .hookspecs import hookimpl
from .manager import (
    BLOCK_VARIABLE,
    ENTRY_POINT_GROUP,
    PluginRegistries,
    blocked_plugins,
    get_registries,
    load_registries,
    reset,
)
from .pretrained import PretrainedModel
from .registry import Registration, Registry

__all__ = [
    "BLOCK_VARIABLE",
    "ENTRY_POINT_GROUP",
    "PluginRegistries",
    "PretrainedModel",
    "Registration",
    "Registry",
    "blocked_plugins",
    "get_architectures",
    "get_line_extractors",
    "get_pretrained",
    "get_readers",
    "get_registries",
    "hookimpl",
    "load_registries",
    "reset",
]


def get_readers() -> Registry:
    """The registry of file readers (plugins are loaded on first use).

    Examples
    --------
    >>> from ifsrepr.plugins import get_readers
    >>> readers = get_readers()
    >>> "manga-maps" in readers, "manga-cube" in readers
    (True, True)
    >>> readers.registration("manga-maps").plugin
    'manga-maps'
    """
    return get_registries().readers


def get_line_extractors() -> Registry:
    """The registry of line extractors.

    Examples
    --------
    >>> from ifsrepr.plugins import get_line_extractors
    >>> "window" in get_line_extractors(), "gaussian" in get_line_extractors()
    (True, True)
    """
    return get_registries().line_extractors


def get_architectures() -> Registry:
    """The registry of encoder architectures.

    Examples
    --------
    >>> from ifsrepr.plugins import get_architectures
    >>> {"convlstm", "cnn-lstm", "pca"} <= set(get_architectures().names())
    True
    """
    return get_registries().architectures


def get_pretrained() -> Registry:
    """The registry of named pretrained models.

    Examples
    --------
    >>> from ifsrepr.plugins import get_pretrained
    >>> model = get_pretrained().get("manga-convlstm")
    >>> model.architecture, model.config["latent_dim"]
    ('convlstm', 128)
    """
    return get_registries().pretrained
