"""The exported page in a real browser: Debian's Chromium, headless, driven by Playwright.

The site is made by the CLI (`rvmkit export-web`) and served on 127.0.0.1 with the COOP/COEP headers
(rvmkit.web.server). Skipped, saying so, only where no chromium binary is found.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import read_frames
from rvmkit.bench import write_y4m

CHROMIUM = os.environ.get("RVMKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,  # a real browser: Chromium start-up, WASM and WebGPU matting
              pytest.mark.skipif(CHROMIUM is None,
                                 reason="no chromium binary found (apt-get install chromium)")]

BASE_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: WebGPU on Chromium's software adapter (SwiftShader on Vulkan), which Debian's chromium ships
WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan"]
RATIO = 0.5
MODEL = "models/rvm_mobilenetv3_r0.5.onnx"
SIZE = (320, 240)  # the numbers test's frames: small, so 10 recurrent frames take seconds in WASM
#: WebGPU's test frames: SwiftShader's time grows with the pixels (several seconds a frame at 320x240)
GPU_SIZE = (160, 120)
TIMEOUT_MS = 90_000


def small(frame: np.ndarray, size: tuple[int, int] = SIZE) -> Image.Image:
    return Image.fromarray(frame).resize(size, Image.BILINEAR)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding `site/` (made by the CLI, plus test frames), `broken/` (its model removed) and
    `ceil/` (its model with the ceil-mode pools the WebGPU kernel refuses, as before graph.pools)."""
    from rvmkit import weights
    from rvmkit.cli import main
    from rvmkit.graph.bake import convert_official

    root = tmp_path_factory.mktemp("web")
    assert main(["export-web", str(root / "site"), "--ratio", str(RATIO)]) == 0
    (root / "site" / "frames").mkdir()
    (root / "site" / "gpu_frames").mkdir()
    for index, frame in enumerate(read_frames("book", 10)):
        small(frame).save(root / "site" / "frames" / f"{index}.png")
        small(frame, GPU_SIZE).save(root / "site" / "gpu_frames" / f"{index}.png")
    shutil.copytree(root / "site", root / "broken", ignore=shutil.ignore_patterns("*.onnx", "frames"))
    shutil.copytree(root / "site", root / "ceil", ignore=shutil.ignore_patterns("*.onnx"))
    convert_official(weights.official_onnx_path(), root / "ceil" / MODEL, RATIO)
    return root


@pytest.fixture(scope="module")
def isolated_url(sites: Path) -> Iterator[str]:
    yield from _serve(sites, isolate=True)


@pytest.fixture(scope="module")
def plain_url(sites: Path) -> Iterator[str]:
    yield from _serve(sites, isolate=False)


def _serve(folder: Path, isolate: bool) -> Iterator[str]:
    from rvmkit.web.server import serve_in_thread, url_of

    server = serve_in_thread(folder, isolate=isolate)
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def _launch(playwright: object, *extra: str) -> object:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *extra], timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = [np.asarray(small(frame)) for frame in read_frames("book", 30)]
    return write_y4m(tmp_path_factory.mktemp("camera") / "book.y4m", frames)


def fake_camera(clip: Path) -> list[str]:
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]


@pytest.fixture(scope="module")
def camera_browser(playwright: object, camera_clip: Path) -> Iterator[object]:
    """Chromium whose fake camera plays a real clip (looped); access only where a context grants it."""
    browser = _launch(playwright, *fake_camera(camera_clip))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def webgpu_browser(playwright: object, camera_clip: Path) -> Iterator[object]:
    """Chromium with WebGPU on the software adapter, and the same fake camera."""
    browser = _launch(playwright, *WEBGPU_ARGS, *fake_camera(camera_clip))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def webgpu_page(webgpu_browser: object, isolated_url: str) -> Iterator[object]:
    """The page asked for WebGPU, its model loaded (shared: the first WebGPU run compiles the shaders)."""
    page = open_page(webgpu_browser, isolated_url + "site/?backend=webgpu", camera=True)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def camera_page(camera_browser: object, isolated_url: str) -> Iterator[object]:
    """The page with its model loaded and the camera allowed (shared: loading it takes seconds)."""
    page = open_page(camera_browser, isolated_url + "site/", camera=True)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def browser(playwright: object) -> Iterator[object]:
    """Chromium with no camera at all."""
    browser = _launch(playwright)
    yield browser
    browser.close()


def open_page(browser: object, url: str, *, wait: str = "model", camera: bool = False) -> object:
    """A page in a fresh context; wait: "model" (loaded), "controls" (enabled; the model still loading)
    or "" (nothing). camera: grant the camera permission."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    if camera:
        context.grant_permissions(["camera"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    wait_until(page, "window.rvmkitTest !== undefined")
    if wait == "model":
        page.evaluate("window.rvmkitTest.ready")
    elif wait == "controls":
        wait_until(page, "document.body.dataset.state !== 'loading'")
    return page


def wait_until(page: object, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a page expression from here (the page's CSP forbids the eval Playwright's own polling uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.2)


def page_message(page: object) -> str:
    page.wait_for_selector("#message:not([hidden])")
    return page.inner_text("#message")


def canvas_colours(page: object) -> int:
    """How many distinct colours the output canvas shows (1: blank)."""
    return page.evaluate("""() => {
        const canvas = document.getElementById('output');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const seen = new Set();
        for (let i = 0; i < data.length && seen.size < 50; i += 4) {
            seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
        }
        return seen.size;
    }""")


def python_path(model: Path, frames: list[np.ndarray], carry_state: bool = True
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """rvmkit's Python path (plain ONNX Runtime) on the page's model, quantised as the page does."""
    from rvmkit.runtime import load_backend

    def to_bytes(values: np.ndarray) -> np.ndarray:
        return np.floor(np.clip(values.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.int16)

    results, state = [], None
    with load_backend("onnxruntime", model, fast=False) as backend:
        for frame in frames:
            src = (frame.astype(np.float32) / 255).transpose(2, 0, 1)[None]
            fgr, pha, next_state = backend.step(src, state, RATIO)
            state = next_state if carry_state else None
            results.append((to_bytes(pha[0, 0]), to_bytes(fgr[0].transpose(1, 2, 0))))
    return results


def matte_frames(page: object, count: int, folder: str = "frames") -> list[dict]:
    """The hook on the first `count` test frames, one stream (state carried)."""
    urls = [f"{folder}/{index}.png" for index in range(count)]
    # JSON in the page: Playwright's own transfer of millions of numbers takes minutes
    hook = "async ([urls, ratio]) => JSON.stringify(await window.rvmkitTest.matteUrls(urls, ratio))"
    return json.loads(page.evaluate(hook, [urls, RATIO]))


def frames_of(sites: Path, count: int, folder: str = "frames") -> list[np.ndarray]:
    return [np.asarray(Image.open(sites / "site" / f"{folder}/{index}.png").convert("RGB"))
            for index in range(count)]


def assert_as_python_path(sites: Path, results: list[dict], folder: str = "frames"
                          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each frame's alpha and fgr within 2/255 of plain ONNX Runtime on the same frames, state carried."""
    expected = python_path(sites / "site" / MODEL, frames_of(sites, len(results), folder))
    height, width = expected[0][0].shape
    for index, (result, (alpha, fgr)) in enumerate(zip(results, expected)):
        assert (result["width"], result["height"]) == (width, height)
        page_alpha = np.array(result["alpha"], np.int16).reshape(height, width)
        page_fgr = np.array(result["fgr"], np.int16).reshape(height, width, 3)
        assert np.abs(page_alpha - alpha).max() <= 2, f"frame {index}: alpha off by more than 2/255"
        assert np.abs(page_fgr - fgr).max() <= 2, f"frame {index}: fgr off by more than 2/255"
        assert 0.05 < (alpha > 128).mean() < 0.95, "a person on a background, not a blank matte"
    return expected


def test_hook_mattes_ten_frames_with_state_as_the_python_path(sites: Path, camera_page: object) -> None:
    results = matte_frames(camera_page, 10)
    assert {result["backend"] for result in results} == {"wasm"}
    expected = assert_as_python_path(sites, results)
    stateless = python_path(sites / "site" / MODEL, frames_of(sites, 10), carry_state=False)
    assert max(np.abs(a - b[0]).max() for a, b in zip([r[0] for r in expected], stateless)) > 2, \
        "the tolerance must tell a carried state from none"


def test_camera_is_matted_live_with_fps(camera_page: object) -> None:
    page = camera_page
    status = page.evaluate("window.rvmkitTest.status()")
    assert status["isolated"] and status["threads"] >= 1 and status["backend"] == "wasm"
    page.click("#start-camera")
    page.select_option("#view", "alpha")
    started = time.monotonic()
    wait_until(page, "window.rvmkitTest.status().frames >= 3")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))  # a few seconds of live matting
    status = page.evaluate("window.rvmkitTest.status()")
    assert status["running"] and status["fps"] > 0 and status["message"] == ""
    assert "fps" in page.inner_text("#fps") and "WASM" in page.inner_text("#backend")
    bright = page.evaluate("""() => {
        const canvas = document.getElementById('output');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let on = 0;
        for (let i = 0; i < data.length; i += 4) on += data[i] > 128;
        return on / (data.length / 4);
    }""")
    assert 0.05 < bright < 0.95, f"alpha view: {bright:.1%} of the pixels are foreground"
    stages = page.evaluate("window.rvmkitTest.status().stageMs")
    assert set(stages) == {"readMs", "packMs", "runMs", "drawMs"} and min(stages.values()) > 0, stages
    page.select_option("#view", "colour")
    for colour, channel in (("#ff0000", 0), ("#0000ff", 2)):  # the cached backdrop follows the colour
        page.fill("#colour", colour)
        done = page.evaluate("window.rvmkitTest.status().frames")
        wait_until(page, f"window.rvmkitTest.status().frames >= {done + 2}")
        share = page.evaluate("""(channel) => {
            const canvas = document.getElementById('output');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let pure = 0;
            for (let i = 0; i < data.length; i += 4) {
                pure += [0, 1, 2].every((c) => (c === channel ? data[i + c] === 255 : data[i + c] === 0));
            }
            return pure / (data.length / 4);
        }""", channel)
        assert share > 0.05, f"{colour}: only {share:.1%} of the pixels show the background colour"
    page.click("#stop")
    assert not page.evaluate("window.rvmkitTest.status().running")


def test_missing_model_file_is_explained(browser: object, isolated_url: str) -> None:
    page = open_page(browser, isolated_url + "broken/", wait="")
    message = page_message(page)
    assert MODEL in message and "missing" in message and "rvmkit export-web" in message
    assert page.is_disabled("#start-camera")
    assert canvas_colours(page) > 1
    page.context.close()


def test_denied_camera_is_explained(camera_browser: object, isolated_url: str) -> None:
    page = open_page(camera_browser, isolated_url + "site/", wait="controls")
    page.click("#start-camera")
    assert "permission denied" in page_message(page).lower()
    assert canvas_colours(page) > 1
    assert not page.evaluate("window.rvmkitTest.status().running")
    page.context.close()


def test_no_camera_is_explained(browser: object, isolated_url: str) -> None:
    page = open_page(browser, isolated_url + "site/", wait="controls", camera=True)
    page.click("#start-camera")
    assert "no camera found" in page_message(page).lower()
    assert canvas_colours(page) > 1
    page.context.close()


def test_page_without_isolation_runs_one_thread_and_says_so(browser: object, plain_url: str) -> None:
    page = open_page(browser, plain_url + "site/", wait="controls")
    status = page.evaluate("window.rvmkitTest.status()")
    assert not status["isolated"] and status["threads"] == 1
    assert "1 thread" in page_message(page) and "1 thread" in page.inner_text("#backend")
    page.context.close()


def test_page_opened_from_file_says_to_serve_it(browser: object, sites: Path) -> None:
    page = browser.new_page()
    page.goto((sites / "site" / "index.html").as_uri())
    message = page_message(page)
    assert "file://" in message and "--serve" in message
    page.close()


# ---- WebGPU (Chromium's software adapter) and the fall-back to WASM ----

def test_webgpu_mattes_ten_frames_as_the_python_path(sites: Path, webgpu_page: object) -> None:
    """The page asked for WebGPU runs the model on it (its ceil-mode pools padded by export-web)."""
    results = matte_frames(webgpu_page, 10, "gpu_frames")
    assert [result["backend"] for result in results] == ["webgpu"] * 10
    assert_as_python_path(sites, results, "gpu_frames")
    status = webgpu_page.evaluate("window.rvmkitTest.status()")
    assert status["lastBackend"] == "webgpu" and status["fallback"] == "" and status["message"] == ""
    assert webgpu_page.inner_text("#backend").startswith("backend: WebGPU")


def test_webgpu_failing_on_a_later_run_falls_back_to_wasm_once(sites: Path, webgpu_page: object) -> None:
    """The second run fails: that frame and the rest run on WASM, the same stream (state kept), the page
    says so once, and the live camera then goes on matting on WASM, named in the footer."""
    page = webgpu_page
    page.evaluate("window.rvmkitTest.failWebgpu(2)")
    results = matte_frames(page, 4, "gpu_frames")
    assert [result["backend"] for result in results] == ["webgpu", "wasm", "wasm", "wasm"]
    assert_as_python_path(sites, results, "gpu_frames")
    status = page.evaluate("window.rvmkitTest.status()")
    assert status["backend"] == status["lastBackend"] == "wasm" and status["message"] == ""
    assert "WebGPU failed on run" in status["fallback"] and "test hook" in status["fallback"]
    assert page_message(page).count("switched to WASM") == 1
    page.click("#start-camera")
    page.select_option("#view", "alpha")
    wait_until(page, "window.rvmkitTest.status().frames >= 2")
    status = page.evaluate("window.rvmkitTest.status()")
    assert status["running"] and status["lastBackend"] == "wasm" and status["message"] == ""
    assert page.inner_text("#backend").startswith("backend: WASM") and canvas_colours(page) > 1
    assert page_message(page).count("switched to WASM") == 1
    page.click("#stop")


def test_webgpu_session_that_cannot_be_created_falls_back_to_wasm(webgpu_browser: object,
                                                                   isolated_url: str) -> None:
    page = open_page(webgpu_browser, isolated_url + "site/?backend=webgpu&failwebgpu=0")
    assert [result["backend"] for result in matte_frames(page, 1)] == ["wasm"]
    assert "WebGPU failed creating its session" in page_message(page)
    assert page.inner_text("#backend").startswith("backend: WASM")
    page.context.close()


def test_model_the_webgpu_kernel_refuses_falls_back_and_never_sticks(sites: Path, webgpu_browser: object,
                                                                     isolated_url: str) -> None:
    """The issue's repro: a model with ceil-mode pools fails its first WebGPU run; the page switches to
    WASM for that frame on, and later calls (which hung on the failed session) run."""
    page = open_page(webgpu_browser, isolated_url + "ceil/?backend=webgpu")
    first = matte_frames(page, 2)
    assert [result["backend"] for result in first] == ["wasm", "wasm"]
    assert_as_python_path(sites, first)
    message = page_message(page)
    assert "WebGPU failed on its first run" in message and "ceil_mode" in message
    for _ in range(2):
        assert [result["backend"] for result in matte_frames(page, 1)] == ["wasm"]
    assert message.count("switched to WASM") == 1
    assert page.inner_text("#backend").startswith("backend: WASM")
    page.context.close()


@pytest.mark.parametrize(("query", "threads"), [("64", "cores"), ("-1", 1), ("two", "default")])
def test_threads_out_of_range_is_clamped_and_said(browser: object, isolated_url: str, query: str,
                                                  threads: object) -> None:
    page = open_page(browser, isolated_url + f"site/?threads={query}", wait="controls")
    cores = page.evaluate("navigator.hardwareConcurrency")
    wanted = {"cores": cores, "default": min(4, cores)}.get(threads, threads)
    assert page.evaluate("window.rvmkitTest.status().threads") == wanted
    assert f"?threads={query} is not a whole number in 1..{cores}: using {wanted}" in page_message(page)
    page.context.close()
