"""The site server sends the headers multi-threaded WASM needs, and JavaScript/WASM as such."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_cli_serves_an_existing_site_until_terminated(tmp_path: Path) -> None:
    (tmp_path / "models.json").write_text("{}")
    (tmp_path / "index.html").write_text("<p>site</p>")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "rvmkit", "export-web", str(tmp_path), "--serve",
                                "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"<p>site</p>"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    from rvmkit.errors import RvmkitError
    from rvmkit.web.server import make_server, serve_until_stopped

    taken = make_server(tmp_path, "127.0.0.1", 0)
    port = taken.server_address[1]
    announced: list[str] = []
    try:
        with pytest.raises(RvmkitError, match=f"127.0.0.1:{port}: cannot serve there .*another --port"):
            serve_until_stopped(tmp_path, "127.0.0.1", port, announced.append)
    finally:
        taken.server_close()
    assert announced == []
