"""Download real MaNGA cubes and DAP maps from the SDSS Science Archive Server (SAS).

The files are fetched over HTTPS from the public SAS layout of the SDSS data
model (``sdss/tree``'s ``mangacube`` and ``mangadap`` paths)::

    {base_url}/dr17/manga/spectro/redux/v3_1_1/{plate}/stack/
        manga-{plate}-{ifu}-LOGCUBE.fits.gz
    {base_url}/dr17/manga/spectro/analysis/v3_1_1/3.1.0/{daptype}/{plate}/{ifu}/
        manga-{plate}-{ifu}-MAPS-{daptype}.fits.gz

with ``base_url = https://data.sdss.org/sas``. Files land in a cache (or in
``outdir``) under the same relative path as on the SAS, so releases and DAP
types never overwrite each other and the folder can serve as a local SAS
mirror. The cache is ``$IFSREPR_CACHE_DIR`` if set, else
``pooch.os_cache("ifsrepr")`` (e.g. ``~/.cache/ifsrepr`` on Linux).

Downloads use `pooch` (temporary file, then an atomic rename: a file in the
cache is always complete) and are skipped when the file is already there.
Each download is checked against the server's ``Content-Length`` and, since
the SAS publishes no per-file checksums for these products, by decompressing
the whole gzip stream (whose CRC-32 and length trailer the archive wrote) before
it is moved into place. HTTP and network failures raise `DownloadError`, whose
message names the URL.

Examples
--------
>>> from ifsrepr.fetch import fetch
>>> paths = fetch(["8485-1901"], products=("cube", "maps"))        # doctest: +REMOTE_DATA
>>> paths["8485-1901"]["cube"].name                                # doctest: +REMOTE_DATA
'manga-8485-1901-LOGCUBE.fits.gz'
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .exceptions import IFSReprError, UnknownNameError

__all__ = [
    "CACHE_VARIABLE",
    "DownloadError",
    "PlateIFUError",
    "RELEASES",
    "PRODUCTS",
    "SAS_URL",
    "Release",
    "cache_dir",
    "fetch",
    "product_path",
    "product_url",
]

#: The public SDSS Science Archive Server.
SAS_URL = "https://data.sdss.org/sas"
#: Environment variable naming the download cache folder.
CACHE_VARIABLE = "IFSREPR_CACHE_DIR"
_CHUNK = 1 << 20
_PLATEIFU = re.compile(r"^\s*(?P<plate>\d{4,5})-(?P<ifu>\d{3,5})\s*$")


class DownloadError(IFSReprError, OSError):
    """A file could not be downloaded, or arrived incomplete; the message names the URL."""


class PlateIFUError(IFSReprError, ValueError):
    """A plate-IFU designation is not of the form ``PLATE-IFUDESIGN`` (``8485-1901``)."""


@dataclass(frozen=True)
class Release:
    """Where one data release keeps its MaNGA products on the SAS."""

    name: str  #: SAS folder, e.g. "dr17"
    drpver: str  #: DRP version, e.g. "v3_1_1"
    dapver: str  #: DAP version, e.g. "3.1.0"
    daptype: str  #: the DAP type fetched by default (the archive's recommended one)


#: Releases with MaNGA cubes and maps (DR16 re-served DR15's MaNGA data).
RELEASES: dict[str, Release] = {
    "DR17": Release("dr17", "v3_1_1", "3.1.0", "HYB10-MILESHC-MASTARSSP"),
    "DR15": Release("dr15", "v2_4_3", "2.2.1", "HYB10-GAU-MILESHC"),
}
#: What `fetch` can download: log- and linear-wavelength cubes, and DAP maps.
PRODUCTS = ("cube", "lincube", "maps")


def _release(release: str) -> Release:
    try:
        return RELEASES[release.upper()]
    except KeyError:
        raise UnknownNameError(
            f"unknown MaNGA release {release!r}; available: {', '.join(RELEASES)}"
        ) from None


def _split_plateifu(plateifu: str) -> tuple[str, str]:
    match = _PLATEIFU.match(str(plateifu))
    if not match:
        raise PlateIFUError(
            f"{plateifu!r} is not a plate-IFU designation such as '8485-1901' (PLATE-IFUDESIGN)"
        )
    return match["plate"], match["ifu"]


def product_path(
    plateifu: str, product: str = "cube", *, release: str = "DR17", daptype: str | None = None
) -> str:
    """The path of a product relative to the SAS root (and to the cache).

    Parameters
    ----------
    plateifu : str
        E.g. ``"8485-1901"``.
    product : {"cube", "lincube", "maps"}
        LOGCUBE, LINCUBE or the DAP MAPS file.
    release : str
        ``"DR17"`` (default) or ``"DR15"``.
    daptype : str, optional
        DAP analysis type for ``maps``; the release's recommended one by
        default (``HYB10-MILESHC-MASTARSSP`` in DR17).

    Examples
    --------
    >>> from ifsrepr.fetch import product_path
    >>> product_path("8485-1901", "cube")
    'dr17/manga/spectro/redux/v3_1_1/8485/stack/manga-8485-1901-LOGCUBE.fits.gz'
    >>> folder, name = product_path("8485-1901", "maps").rsplit("/", 1)
    >>> folder
    'dr17/manga/spectro/analysis/v3_1_1/3.1.0/HYB10-MILESHC-MASTARSSP/8485/1901'
    >>> name
    'manga-8485-1901-MAPS-HYB10-MILESHC-MASTARSSP.fits.gz'
    """
    rel = _release(release)
    plate, ifu = _split_plateifu(plateifu)
    if product in ("cube", "lincube"):
        wave = "LOG" if product == "cube" else "LIN"
        return (
            f"{rel.name}/manga/spectro/redux/{rel.drpver}/{plate}/stack/"
            f"manga-{plate}-{ifu}-{wave}CUBE.fits.gz"
        )
    if product == "maps":
        daptype = daptype or rel.daptype
        return (
            f"{rel.name}/manga/spectro/analysis/{rel.drpver}/{rel.dapver}/{daptype}/"
            f"{plate}/{ifu}/manga-{plate}-{ifu}-MAPS-{daptype}.fits.gz"
        )
    raise UnknownNameError(f"unknown MaNGA product {product!r}; available: {', '.join(PRODUCTS)}")


def product_url(
    plateifu: str,
    product: str = "cube",
    *,
    release: str = "DR17",
    daptype: str | None = None,
    base_url: str = SAS_URL,
) -> str:
    """The download URL of a product (see `product_path`)."""
    relative = product_path(plateifu, product, release=release, daptype=daptype)
    return f"{base_url.rstrip('/')}/{relative}"


def cache_dir() -> Path:
    """The download cache: ``$IFSREPR_CACHE_DIR``, else ``pooch.os_cache("ifsrepr")``."""
    configured = os.environ.get(CACHE_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    import pooch

    return Path(pooch.os_cache("ifsrepr"))


class _Downloader:
    """A pooch downloader that checks sizes and gzip integrity and names the URL on failure."""

    def __init__(self, *, progress: bool, verify: bool, timeout: float) -> None:
        self.progress = progress
        self.verify = verify
        self.timeout = timeout

    def __call__(self, url: str, output_file: str, pooch=None) -> None:
        """Download ``url`` into ``output_file`` (pooch's temporary file)."""
        import requests
        from tqdm.auto import tqdm

        name = url.rsplit("/", 1)[-1]
        written = 0
        expected: int | None = None
        try:
            with requests.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code >= 400:
                    raise DownloadError(
                        f"{url}: HTTP {response.status_code} {response.reason}"
                        + (" (no such file on the server)" if response.status_code == 404 else "")
                    )
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                with (
                    open(output_file, "wb") as out,
                    tqdm(
                        total=expected,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=name,
                        disable=not self.progress,
                        leave=False,
                    ) as bar,
                ):
                    # The raw stream, undecoded: a server that labels .gz files
                    # with Content-Encoding: gzip must not get them unpacked.
                    for chunk in response.raw.stream(_CHUNK, decode_content=False):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
        except DownloadError:
            raise
        except requests.RequestException as exc:
            raise DownloadError(f"{url}: download failed ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # urllib3 protocol errors (connection cut mid-file)
            if type(exc).__module__.split(".")[0] in ("urllib3", "http"):
                raise DownloadError(
                    f"{url}: the connection broke after {written} bytes "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            raise
        if expected is not None and written != expected:
            raise DownloadError(
                f"{url}: received {written} bytes but the server announced {expected} "
                "(Content-Length); the download is incomplete"
            )
        if self.verify and name.endswith(".gz"):
            _check_gzip(Path(output_file), url)


def _check_gzip(path: Path, url: str) -> None:
    """Decompress the whole file: gzip's CRC-32 and length trailer catch corruption."""
    from isal import igzip

    buffer = bytearray(4 << 20)
    try:
        with igzip.open(path, "rb") as stream:
            while stream.readinto(buffer):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise DownloadError(f"{url}: the downloaded file is not intact gzip ({exc})") from None
    except Exception as exc:
        if type(exc).__module__.startswith("isal"):
            raise DownloadError(f"{url}: the downloaded file is corrupt ({exc})") from None
        raise


def fetch(
    plateifus: str | Iterable[str],
    release: str = "DR17",
    products: Iterable[str] = ("cube", "maps"),
    outdir: str | os.PathLike | None = None,
    daptype: str | None = None,
    base_url: str = SAS_URL,
    *,
    progress: bool = True,
    verify: bool = True,
    timeout: float = 60.0,
) -> dict[str, dict[str, Path]]:
    """Download MaNGA cubes and/or DAP maps for the given galaxies.

    Parameters
    ----------
    plateifus : str or iterable of str
        Plate-IFU designations, e.g. ``["8485-1901", "7443-12701"]``.
    release : {"DR17", "DR15"}
        Data release (DR17: DRP v3_1_1, DAP 3.1.0).
    products : iterable of {"cube", "lincube", "maps"}
        What to download for each galaxy.
    outdir : path-like, optional
        Folder to download into (the SAS layout is kept under it). Default:
        the cache, ``$IFSREPR_CACHE_DIR`` or ``pooch.os_cache("ifsrepr")``.
    daptype : str, optional
        DAP type of the maps; default ``HYB10-MILESHC-MASTARSSP`` for DR17
        (``HYB10-GAU-MILESHC`` for DR15).
    base_url : str
        The SAS root (a mirror, or a local server in tests).
    progress : bool
        Show a progress bar per file (on stderr).
    verify : bool
        Decompress each downloaded file once to check its gzip CRC before
        keeping it.
    timeout : float
        Seconds to wait for the server to answer (per connection and read).

    Returns
    -------
    dict
        ``{plateifu: {product: Path}}`` for every file, downloaded or found.

    Raises
    ------
    DownloadError
        If a download fails (HTTP error, broken connection, wrong size,
        corrupt gzip); the message names the URL. Files already downloaded
        stay in place, and no partial file is ever left behind.
    PlateIFUError
        If a designation is not ``PLATE-IFU``.
    ifsrepr.UnknownNameError
        For an unknown release or product.
    """
    import pooch

    if isinstance(plateifus, str):
        plateifus = [plateifus]
    plateifus = [str(p).strip() for p in plateifus]
    products = list(products)
    for product in products:
        if product not in PRODUCTS:
            raise UnknownNameError(
                f"unknown MaNGA product {product!r}; available: {', '.join(PRODUCTS)}"
            )
    for plateifu in plateifus:
        _split_plateifu(plateifu)
    _release(release)
    root = Path(outdir).expanduser() if outdir is not None else cache_dir()
    downloader = _Downloader(progress=progress, verify=verify, timeout=timeout)

    result: dict[str, dict[str, Path]] = {}
    logger = pooch.get_logger()
    level = logger.level
    # pooch logs every download and the file's SHA-256 at INFO; the progress bar says enough.
    logger.setLevel(logging.WARNING)
    try:
        for plateifu in plateifus:
            result[plateifu] = {}
            for product in products:
                relative = product_path(plateifu, product, release=release, daptype=daptype)
                url = f"{base_url.rstrip('/')}/{relative}"
                local = pooch.retrieve(
                    url,
                    known_hash=None,  # the SAS publishes none; size and gzip CRC are checked
                    fname=relative,
                    path=root,
                    downloader=downloader,
                )
                result[plateifu][product] = Path(local)
    finally:
        logger.setLevel(level)
    return result
