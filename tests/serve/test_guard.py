"""Who may call a local server, in headless Chromium: a page on another loopback port cannot submit a job
(not even with a `no-cors` fetch, whose answer it never reads), and a page that points its own name at
127.0.0.1 (DNS rebinding, here Chromium's --host-resolver-rules) cannot read the API. Plus the rules
themselves: host names as compared, and which hosts a server answers to."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading

import pytest
from serve.serving import Server, files_under, make_clip

from rvmkit.serve.config import ServeConfig
from rvmkit.serve.guard import host_name, served_hosts

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("RVMKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000
REBIND = "rebind.test"

ATTACK = """<!doctype html><title>waiting</title><script>
fetch("/clip.mp4").then((r) => r.blob()).then((clip) => {
  const data = new FormData();
  data.append("file", clip, "clip.mp4");
  return fetch("TARGET/api/jobs", {method: "POST", body: data, mode: "no-cors"});
}).then(() => { document.title = "sent"; }, (e) => { document.title = "error " + e; });
</script>"""


@pytest.mark.parametrize("host, name", [("127.0.0.1:8000", "127.0.0.1"), ("[::1]:8000", "::1"),
                                        ("LocalHost.", "localhost"), ("evil.test:8000", "evil.test"),
                                        ("", "")])
def test_host_names_are_compared_without_port_case_or_final_dot(host, name):
    assert host_name(host) == name


def test_which_hosts_a_server_answers_to(tmp_path):
    loopback = served_hosts(ServeConfig(data_dir=tmp_path, allowed_hosts=("Rvmkit.Test",)))
    assert loopback == {"127.0.0.1", "localhost", "::1", "rvmkit.test"}
    public = served_hosts(ServeConfig(data_dir=tmp_path, host="192.0.2.7", token="x" * 16))
    assert public == {"192.0.2.7"}
    assert served_hosts(ServeConfig(data_dir=tmp_path, host="0.0.0.0", token="x" * 16)) is None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("guard") / "data", "--workers", "1").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium binary found (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=[*ARGS, f"--host-resolver-rules=MAP {REBIND} 127.0.0.1"])
        yield chromium
        chromium.close()


@pytest.fixture
def other_site(tmp_path, server):
    """Another web site on a second loopback port, serving a page that posts a real clip to the server."""
    (tmp_path / "index.html").write_text(ATTACK.replace("TARGET", server.url))
    make_clip(tmp_path / "clip.mp4", 6, size=(64, 48), audio=False)
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    site.server_close()
    thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_a_page_on_another_port_cannot_submit_a_job(server, browser, other_site):
    page = browser.new_page()
    statuses: list[int] = []
    page.on("response", lambda response: statuses.append(response.status)
            if response.url.startswith(server.url) else None)
    page.goto(other_site + "/")
    page.wait_for_function("document.title !== 'waiting'", timeout=TIMEOUT_MS)
    assert page.title() == "sent"  # the browser sent it (no-cors: the page never sees the answer)
    assert statuses == [403]
    assert server.client().get("/api/jobs").json()["jobs"] == []
    assert files_under(server.data_dir / "jobs") == []
    page.close()


@pytest.mark.slow
def test_a_page_that_rebinds_its_name_to_loopback_cannot_read_the_api(server, browser):
    page = browser.new_page()
    response = page.goto(f"http://{REBIND}:{server.port}/api/jobs")
    assert response.status == 403 and "--allow-host" in page.content()
    same_origin = page.evaluate("fetch('/api/health').then((r) => r.status)")
    assert same_origin == 403
    assert page.goto(f"http://{REBIND}:{server.port}/").status == 403  # not even the UI
    page.close()
