"""Shared fixtures: plugin state, the bundled real MAPS file, the example plugin."""

from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path

import pytest
from astropy.io import fits

import ifsrepr
from ifsrepr.plugins import manager

MAPS_SAMPLE = "manga-7815-3702-maps"
EXAMPLE_PLUGIN = "example-survey"
EXAMPLE_DISTRIBUTION = "ifsrepr-example-survey"
EXAMPLE_INSTALL_HINT = (
    "the example plugin is not installed; run `pip install -e tests/plugins/ifsrepr-example-survey`"
)


@pytest.fixture
def fresh_plugins():
    """Forget loaded plugins before and after the test."""
    ifsrepr.plugins.reset()
    yield
    ifsrepr.plugins.reset()


@pytest.fixture
def use_plugins(fresh_plugins, monkeypatch):
    """Install in-process plugins (besides the entry points) for `ifsrepr.read` & co.

    ``use_plugins(name=plugin, ...)`` returns the registries now in use.
    """

    def install(**plugins):
        registries = ifsrepr.plugins.load_registries(extra_plugins=plugins)
        monkeypatch.setattr(manager, "_cached", registries)
        return registries

    return install


@pytest.fixture(scope="session")
def maps_path() -> Path:
    """The bundled real DAP MAPS file (DR15 layout, 22 channels)."""
    return ifsrepr.datasets.get_path(MAPS_SAMPLE)


@pytest.fixture(scope="session")
def _maps_hdus_cache(maps_path) -> fits.HDUList:
    with fits.open(maps_path) as hdus:
        return fits.HDUList([hdu.copy() for hdu in hdus])


@pytest.fixture
def maps_hdus(_maps_hdus_cache) -> fits.HDUList:
    """A fresh in-memory copy of the real MAPS file, free to modify."""
    return fits.HDUList([hdu.copy() for hdu in _maps_hdus_cache])


@pytest.fixture(scope="session")
def write_fits():
    """``write_fits(hdus, path)`` writes an HDUList and returns the path."""

    def write(hdus: fits.HDUList, path: Path) -> Path:
        with warnings.catch_warnings():
            # The real MAPS headers carry keys astropy notes on (empty CTYPE3...).
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdus.writeto(path, overwrite=True)
        return path

    return write


@pytest.fixture(scope="session")
def channel_index():
    """``channel_index(header, name)``: zero-based plane of a DAP channel, from its Cn key."""

    def find(header: fits.Header, name: str) -> int:
        for key, value in header.items():
            if key.startswith("C") and key[1:].isdigit() and str(value).strip() == name:
                return int(key[1:]) - 1
        raise KeyError(f"no channel {name!r} in {header.get('EXTNAME')}")

    return find


@pytest.fixture(scope="session")
def example_survey():
    """The example third-party plugin package, installed through its entry point."""
    module = pytest.importorskip("ifsrepr_example_survey", reason=EXAMPLE_INSTALL_HINT)
    points = importlib.metadata.entry_points(group="ifsrepr", name=EXAMPLE_PLUGIN)
    if not points:
        pytest.skip(EXAMPLE_INSTALL_HINT)
    return module
