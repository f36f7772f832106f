"""The site server sends the headers multi-threaded WASM needs, and JavaScript/WASM as such."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from rvmkit.web.server import serve_in_thread, url_of


@pytest.mark.parametrize("isolate", [True, False])
def test_headers_and_types(tmp_path: Path, isolate: bool) -> None:
    for name in ("app.mjs", "runtime.wasm", "index.html"):
        (tmp_path / name).write_bytes(b"x")
    server = serve_in_thread(tmp_path, isolate=isolate)
    try:
        responses = {name: urllib.request.urlopen(url_of(server) + name, timeout=10)
                     for name in ("app.mjs", "runtime.wasm", "index.html")}
    finally:
        server.shutdown()
        server.server_close()
    assert responses["app.mjs"].headers["Content-Type"] == "text/javascript"
    assert responses["runtime.wasm"].headers["Content-Type"] == "application/wasm"
    headers = responses["index.html"].headers
    assert (headers["Cross-Origin-Opener-Policy"], headers["Cross-Origin-Embedder-Policy"]) == \
        (("same-origin", "require-corp") if isolate else (None, None))
    assert url_of(server).startswith("http://127.0.0.1:")
