"""Tests of the figures, the HTML review page and ``ifsrepr report``, in a real browser too.

The browser test drives Debian's headless Chromium through the Chrome
DevTools Protocol with nothing but the standard library (a minimal
WebSocket client below): it opens the page from disk (``file://``), checks
the candidates are shown, clicks a label button with real mouse events,
reloads to see the label kept, and clicks "Export labels (CSV)" with the
download directed to a temporary folder, whose file must hold the expected
CSV. It is skipped only where Chromium is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from matplotlib.figure import Figure

from ifsrepr.cli import main
from ifsrepr.exceptions import IFSReprError
from ifsrepr.report import (
    ReportWarning,
    embed_latents,
    error_figure,
    galaxy_figure,
    latent_map,
    model_maps,
    write_report,
)
from ifsrepr.scoring import (
    AnomalyScorer,
    DuplicatePlateIFUWarning,
    Encoding,
    ModelMismatchError,
    encode_dataset,
)
from ifsrepr.scoring._testing import fit_tiny_encoder, make_tiny_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_tiny_survey(tmp_path_factory.mktemp("report"), duplicate=True, broken=True)


@pytest.fixture(scope="module")
def encoder(survey):
    return fit_tiny_encoder(survey["dataset"])


@pytest.fixture(scope="module")
def encoding(survey, encoder):
    with pytest.warns(DuplicatePlateIFUWarning):
        return encode_dataset(encoder, survey["dataset"], progress=False)


@pytest.fixture(scope="module")
def scores(encoding):
    return AnomalyScorer(n_neighbors=5).fit(encoding).score()


def images(page: str) -> list[bytes]:
    found = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    return [base64.b64decode(b) for b in found]


# -- figures ---------------------------------------------------------------------------------------


def test_galaxy_figure_shows_the_lines_that_matter(encoder, survey, scores):
    row = scores[0]
    ((x, w, x_hat),) = model_maps(encoder, survey["dataset"], [int(row["row"])])
    assert x.shape == w.shape == x_hat.shape == (19, 16, 16)
    figure = galaxy_figure(x, w, x_hat, encoder.preprocessor_.line_names, row=row, n_scored=17)
    assert isinstance(figure, Figure)
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel() in
              encoder.preprocessor_.line_names]  # fmt: skip
    assert labels[0] == row["top_line"] and len(labels) == 3
    title = figure._suptitle.get_text()
    assert "rank 1 of 17" in title and row["uid"] in title and "score" in title
    chosen = galaxy_figure(x, w, x_hat, encoder.preprocessor_.line_names, lines=["Ha-6564"])
    assert "Ha-6564" in [ax.get_ylabel() for ax in chosen.axes]
    with pytest.raises(ValueError, match="not among"):
        galaxy_figure(x, w, x_hat, encoder.preprocessor_.line_names, lines=["Xx-1"])


def test_error_figure_and_latent_map(encoding, scores):
    figure = error_figure(encoding.spaxel_errors[0], encoding.line_errors[0], encoding.line_names)
    assert len(figure.axes) == 3  # map, its colour bar, the bars
    assert error_figure(None, encoding.line_errors[0], encoding.line_names).axes
    coords, method = embed_latents(encoding.latents)
    assert coords.shape == (17, 2) and method in ("t-SNE", "umap")
    assert embed_latents(encoding.latents[:5])[1] == "pca"  # too few for t-SNE
    classes = np.where(np.arange(17) % 2, "none", "blueberry")
    figure = latent_map(encoding.latents, classes, label="anomaly", coords=coords)
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["blueberry", "none"]
    figure = latent_map(encoding.latents, encoding.redshift, label="redshift", coords=coords,
                        highlight=[0, 1], names=["a", "b"])  # fmt: skip
    assert figure.axes[1].get_ylabel() == "redshift"  # the colour bar


# -- the page --------------------------------------------------------------------------------


def test_report_with_maps(scores, encoding, encoder, survey, tmp_path):
    path = write_report(
        scores, tmp_path / "r", top=4, encoding=encoding, dataset=survey["dataset"],
        encoder=encoder,
    )  # fmt: skip
    page = path.read_text()
    assert path.name == "index.html"
    assert page.count('<section class="candidate"') == 4
    for row in scores[:4]:
        assert f'data-uid="{row["uid"]}"' in page
    assert len(images(page)) == 5  # four candidates and the latent map
    assert all(png.startswith(b"\x89PNG") for png in images(page))
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script src" not in page and "<link" not in page
    # Every scored galaxy in the table, the failed one listed apart, with its reason.
    assert page.count("<tr data-uid=") == 17
    assert "Not scored (1)" in page and "9999-1901" in page
    assert scores["reason"][-1][:40] in page


def test_report_from_the_table_alone_and_from_an_encoding(scores, encoding, tmp_path):
    bare = write_report(scores, tmp_path / "bare", top=3).read_text()
    assert bare.count('<section class="candidate"') == 3 and not images(bare)
    with_errors = write_report(scores, tmp_path / "enc", top=3, encoding=encoding).read_text()
    assert len(images(with_errors)) == 4
    with pytest.raises(IFSReprError, match="no such column"):
        write_report(scores, tmp_path / "x", encoding=encoding, top=2, color_by="magic")


def test_more_candidates_than_galaxies(scores, tmp_path, capsys):
    with pytest.warns(ReportWarning, match="asked for the top 50 candidates but only 17"):
        page = write_report(scores, tmp_path / "r", top=50).read_text()
    assert page.count('<section class="candidate"') == 17
    assert "showing all 17" in page
    path = tmp_path / "scores.ecsv"
    scores.write(path)
    assert main(["report", str(path), "-o", str(tmp_path / "cli"), "--top", "99"]) == 0
    captured = capsys.readouterr()
    assert "warning: asked for the top 99 candidates but only 17" in captured.err
    assert "report written to" in captured.out


def test_report_refuses_an_encoding_of_another_model(scores, encoder, tmp_path):
    fake = Encoding(
        plateifu=["1-1"], latents=np.zeros((1, 2)), error=[1.0], line_errors=np.ones((1, 1)),
        n_good=[1], line_names=["L"], model_name="another model", model_sha256="f" * 64,
    )  # fmt: skip
    with pytest.raises(ModelMismatchError, match="another model"):
        write_report(scores, tmp_path / "r", encoding=fake)
    other = fit_tiny_encoder(Path(scores.meta["encoding"]), n_components=4)
    with pytest.raises(ModelMismatchError, match="not with unsaved pca model"):
        write_report(scores, tmp_path / "r", encoder=other)


def test_report_command_with_everything(scores, encoding, encoder, survey, tmp_path, capsys):
    model = encoder.save_pretrained(tmp_path / "model")
    path = tmp_path / "scores.ecsv"
    encoded = encoding.save(tmp_path / "encoded.h5")
    scores.write(path)
    assert main(["report", str(path), "-o", str(tmp_path / "r"), "--top", "2", "--encoding",
                 str(encoded), "--dataset", str(survey["dataset"]), "--model", str(model),
                 "--color-by", "redshift", "--title", "Review"]) == 0  # fmt: skip
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<title>Review</title>" in page and len(images(page)) == 3
    assert main(["report", str(path), "-o", str(tmp_path / "r"), "--dataset", "x.h5"]) == 1
    assert "--dataset needs --model" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.ecsv"), "-o", str(tmp_path / "r")]) == 1


# -- in a real browser ----------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: masked text frames out, frames in."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        match = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        if b" 101 " not in response.split(b"\r\n")[0]:
            raise ConnectionError(response.decode(errors="replace"))
        self.buffer = response.split(b"\r\n\r\n", 1)[1]

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytes([0x81])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + body)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the browser closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the connection")
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Page:
    """A Chromium tab driven through the DevTools protocol."""

    def __init__(self, socket_: WebSocket) -> None:
        self.ws = socket_
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expression)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of an element."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            "return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], **extra)


@pytest.fixture
def browser(tmp_path):
    """``open(url) -> Page`` in a fresh headless Chromium; closed after the test."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    processes = []

    def open_page(url: str) -> Page:
        profile = tmp_path / "profile"
        process = subprocess.Popen(
            [
                executable, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--remote-debugging-port=0",
                "--remote-allow-origins=*", url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(process)
        # Chromium writes the port it chose into the profile directory.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools server")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            if targets or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return Page(WebSocket(targets[0]["webSocketDebuggerUrl"]))

    yield open_page
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_review_in_a_real_browser(scores, encoding, browser, tmp_path):
    path = write_report(scores, tmp_path / "report", top=5, encoding=encoding)
    page = browser(path.resolve().as_uri())
    page.wait_for("document.readyState === 'complete' && !!window.ifsreprReport")

    # The page shows the five candidates, most anomalous first, with their figures.
    shown = page.js("[...document.querySelectorAll('section.candidate')].map(s => s.dataset.uid)")
    assert shown == [str(u) for u in scores["uid"][:5]]
    assert page.js("[...document.querySelectorAll('section.candidate img')]"
                   ".every(i => i.complete && i.naturalWidth > 100)")  # fmt: skip
    assert page.js("document.querySelectorAll('#galaxies tbody tr').length") == 17
    assert "9999-1901" in page.js("document.getElementById('not-scored').textContent")

    # Mark the second candidate "artefact" and the first "interesting" with real clicks.
    second, first = shown[1], shown[0]
    page.click(f'button.mark[data-uid="{second}"][data-label="artefact"]')
    page.click(f'button.mark[data-uid="{first}"][data-label="interesting"]')
    assert page.js(f"document.querySelector('button.mark[data-uid=\"{second}\"]"
                   "[data-label=\"artefact\"]').classList.contains('selected')")  # fmt: skip
    assert page.js("document.getElementById('label-count').textContent") == "2 labelled"
    row_label = f"document.querySelector('#galaxies td.current[data-uid=\"{second}\"]').textContent"
    assert page.js(row_label) == "artefact"

    # The labels survive a reload (localStorage).
    page.call("Page.reload")
    page.wait_for(
        "document.readyState === 'complete' && !!window.ifsreprReport && "
        "document.getElementById('label-count').textContent === '2 labelled'"
    )

    # Sorting: a click on the plateifu header orders the table by it.
    page.click('#galaxies th[data-col="1"]')
    column = page.js("[...document.querySelectorAll('#galaxies tbody tr')]"
                     ".map(r => r.cells[1].textContent)")  # fmt: skip
    assert column == sorted(column)

    # Export: the button downloads the CSV (rows in rank order) and shows it.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    page.click("#export-csv")
    expected = f"plateifu,label\n{first},interesting\n{second},artefact\n"
    deadline = time.monotonic() + 20
    files = []
    while time.monotonic() < deadline:
        files = [f for f in downloads.iterdir() if f.suffix == ".csv"]
        if files and files[0].read_text() == expected:
            break
        time.sleep(0.1)
    assert files and files[0].name == "ifsrepr-labels.csv"
    assert files[0].read_text() == expected
    assert page.js("document.getElementById('csv-output').textContent") == expected

    # Clicking a mark again removes it.
    page.click(f'button.mark[data-uid="{second}"][data-label="artefact"]')
    assert page.js("window.ifsreprReport.exportCSV()") == f"plateifu,label\n{first},interesting\n"
    page.ws.close()


def test_scores_table_round_trip_keeps_the_report_identical(scores, tmp_path):
    path = tmp_path / "scores.ecsv"
    scores.write(path)
    a = write_report(scores, tmp_path / "a", top=3).read_text()
    b = write_report(Table.read(path), tmp_path / "b", top=3).read_text()
    assert a == b
