"""Errors of the survey-dataset tools."""

from __future__ import annotations

from ..exceptions import IFSReprError

__all__ = ["DatasetError", "SettingsMismatchError"]


class DatasetError(IFSReprError, ValueError):
    """A survey dataset is missing, incomplete, locked, or not an ifsrepr dataset."""


class SettingsMismatchError(DatasetError):
    """A dataset was written with other extraction or preprocessing settings.

    The message lists every difference; ``differences`` holds them as a list.
    """

    def __init__(self, message: str, differences: list[str]):
        super().__init__(message)
        self.differences = differences
