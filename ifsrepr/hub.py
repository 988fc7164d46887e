"""Where pretrained weights live: package data, a local directory, or a URL and a cache.

`resolve_pretrained` turns what a user passes to
``IFSEncoder.from_pretrained`` into a local directory holding ``config.json``
and ``model.safetensors``:

* an existing directory is used as it is (e.g. one written by ``save_pretrained``);
* a registered name (``ifsrepr plugins`` lists them) points either at
  weights shipped inside a package, or at a URL; remote weights are
  downloaded once into the cache (``IFSREPR_CACHE_DIR``, default the
  user cache directory) with their SHA-256 checked, and the cached copy is
  checked again every time it is used. A file whose checksum does not match is
  refused and never loaded.

Offline use: ``local_files_only=True`` or ``IFSREPR_OFFLINE=1`` never touches
the network; if the weights are not cached the error says how to fetch them
on a machine that has a network (``ifsrepr.hub.download_pretrained(name)``)
and where to copy the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ._atomic import atomic_path
from .exceptions import FileFormatError, IFSReprError, UnknownNameError
from .plugins import get_pretrained

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedNotAvailableError",
    "cache_dir",
    "download_pretrained",
    "file_sha256",
    "resolve_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CACHE_VARIABLE = "IFSREPR_CACHE_DIR"
OFFLINE_VARIABLE = "IFSREPR_OFFLINE"


class PretrainedNotAvailableError(IFSReprError):
    """Pretrained weights are neither local nor cached, and may not be downloaded."""


def cache_dir(directory: str | os.PathLike | None = None) -> Path:
    """The weights cache: ``directory``, else ``$IFSREPR_CACHE_DIR``, else the user cache.

    Examples
    --------
    >>> import os
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> from ifsrepr.hub import cache_dir
    >>> cache_dir("/scratch/weights") == Path("/scratch/weights")
    True
    >>> with mock.patch.dict(os.environ, {"IFSREPR_CACHE_DIR": "/shared/ifsrepr"}):
    ...     cache_dir() == Path("/shared/ifsrepr")
    True
    """
    if directory is not None:
        return Path(directory)
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    import pooch

    return Path(pooch.os_cache("ifsrepr"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file, read in blocks.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from ifsrepr.hub import file_sha256
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "weights.bin"
    ...     _ = path.write_bytes(b"abc")
    ...     file_sha256(path)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(weights: Path, expected: str, name: str) -> None:
    if not expected:
        return
    actual = file_sha256(weights)
    if actual != expected.lower():
        raise FileFormatError(
            f"{weights}: SHA-256 {actual} does not match the {expected} registered for "
            f"{name!r}; the file is corrupt or not the published weights and is not used"
            + (" (delete it to download it again)" if "cache" in str(weights) else "")
        )


def _offline(local_files_only: bool) -> bool:
    return local_files_only or os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0")


def _cached_directory(name: str, sha256: str, directory: str | os.PathLike | None) -> Path:
    # The digest in the path keeps two versions of a name from colliding.
    return cache_dir(directory) / "pretrained" / f"{name}-{sha256[:12]}"


def resolve_pretrained(
    name_or_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local directory with ``config.json`` and ``model.safetensors`` for a model.

    Parameters
    ----------
    name_or_dir : str or path-like
        A directory, or a registered pretrained-model name.
    cache_dir : path-like, optional
        Cache for downloaded weights (see `cache_dir`).
    local_files_only : bool
        Never download; fail if the weights are not already local.

    Raises
    ------
    ifsrepr.UnknownNameError
        For a name that is neither a directory nor registered.
    PretrainedNotAvailableError
        When the weights must be downloaded but may not or cannot be.
    ifsrepr.FileFormatError
        When the weights' checksum does not match the registry.

    Examples
    --------
    The weights of ``manga-convlstm`` ship with the package (and are checked):

    >>> from ifsrepr.hub import resolve_pretrained
    >>> directory = resolve_pretrained("manga-convlstm")
    >>> directory.name, sorted(p.name for p in directory.glob("*.json"))
    ('manga-convlstm', ['config.json', 'quality.json'])
    >>> resolve_pretrained("no-such-model")
    Traceback (most recent call last):
    ...
    ifsrepr.exceptions.UnknownNameError: 'no-such-model' is neither a directory nor a ...
    """
    path = Path(name_or_dir)
    if path.is_dir():
        missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (path / f).is_file()]
        if missing:
            raise FileFormatError(f"{path}: not a saved model, {' and '.join(missing)} missing")
        return path
    registry = get_pretrained()
    name = str(name_or_dir)
    if name not in registry:
        raise UnknownNameError(
            f"{name!r} is neither a directory nor a registered pretrained model; "
            f"registered: {', '.join(registry.names()) or 'none'}"
        )
    entry = registry.get(name)
    if getattr(entry, "path", None):
        local = Path(entry.path)
        weights = local / WEIGHTS_NAME if local.is_dir() else local
        if not weights.is_file():
            raise FileFormatError(f"pretrained model {name!r}: {weights} is missing")
        _verify(weights, entry.sha256, name)
        return weights.parent
    return download_pretrained(name, cache_dir=cache_dir, local_files_only=local_files_only)


def download_pretrained(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    progressbar: bool = False,
) -> Path:
    """Download a registered model's weights into the cache (once) and return its directory.

    Run this on a machine with a network to pre-fetch weights for an offline
    one, then copy the cache directory (see `cache_dir`) across.

    Parameters
    ----------
    name : str
        A registered pretrained model with a ``url``.
    cache_dir : path-like, optional
        The cache (see `cache_dir`).
    local_files_only : bool
        Never download: return the cached copy, or fail.
    progressbar : bool
        Show the download's progress.

    Returns
    -------
    pathlib.Path
        The cached directory, with ``config.json`` and ``model.safetensors``.

    Raises
    ------
    PretrainedNotAvailableError
        If the model has no URL, or the weights are not cached and may not
        (or cannot) be downloaded.
    ifsrepr.FileFormatError
        If the weights do not match their registered SHA-256.

    Examples
    --------
    A model registered with a URL (as a plugin would), asked for offline
    before it was ever downloaded:

    >>> import tempfile
    >>> from ifsrepr.hub import download_pretrained
    >>> from ifsrepr.plugins import PretrainedModel, get_pretrained, reset
    >>> remote = PretrainedModel("demo-remote", "convlstm", sha256="0" * 64,
    ...                          url="https://example.org/demo-remote.safetensors")
    >>> get_pretrained().add(remote, plugin="demo")
    >>> tmp = tempfile.TemporaryDirectory()
    >>> download_pretrained("demo-remote", cache_dir=tmp.name, local_files_only=True)
    Traceback (most recent call last):
    ...
    ifsrepr.hub.PretrainedNotAvailableError: the weights of 'demo-remote' are not in the cache
    (...) and downloads are off (local_files_only=True or IFSREPR_OFFLINE=1). ...
    >>> reset()  # forget the demo registration
    >>> tmp.cleanup()

    Weights shipped inside a package have nothing to download:

    >>> download_pretrained("manga-convlstm")
    Traceback (most recent call last):
    ...
    ifsrepr.hub.PretrainedNotAvailableError: pretrained model 'manga-convlstm' has no URL ...
    """
    entry = get_pretrained().get(name)
    url = getattr(entry, "url", None)
    if not url:
        raise PretrainedNotAvailableError(f"pretrained model {name!r} has no URL to download from")
    target = _cached_directory(name, entry.sha256, cache_dir)
    weights = target / WEIGHTS_NAME
    if not weights.is_file():
        if _offline(local_files_only):
            raise PretrainedNotAvailableError(
                f"the weights of {name!r} are not in the cache ({target}) and downloads are "
                f"off (local_files_only=True or {OFFLINE_VARIABLE}=1). On a machine with a "
                f'network run: python -c "import ifsrepr.hub as h; '
                f"h.download_pretrained('{name}')\", then copy its cache "
                f"(set {CACHE_VARIABLE} to choose where) to this machine"
            )
        _download(url, entry.sha256, weights, name, progressbar)
    _verify(weights, entry.sha256, name)
    config = target / CONFIG_NAME
    if not config.is_file():
        with atomic_path(config) as temporary:
            temporary.write_text(json.dumps(dict(entry.config), indent=2))
    return target


def _download(url: str, sha256: str, weights: Path, name: str, progressbar: bool) -> None:
    import pooch
    import requests

    weights.parent.mkdir(parents=True, exist_ok=True)
    try:
        # pooch downloads to a temporary file and moves it into place only
        # after the checksum matched, so a failed download leaves nothing.
        pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}" if sha256 else None,
            fname=weights.name,
            path=weights.parent,
            progressbar=progressbar,
        )
    except ValueError as exc:  # pooch's checksum mismatch
        raise FileFormatError(
            f"download of {name!r} from {url} does not match its registered SHA-256; "
            f"refused ({exc})"
        ) from None
    except (requests.exceptions.RequestException, OSError) as exc:
        raise PretrainedNotAvailableError(
            f"could not download the weights of {name!r} from {url}: {exc}. Pre-fetch them "
            f"elsewhere with ifsrepr.hub.download_pretrained('{name}') and copy the cache"
        ) from None
