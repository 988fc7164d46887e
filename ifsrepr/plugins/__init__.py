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
    """The registry of file readers (plugins are loaded on first use)."""
    return get_registries().readers


def get_line_extractors() -> Registry:
    """The registry of line extractors."""
    return get_registries().line_extractors


def get_architectures() -> Registry:
    """The registry of encoder architectures."""
    return get_registries().architectures


def get_pretrained() -> Registry:
    """The registry of named pretrained models."""
    return get_registries().pretrained
