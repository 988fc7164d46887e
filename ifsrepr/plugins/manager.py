"""Plugin discovery: entry points -> pluggy -> one registry per kind.

Nothing here runs at import time. The first call that needs a registry loads
the plugins (entry-point group ``ifsrepr``, minus those named in the
comma-separated environment variable ``IFSREPR_BLOCK_PLUGINS``), calls every
``ifsrepr_register_*`` hook with a ``register`` callable, and caches the
result. `reset` forgets it (tests use this after changing the environment).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import pluggy

from ..exceptions import PluginError
from . import hookspecs
from .registry import Registry

__all__ = [
    "BLOCK_VARIABLE",
    "ENTRY_POINT_GROUP",
    "PluginRegistries",
    "get_registries",
    "reset",
    "blocked_plugins",
]

ENTRY_POINT_GROUP = "ifsrepr"
BLOCK_VARIABLE = "IFSREPR_BLOCK_PLUGINS"


@dataclass
class PluginRegistries:
    """Everything the plugins registered, one registry per kind.

    Examples
    --------
    >>> from ifsrepr.plugins import PluginRegistries
    >>> empty = PluginRegistries()
    >>> empty.readers
    <Registry of 0 readers: >
    >>> sorted(empty.by_hook())
    ['ifsrepr_register_architectures', 'ifsrepr_register_line_extractors',
     'ifsrepr_register_pretrained', 'ifsrepr_register_readers']
    """

    readers: Registry = field(
        default_factory=lambda: Registry("reader", ("name", "identify", "read"))
    )
    line_extractors: Registry = field(
        default_factory=lambda: Registry("line extractor", ("name", "extract"))
    )
    architectures: Registry = field(
        default_factory=lambda: Registry("architecture", ("name", "build"))
    )
    pretrained: Registry = field(
        default_factory=lambda: Registry(
            "pretrained model",
            ("name", "architecture", "config", "sha256", "citation"),
            data_attributes=("architecture", "config", "sha256", "citation"),
        )
    )
    plugin_manager: pluggy.PluginManager | None = None

    def by_hook(self) -> dict[str, Registry]:
        """Map each hook name to the registry it fills."""
        return {
            "ifsrepr_register_readers": self.readers,
            "ifsrepr_register_line_extractors": self.line_extractors,
            "ifsrepr_register_architectures": self.architectures,
            "ifsrepr_register_pretrained": self.pretrained,
        }


_lock = threading.Lock()
_cached: PluginRegistries | None = None


def blocked_plugins() -> list[str]:
    """Plugin names listed in ``IFSREPR_BLOCK_PLUGINS``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> from ifsrepr.plugins import blocked_plugins
    >>> with mock.patch.dict(os.environ, {"IFSREPR_BLOCK_PLUGINS": "fits-cube, linestack"}):
    ...     blocked_plugins()
    ['fits-cube', 'linestack']
    """
    return [name.strip() for name in os.environ.get(BLOCK_VARIABLE, "").split(",") if name.strip()]


def _distributions(manager: pluggy.PluginManager) -> dict[str, str]:
    """Map plugin name -> "distribution version" for entry-point plugins."""
    out = {}
    for plugin, dist in manager.list_plugin_distinfo():
        name = manager.get_name(plugin)
        meta = dist.metadata
        out[name] = f"{meta['name']} {dist.version}"
    return out


def load_registries(extra_plugins: dict[str, object] | None = None) -> PluginRegistries:
    """Discover plugins and fill fresh registries (uncached; see `get_registries`).

    Parameters
    ----------
    extra_plugins : dict, optional
        Plugin objects registered by name in addition to the entry points
        (used by tests and by applications that embed plugins).

    Returns
    -------
    PluginRegistries
        New registries, independent of the cached ones `ifsrepr.read` uses.

    Examples
    --------
    Blocked plugins (``IFSREPR_BLOCK_PLUGINS``) are left out:

    >>> import os
    >>> from unittest import mock
    >>> from ifsrepr.plugins import load_registries
    >>> with mock.patch.dict(os.environ, {"IFSREPR_BLOCK_PLUGINS": "fits-cube"}):
    ...     registries = load_registries()
    >>> "fits-cube" in registries.readers, "manga-maps" in registries.readers
    (False, True)
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in blocked_plugins():
        manager.set_blocked(name)
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as exc:  # an entry point that fails to import
        raise PluginError(f"could not load an ifsrepr plugin: {type(exc).__name__}: {exc}") from exc
    for name, plugin in (extra_plugins or {}).items():
        if not manager.is_blocked(name):
            manager.register(plugin, name=name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        # exc.plugin is the plugin object (a module, an instance); report its name.
        name = manager.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r} implements an unknown hook: {exc}") from exc

    registries = PluginRegistries(plugin_manager=manager)
    distributions = _distributions(manager)
    for hook_name, registry in registries.by_hook().items():
        caller = getattr(manager.hook, hook_name)
        # Call plugins one by one (not through the combined hook call) so each
        # gets a register() that knows which plugin is registering.
        for impl in caller.get_hookimpls():
            register = registry.register_callable(
                impl.plugin_name, distributions.get(impl.plugin_name, "")
            )
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    return registries


def get_registries() -> PluginRegistries:
    """The registries, loading the plugins on first use.

    Examples
    --------
    >>> from ifsrepr.plugins import get_registries
    >>> registries = get_registries()
    >>> registries is get_registries()  # cached
    True
    >>> "pca" in registries.architectures
    True
    """
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = load_registries()
    return _cached


def reset() -> None:
    """Forget loaded plugins; the next use discovers them again.

    Examples
    --------
    >>> from ifsrepr.plugins import get_registries, reset
    >>> before = get_registries()
    >>> reset()
    >>> get_registries() is before
    False
    """
    global _cached
    with _lock:
        _cached = None
