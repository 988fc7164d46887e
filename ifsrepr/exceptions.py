"""Exceptions raised on purpose by ifsrepr.

Every error the package raises deliberately derives from `IFSReprError`, so
callers can catch the whole family with one ``except`` clause, while the
subclasses also derive from the matching built-in (``ValueError``,
``KeyError``, ``FileNotFoundError``) for code that already expects those.
"""

__all__ = [
    "IFSReprError",
    "PluginError",
    "UnknownNameError",
    "FileFormatError",
    "DataModelError",
]


class IFSReprError(Exception):
    """Base class of every error ifsrepr raises on purpose."""


class PluginError(IFSReprError):
    """A plugin is broken, conflicts with another one, or cannot be loaded."""


class UnknownNameError(IFSReprError, KeyError):
    """A reader, extractor, architecture, model or line set name is not known.

    The message lists the names that are available.
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class FileFormatError(IFSReprError, ValueError):
    """A file is missing, unreadable, or not in the format its reader expects.

    The message always names the file.
    """


class DataModelError(IFSReprError, ValueError):
    """Arrays handed to a data-model class do not fit together."""
