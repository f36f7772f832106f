"""The browser UI (static/) in Debian's Chromium, headless, driven by Playwright against a real server:
upload a real clip, watch the progress bar reach 100%, download the composition and check it as the
`matte` tests do; screenshots of the finished page at laptop and phone widths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve.serving import Server, decoded, make_clip

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("RVMKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP, PHONE = {"width": 1280, "height": 860}, {"width": 390, "height": 844}
TIMEOUT_MS = 180_000
SCREENSHOTS_ENV = "RVMKIT_SERVE_SCREENSHOTS"

pytestmark = [pytest.mark.slow,  # a real browser against a real server running jobs
              pytest.mark.skipif(CHROMIUM is None,
                                 reason="no Chromium binary found (apt-get install chromium)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("ui") / "data", "--workers", "1").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_upload_progress_to_100_play_and_download(server, browser, tmp_path):
    clip = make_clip(tmp_path / "book clip.mp4", 30, size=(320, 240), audio=True)
    page = browser.new_page(viewport=LAPTOP, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(server.url)
            or request.url.startswith("data:") else outside.append(request.url))
    page.goto(server.url + "/")
    assert page.locator("#submit").is_disabled()
    page.set_input_files("#file-input", str(clip))
    page.check("input[name=outputs][value=alpha]")
    page.select_option("#ratio", "0.5")
    page.click("#submit")
    page.wait_for_function("document.getElementById('job-state').textContent === 'running'",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("document.getElementById('progress').value === 100", timeout=TIMEOUT_MS)
    page.wait_for_selector("#downloads a[data-output=composition]", timeout=TIMEOUT_MS)
    assert page.text_content("#job-state") == "done"
    assert "30 / 30 frames" in page.text_content("#progress-text")
    page.wait_for_function("document.getElementById('preview').complete", timeout=TIMEOUT_MS)
    page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=TIMEOUT_MS)

    with page.expect_download() as info:
        page.click("#downloads a[data-output=composition]")
    download = info.value
    assert download.suggested_filename == "book clip.composition.mp4"
    saved = tmp_path / "downloaded.mp4"
    download.save_as(saved)
    assert decoded(saved.read_bytes()) == (30, (320, 240), True)
    assert page.locator("#job-list li").count() == 1
    assert errors == [] and outside == []
    _screenshots(page, Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path))


def _screenshots(page, folder: Path) -> None:
    """The finished page at laptop and phone widths (the README's come from RVMKIT_SERVE_SCREENSHOTS=docs);
    at phone width nothing may stick out sideways."""
    folder.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('player').pause()")
    page.screenshot(path=str(folder / "serve.png"), full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(folder / "serve-phone.png"), full_page=True)


def test_cancel_from_the_job_list(server, browser, tmp_path):
    clip = make_clip(tmp_path / "long.mp4", 400, size=(160, 120), audio=False)
    page = browser.new_page(viewport=PHONE)
    page.goto(server.url + "/")
    page.set_input_files("#file-input", str(clip))
    page.click("#submit")
    page.wait_for_function("document.getElementById('progress').value > 0", timeout=TIMEOUT_MS)
    item = page.locator("#job-list li", has_text="long.mp4").first
    item.get_by_role("button", name="Cancel").click()
    page.wait_for_function("document.getElementById('job-state').textContent === 'cancelled'",
                           timeout=TIMEOUT_MS)
    page.locator("#job-list li", has_text="long.mp4").first.get_by_role("button", name="Delete").click()
    page.wait_for_function("![...document.querySelectorAll('#job-list li')].some(li => "
                           "li.textContent.includes('long.mp4'))", timeout=TIMEOUT_MS)
    page.wait_for_selector("#job", state="hidden", timeout=TIMEOUT_MS)  # the deleted job's panel goes too


def test_a_wrong_token_says_so_instead_of_no_jobs(browser, tmp_path_factory):
    token = "the-right-token-0123456789"
    guarded = Server(tmp_path_factory.mktemp("ui-token") / "data", token=token).start()
    try:
        page = browser.new_page(viewport=LAPTOP)
        page.add_init_script("localStorage.setItem('rvmkit-token', 'a-wrong-token-0123456789')")
        page.goto(guarded.url + "/")
        page.wait_for_selector("#token-bar", state="visible", timeout=TIMEOUT_MS)
        page.wait_for_function("document.getElementById('jobs-empty').textContent.includes('Wrong token')",
                               timeout=TIMEOUT_MS)
        assert "No jobs yet" not in page.text_content("#jobs")
        assert "refused this token" in page.text_content("#token-bar")
        page.fill("#token-input", token)
        page.click("#token-form button")
        page.wait_for_function("document.getElementById('jobs-empty').textContent === 'No jobs yet.'",
                               timeout=TIMEOUT_MS)
        page.close()
    finally:
        guarded.stop()
