"""A small static server for an exported site, with the headers that multi-threaded WASM needs.

WASM threads need SharedArrayBuffer, which browsers give only to a cross-origin isolated page: one
served with COOP `same-origin` and COEP `require-corp`. `python -m http.server` sends neither, so the
page would run on one thread; this server sends both. For `rvmkit export-web DIR --serve` and tests.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError
from rvmkit.signals import exit_with_status, handling
from rvmkit.web import ISOLATION_HEADERS, write_site

#: module scripts must come as JavaScript; WASM streaming compilation wants application/wasm
MIME_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
              ".onnx": "application/octet-stream", ".json": "application/json"}


class SiteHandler(SimpleHTTPRequestHandler):
    """Files of one folder, with the isolation headers and no caching (a re-export shows at once)."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    isolate = True

    def end_headers(self) -> None:
        if self.isolate:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: a page load is dozens of requests."""


def make_server(folder: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, *,
                isolate: bool = True) -> ThreadingHTTPServer:
    """A bound server for `folder` (port 0: any free port); call serve_forever() or use `serve_in_thread`."""
    handler = type("Handler", (SiteHandler,), {"isolate": isolate})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=os.fspath(folder)))
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve_in_thread(folder: str | os.PathLike, *, isolate: bool = True) -> ThreadingHTTPServer:
    """Serve `folder` on 127.0.0.1 at a free port from a daemon thread; stop it with shutdown()."""
    server = make_server(Path(folder), port=0, isolate=isolate)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


def write_until_stopped(out_dir: str | os.PathLike, **options: Any) -> Path:
    """`write_site`, with SIGTERM unwinding like Ctrl-C so the half-built folder is removed
    (`rvmkit export-web`)."""
    with handling((signal.SIGTERM,), exit_with_status, replace=True):
        return write_site(Path(out_dir), **options)


def serve_until_stopped(folder: str | os.PathLike, host: str, port: int,
                        announce: Callable[[str], None]) -> None:
    """Serve `folder` until Ctrl-C or SIGTERM, the socket closed however it ends (`rvmkit export-web
    --serve`); a host or port that cannot be bound is one line. `announce` gets the address."""
    try:
        server = make_server(folder, host, port)
    except OSError as error:
        raise RvmkitError(f"{host}:{port}: cannot serve there ({error.strerror or error}); "
                          "choose another --port") from None
    try:
        with handling((signal.SIGTERM,), exit_with_status, replace=True):
            announce(f"serving {folder} at {url_of(server)} (Ctrl-C to stop)")
            server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
