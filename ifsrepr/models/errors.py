"""Errors raised by the network layer (torch-free, so plugin discovery stays light)."""

from __future__ import annotations

from ..exceptions import IFSReprError

__all__ = ["ModelConfigError", "ModelInputError", "NotFittedError"]


class ModelConfigError(IFSReprError, ValueError):
    """An architecture option is unknown or has an invalid value.

    The message names the architecture, the option and what is allowed.
    """


class ModelInputError(IFSReprError, ValueError):
    """A tensor handed to a network does not have the shape the network was built for."""


class NotFittedError(IFSReprError, RuntimeError):
    """A closed-form model (the PCA baseline) was used before ``fit``."""
