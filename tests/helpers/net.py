"""HTTP on 127.0.0.1: a file server that can misbehave on purpose, and free / closed ports.

The server can answer 404 or 500, drop a connection mid-file or send wrong bytes, so the
real download code runs against every failure the issue lists; "no network" is a closed
port on 127.0.0.1, without touching the internet.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: 'no network' without touching the internet."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class FileServer:
    """Serves `files[path] = bytes`; `mode[path]` in ok | 404 | drop | drop_once | wrong | 500."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    mode: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


def _handler(server: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _serve(self, body: bool) -> None:
            path = self.path.lstrip("/")
            server.hits[path] = server.hits.get(path, 0) + 1
            mode = server.mode.get(path, "ok")
            if path not in server.files or mode == "404":
                self.send_error(404)
                return
            if mode == "500":
                self.send_error(500)
                return
            data = server.files[path]
            if mode == "wrong":
                data = data[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            dropping = mode == "drop" or (mode == "drop_once" and server.hits[path] == 1)
            if dropping:  # half the promised bytes, then hang up
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

    return Handler


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    """A FileServer on 127.0.0.1 at a free port, in a thread; shut down on the way out."""
    state = FileServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # shutdown() waits for the loop's next look at its flag: every 0.5 s by default, which
    # was half a second per test using a server
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def serve_all(server: FileServer, files: dict[str, dict[str, bytes]]) -> None:
    """Serve every file of `files` ({dataset: {name: bytes}}) at <dataset>/<name>."""
    for name, named in files.items():
        for fname, data in named.items():
            server.files[f"{name}/{fname}"] = data
