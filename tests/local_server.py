"""A folder served over HTTP on 127.0.0.1, for the tests of code that downloads."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder quietly; the path of every request goes to ``server.requests``."""

    def log_message(self, *args) -> None:
        self.server.requests.append(self.path)


@contextlib.contextmanager
def serve_directory(
    root: str | Path, handler: type = RecordingHandler
) -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    """Serve ``root`` until the block ends; yields the base URL and the server.

    ``server.requests`` is a list for handlers to record requests in.
    """
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
