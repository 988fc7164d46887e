"""Registries of named plugin items (readers, extractors, architectures, models)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..exceptions import PluginError, UnknownNameError

__all__ = ["Registry", "Registration"]

T = TypeVar("T")


@dataclass(frozen=True)
class Registration(Generic[T]):
    """One registered item and where it came from.

    Examples
    --------
    >>> from ifsrepr.plugins import get_readers
    >>> record = get_readers().registration("manga-maps")
    >>> record.name, record.plugin, record.distribution.split()[0]
    ('manga-maps', 'manga-maps', 'ifsrepr')
    """

    name: str
    item: T
    plugin: str  #: the plugin (entry-point) name that registered it
    distribution: str  #: "package version" of the plugin, or "" if unknown


class Registry(Generic[T]):
    """Named items of one kind, each remembering the plugin that provided it.

    Parameters
    ----------
    kind : str
        What the items are, for messages ("reader", "line extractor", ...).
    required : sequence of str
        Attributes every item must have; the first one, ``name``, must be a
        non-empty string, and the others callables unless listed in
        ``data_attributes``.
    data_attributes : sequence of str
        Required attributes that are data rather than methods.

    Examples
    --------
    >>> from ifsrepr.plugins import Registry
    >>> class Doubler:
    ...     name = "double"
    ...     def run(self, x):
    ...         return 2 * x
    >>> registry = Registry("transform", ("name", "run"))
    >>> registry.add(Doubler(), plugin="my-plugin")
    >>> registry
    <Registry of 1 transforms: double>
    >>> registry.get("double").run(21)
    42
    >>> registry.get("triple")
    Traceback (most recent call last):
    ...
    ifsrepr.exceptions.UnknownNameError: unknown transform 'triple'; available: double
    """

    def __init__(
        self,
        kind: str,
        required: tuple[str, ...] = ("name",),
        data_attributes: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self._required = required
        self._data_attributes = set(data_attributes) | {"name"}
        self._entries: dict[str, Registration[T]] = {}

    def add(self, item: T, *, plugin: str, distribution: str = "") -> None:
        """Add ``item``, checking its shape and that its name is free."""
        missing = [attr for attr in self._required if not hasattr(item, attr)]
        if missing:
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} {item!r} without {', '.join(missing)}"
            )
        name = item.name
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with name {name!r}")
        not_callable = [
            attr
            for attr in self._required
            if attr not in self._data_attributes and not callable(getattr(item, attr))
        ]
        if not_callable:
            raise PluginError(
                f"plugin {plugin!r}: {self.kind} {name!r} has non-callable "
                f"{', '.join(not_callable)}"
            )
        if name in self._entries:
            first = self._entries[name]
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin {first.plugin!r}"
                f"{_from(first.distribution)} and by plugin {plugin!r}{_from(distribution)}; "
                f"block one with IFSREPR_BLOCK_PLUGINS={first.plugin} (or {plugin})"
            )
        self._entries[name] = Registration(name, item, plugin, distribution)

    def get(self, name: str) -> T:
        """The item called ``name``; an `UnknownNameError` lists the alternatives."""
        try:
            return self._entries[name].item
        except KeyError:
            available = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; available: {available}"
            ) from None

    def registration(self, name: str) -> Registration[T]:
        """The full `Registration` record of ``name``."""
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def registrations(self) -> list[Registration[T]]:
        """All registration records, sorted by name."""
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self.registrations())

    def __len__(self) -> int:
        return len(self._entries)

    def register_callable(self, plugin: str, distribution: str) -> Callable[[Any], None]:
        """The ``register`` function handed to one plugin's hook."""

        def register(item: Any) -> None:
            self.add(item, plugin=plugin, distribution=distribution)

        register.__doc__ = f"Register a {self.kind} with ifsrepr."
        return register

    def __repr__(self) -> str:
        return f"<Registry of {len(self)} {self.kind}s: {', '.join(self.names())}>"


def _from(distribution: str) -> str:
    return f" (from {distribution})" if distribution else ""
