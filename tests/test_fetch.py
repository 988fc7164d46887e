"""`ifsrepr.fetch` and ``ifsrepr fetch`` against a local server laid out like the SAS."""

from __future__ import annotations

import shutil
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from cube_fixtures import write_manga_cube
from local_server import serve_directory

import ifsrepr
from ifsrepr import fetch as fetching
from ifsrepr.cli import main
from ifsrepr.fetch import DownloadError, PlateIFUError, fetch, product_path, product_url

CUBE_DR17 = "dr17/manga/spectro/redux/v3_1_1/8485/stack/manga-8485-1901-LOGCUBE.fits.gz"
MAPS_DR17 = (
    "dr17/manga/spectro/analysis/v3_1_1/3.1.0/HYB10-MILESHC-MASTARSSP/8485/1901/"
    "manga-8485-1901-MAPS-HYB10-MILESHC-MASTARSSP.fits.gz"
)
# The real DR15-era MAPS file bundled with the package, at its real SAS location.
MAPS_DR15 = (
    "dr15/manga/spectro/analysis/v2_4_3/2.2.1/HYB10-GAU-MILESHC/7815/3702/"
    "manga-7815-3702-MAPS-HYB10-GAU-MILESHC.fits.gz"
)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the folder; some paths misbehave on purpose (see ``sas``)."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        behaviour = self.server.behaviour.get(self.path.lstrip("/"))
        if behaviour == "short":
            # Announce the full size, send half, hang up: a connection cut mid-file.
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if behaviour == "error":
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()


@pytest.fixture
def sas(tmp_path_factory):
    """A local HTTP server on 127.0.0.1 with files in the SAS layout.

    Yields a dict: ``url`` (the SAS root), ``root`` (the served folder),
    ``requests`` (paths asked for) and ``behaviour`` ({relative path: "short" |
    "error"}).
    """
    root = tmp_path_factory.mktemp("sas")
    write_manga_cube(root / CUBE_DR17, n=5, n_wave=300)
    maps = ifsrepr.datasets.get_path("manga-7815-3702-maps")
    for relative in (MAPS_DR17, MAPS_DR15):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(maps, root / relative)
    with serve_directory(root, _Handler) as (url, server):
        server.behaviour = {}
        yield {"url": url, "root": root, "requests": server.requests, "behaviour": server.behaviour}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


# -- URL layout -------------------------------------------------------------------------
def test_product_paths_follow_the_sas_layout():
    assert product_path("8485-1901") == CUBE_DR17
    assert product_path("8485-1901", "maps") == MAPS_DR17
    assert product_path("8485-1901", "lincube").endswith("stack/manga-8485-1901-LINCUBE.fits.gz")
    assert product_path("7815-3702", "maps", release="dr15") == MAPS_DR15
    assert product_path("7443-12701", "maps", daptype="SPX-MILESHC-MASTARSSP") == (
        "dr17/manga/spectro/analysis/v3_1_1/3.1.0/SPX-MILESHC-MASTARSSP/7443/12701/"
        "manga-7443-12701-MAPS-SPX-MILESHC-MASTARSSP.fits.gz"
    )
    assert product_url("8485-1901") == f"https://data.sdss.org/sas/{CUBE_DR17}"
    assert product_url("8485-1901", base_url="http://mirror/sas/") == (
        f"http://mirror/sas/{CUBE_DR17}"
    )


@pytest.mark.parametrize("bad", ["8485", "8485_1901", "plate-ifu", "8485-1901-2", ""])
def test_bad_plateifu(bad):
    with pytest.raises(PlateIFUError, match="PLATE-IFUDESIGN"):
        product_path(bad)
    with pytest.raises(ifsrepr.IFSReprError):
        fetch([bad], outdir="/nonexistent")


def test_unknown_release_and_product(tmp_path):
    with pytest.raises(ifsrepr.UnknownNameError, match="DR17"):
        fetch("8485-1901", release="DR99", outdir=tmp_path)
    with pytest.raises(ifsrepr.UnknownNameError, match="cube, lincube, maps"):
        fetch("8485-1901", products=["rss"], outdir=tmp_path)
    assert leftovers(tmp_path) == []


# -- downloads ------------------------------------------------------------------------
def test_fetch_cube_and_maps(sas, tmp_path):
    out = tmp_path / "out"
    paths = fetch(["8485-1901"], outdir=out, base_url=sas["url"], progress=False)
    assert set(paths) == {"8485-1901"}
    cube_path, maps_path = paths["8485-1901"]["cube"], paths["8485-1901"]["maps"]
    assert cube_path == out / CUBE_DR17
    assert maps_path == out / MAPS_DR17
    assert cube_path.read_bytes() == (sas["root"] / CUBE_DR17).read_bytes()
    assert maps_path.read_bytes() == (sas["root"] / MAPS_DR17).read_bytes()
    assert sorted(leftovers(out)) == sorted([cube_path, maps_path])  # no temporary files
    cube = ifsrepr.read(cube_path)
    assert cube.meta["reader"] == "manga-cube" and cube.meta["plateifu"] == "8485-1901"
    assert ifsrepr.read(maps_path).meta["reader"] == "manga-maps"


def test_files_already_there_are_not_downloaded_again(sas, tmp_path):
    fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], progress=False)
    assert len(sas["requests"]) == 1
    again = fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"])
    assert len(sas["requests"]) == 1
    assert again["8485-1901"]["cube"] == tmp_path / CUBE_DR17


def test_dr15_release(sas, tmp_path):
    paths = fetch(
        "7815-3702", release="DR15", products=["maps"], outdir=tmp_path, base_url=sas["url"],
        progress=False,
    )  # fmt: skip
    maps = ifsrepr.read(paths["7815-3702"]["maps"])
    assert maps.name == "7815-3702"


def test_cache_directory_from_the_environment(sas, tmp_path, monkeypatch):
    monkeypatch.setenv(fetching.CACHE_VARIABLE, str(tmp_path / "cache"))
    assert fetching.cache_dir() == tmp_path / "cache"
    paths = fetch("8485-1901", products=["cube"], base_url=sas["url"], progress=False)
    assert paths["8485-1901"]["cube"] == tmp_path / "cache" / CUBE_DR17
    monkeypatch.delenv(fetching.CACHE_VARIABLE)
    assert fetching.cache_dir().name == "ifsrepr"


def test_progress_bar(sas, tmp_path, capsys):
    fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], progress=True)
    assert "manga-8485-1901-LOGCUBE.fits.gz" in capsys.readouterr().err


# -- failures -------------------------------------------------------------------------
def test_missing_file_names_the_url(sas, tmp_path):
    with pytest.raises(DownloadError) as info:
        fetch("9999-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"])
    message = str(info.value)
    assert message.startswith(f"{sas['url']}/dr17/manga/spectro/redux/v3_1_1/9999/stack/")
    assert "HTTP 404" in message
    assert leftovers(tmp_path) == []


def test_server_error(sas, tmp_path):
    sas["behaviour"][CUBE_DR17] = "error"
    with pytest.raises(DownloadError, match="HTTP 503"):
        fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"])
    assert leftovers(tmp_path) == []


def test_connection_cut_mid_file(sas, tmp_path):
    """The server announces the size and sends half: nothing lands in the cache."""
    sas["behaviour"][CUBE_DR17] = "short"
    with pytest.raises(DownloadError) as info:
        fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], progress=False)
    assert str(info.value).startswith(f"{sas['url']}/{CUBE_DR17}")
    assert leftovers(tmp_path) == []


def test_size_check_without_a_broken_connection(sas, tmp_path, monkeypatch):
    """Fewer bytes than Content-Length, delivered 'successfully', is still an error."""
    import requests

    real_get = requests.get

    def lying_get(url, **kwargs):
        response = real_get(url, **kwargs)
        size = int(response.headers["Content-Length"])
        response.headers["Content-Length"] = str(size + 10)
        return response

    monkeypatch.setattr(requests, "get", lying_get)
    with pytest.raises(DownloadError, match="announced"):
        fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], progress=False)
    assert leftovers(tmp_path) == []


def test_corrupt_gzip_is_refused(sas, tmp_path):
    served = sas["root"] / CUBE_DR17
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="gzip|corrupt") as info:
        fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], progress=False)
    assert str(info.value).startswith(sas["url"])
    assert leftovers(tmp_path) == []
    # verify=False keeps it (the reader will then report the damage itself).
    fetch("8485-1901", products=["cube"], outdir=tmp_path, base_url=sas["url"], verify=False,
          progress=False)  # fmt: skip
    assert (tmp_path / CUBE_DR17).exists()


def test_partial_failure_keeps_earlier_files(sas, tmp_path):
    with pytest.raises(DownloadError):
        fetch(["8485-1901", "9999-1901"], products=["cube"], outdir=tmp_path,
              base_url=sas["url"], progress=False)  # fmt: skip
    assert leftovers(tmp_path) == [tmp_path / CUBE_DR17]


# -- command line -------------------------------------------------------------------
def test_cli_fetch(sas, tmp_path, capsys):
    code = main(
        ["fetch", "8485-1901", "--products", "cube", "maps", "-o", str(tmp_path),
         "--base-url", sas["url"], "--no-progress"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / CUBE_DR17), str(tmp_path / MAPS_DR17)]


def test_cli_fetch_error_names_the_url(sas, tmp_path, capsys):
    code = main(["fetch", "9999-1901", "-o", str(tmp_path), "--base-url", sas["url"]])
    assert code == 1
    err = capsys.readouterr().err
    assert "ifsrepr fetch: error:" in err and f"{sas['url']}/dr17/" in err and "404" in err


def test_cli_fetch_rejects_bad_arguments(tmp_path, capsys):
    assert main(["fetch", "8485", "-o", str(tmp_path)]) == 1
    assert "PLATE-IFUDESIGN" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fetch", "8485-1901", "--products", "rss"])


# -- the real archive (not run in CI) ---------------------------------------------------
@pytest.mark.remote_data
def test_real_sas_download(tmp_path):
    """Download a real 19-fibre DR17 cube and its MAPS file and read both."""
    paths = fetch("8485-1901", outdir=tmp_path, progress=False)["8485-1901"]
    cube = ifsrepr.read(paths["cube"], redshift=0.0407447)
    assert cube.shape == (4563, 34, 34)
    assert cube.meta["plateifu"] == "8485-1901" and cube.meta["versdrp3"] == "v3_1_1"
    maps = ifsrepr.read(paths["maps"])
    assert len(maps) == 35
