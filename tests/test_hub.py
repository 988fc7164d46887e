"""Pretrained-weight resolution: package data, directories, download, cache, checksums, offline."""

from __future__ import annotations

import hashlib
import json

import pytest
from local_server import serve_directory

import ifsrepr
from ifsrepr import hub
from ifsrepr.plugins import PretrainedModel

WEIGHTS = b"not really safetensors, but bytes with a known digest" * 100


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "weights.safetensors").write_bytes(WEIGHTS)
    (root / "tampered.safetensors").write_bytes(WEIGHTS[:-1] + b"!")
    with serve_directory(root) as (url, server):
        yield url, server.requests


def register(use_plugins, *models):
    class Models:
        @ifsrepr.hookimpl
        def ifsrepr_register_pretrained(self, register):
            for model in models:
                register(model)

    use_plugins(test_models=Models())


def remote_model(base, name="remote-test", file="weights.safetensors"):
    return PretrainedModel(
        name=name,
        architecture="convlstm",
        config={"architecture": "convlstm", "latent_dim": 128},
        sha256=hashlib.sha256(WEIGHTS).hexdigest(),
        citation="a test",
        url=f"{base}/{file}",
    )


def test_download_once_then_from_cache(use_plugins, served, tmp_path):
    base, seen = served
    register(use_plugins, remote_model(base))
    cache = tmp_path / "cache"
    first = hub.resolve_pretrained("remote-test", cache_dir=cache)
    assert (first / hub.WEIGHTS_NAME).read_bytes() == WEIGHTS
    assert json.loads((first / hub.CONFIG_NAME).read_text())["latent_dim"] == 128
    assert len(seen) == 1
    again = hub.resolve_pretrained("remote-test", cache_dir=cache)
    assert again == first and len(seen) == 1  # no second request
    # Offline afterwards still works from the cache.
    assert hub.resolve_pretrained("remote-test", cache_dir=cache, local_files_only=True) == first


def test_checksum_mismatch_is_refused_and_nothing_is_kept(use_plugins, served, tmp_path):
    base, _ = served
    register(use_plugins, remote_model(base, file="tampered.safetensors"))
    cache = tmp_path / "cache"
    with pytest.raises(ifsrepr.FileFormatError, match="SHA-256"):
        hub.resolve_pretrained("remote-test", cache_dir=cache)
    assert not list(cache.rglob("*.safetensors"))


def test_corrupted_cache_file_is_refused(use_plugins, served, tmp_path):
    base, _ = served
    register(use_plugins, remote_model(base))
    cache = tmp_path / "cache"
    directory = hub.resolve_pretrained("remote-test", cache_dir=cache)
    (directory / hub.WEIGHTS_NAME).write_bytes(WEIGHTS[:100])  # truncated in place
    with pytest.raises(ifsrepr.FileFormatError, match="does not match"):
        hub.resolve_pretrained("remote-test", cache_dir=cache)


def test_offline_without_cache_says_how_to_prefetch(use_plugins, served, tmp_path, monkeypatch):
    base, seen = served
    register(use_plugins, remote_model(base))
    with pytest.raises(hub.PretrainedNotAvailableError, match="download_pretrained"):
        hub.resolve_pretrained("remote-test", cache_dir=tmp_path / "c", local_files_only=True)
    monkeypatch.setenv("IFSREPR_OFFLINE", "1")
    with pytest.raises(hub.PretrainedNotAvailableError, match="not in the cache"):
        hub.resolve_pretrained("remote-test", cache_dir=tmp_path / "c")
    assert seen == []


def test_unreachable_server_is_a_clear_error(use_plugins, tmp_path):
    # Port 9 on loopback: nothing listens there, the connection is refused at once.
    register(use_plugins, remote_model("http://127.0.0.1:9"))
    with pytest.raises(hub.PretrainedNotAvailableError, match="could not download"):
        hub.resolve_pretrained("remote-test", cache_dir=tmp_path / "c")


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IFSREPR_CACHE_DIR", str(tmp_path))
    assert hub.cache_dir() == tmp_path
    assert hub.cache_dir(tmp_path / "x") == tmp_path / "x"


def test_local_directory_and_unknown_names(use_plugins, tmp_path):
    register(use_plugins)
    saved = tmp_path / "model"
    saved.mkdir()
    with pytest.raises(ifsrepr.FileFormatError, match="config.json and model.safetensors"):
        hub.resolve_pretrained(saved)
    (saved / hub.CONFIG_NAME).write_text("{}")
    (saved / hub.WEIGHTS_NAME).write_bytes(WEIGHTS)
    assert hub.resolve_pretrained(saved) == saved
    with pytest.raises(ifsrepr.UnknownNameError, match="neither a directory"):
        hub.resolve_pretrained("no-such-model")


def test_packaged_weights_are_checked(use_plugins, tmp_path):
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    (packaged / hub.WEIGHTS_NAME).write_bytes(WEIGHTS)
    (packaged / hub.CONFIG_NAME).write_text("{}")
    good = PretrainedModel(
        name="inside", architecture="convlstm", sha256=hub.file_sha256(packaged / hub.WEIGHTS_NAME),
        citation="", path=str(packaged),
    )  # fmt: skip
    bad = PretrainedModel(
        name="inside-bad", architecture="convlstm", sha256="0" * 64, citation="", path=str(packaged)
    )
    register(use_plugins, good, bad)
    assert hub.resolve_pretrained("inside") == packaged
    with pytest.raises(ifsrepr.FileFormatError, match="not used"):
        hub.resolve_pretrained("inside-bad")


def test_pretrained_model_needs_exactly_one_location():
    with pytest.raises(ValueError, match="exactly one"):
        PretrainedModel(name="x", architecture="convlstm")
    with pytest.raises(ValueError, match="exactly one"):
        PretrainedModel(name="x", architecture="convlstm", path="a", url="b")
