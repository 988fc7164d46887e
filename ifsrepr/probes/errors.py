"""Errors of `ifsrepr.probes`; all derive from `ifsrepr.IFSReprError` (and ``ValueError``)."""

from __future__ import annotations

from ..exceptions import IFSReprError

__all__ = ["CatalogMatchError", "ProbeColumnError", "ProbeError"]


class ProbeError(IFSReprError, ValueError):
    """Inputs to a probe that do not fit together (row counts, non-finite latents...)."""


class ProbeColumnError(ProbeError):
    """A probe column is absent, or cannot be probed the way asked (the message names it)."""


class CatalogMatchError(ProbeError):
    """A catalogue does not match the dataset's plate-IFUs (the message says how many did)."""
