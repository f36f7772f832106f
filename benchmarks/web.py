"""The browser page's speed beside Python ONNX Runtime, on the same machine, model and frames.

    .venv/bin/python benchmarks/web.py --screenshot docs/web.png   # writes benchmarks/web.json + web.md

One site is exported at ratio 0.5 (`write_site`), the first --frames frames of book.mkv (640x480)
are written as PNGs into it, and it is served on 127.0.0.1 with the COOP/COEP headers. Then, one after
the other (never concurrently):
  (a) Python: rvmkit's backends on the site's own model file with 2 ONNX Runtime threads: the plain
      session (`fast=False`, float input) and the CPU fast path, timed interleaved frame by frame;
  (b) Chromium headless (Debian's, --disable-gpu), page `?backend=wasm&threads=2`:
      - the test hook `matteUrls` over the same PNGs: session.run() per frame (model only, through
        ORT's proxy worker) and the hook's wall time per frame (PNG decode, float conversion, run,
        8-bit quantisation);
      - live: the fake camera plays the frames (y4m, looped) and the page mattes the newest frame at
        640x480; fps = frames matted / seconds, over --live-seconds after a warm-up.
Warm-up frames are dropped everywhere. The screenshot is the live page over a colour.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT, RATIO, THREADS, WARMUP = 640, 480, 0.5, 2, 3


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def python_times(model: Path, frames: list[np.ndarray]) -> dict[str, dict]:
    from rvmkit import bench
    from rvmkit.runtime import load_backend

    plain = load_backend("onnxruntime", model, fast=False, threads=THREADS)
    fast = load_backend("onnxruntime", model, threads=THREADS)
    steppers = {"python_ort_plain": bench.backend_stepper(plain, frames, RATIO),
                "python_ort_fast_path": bench.backend_stepper(fast, frames, RATIO)}
    seconds = bench.time_interleaved(steppers, len(frames), warmup=WARMUP)
    return {name: bench.summarize(name, values, WIDTH, HEIGHT, RATIO).as_dict()
            for name, values in seconds.items()}


def wait_until(page, expression: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.2)


HOOK = """async ([urls, ratio]) => {
    const started = performance.now();
    const results = await window.rvmkitTest.matteUrls(urls, ratio);
    return {wallMs: performance.now() - started, runMs: results.map((r) => r.runMs)};
}"""


def browser_times(chromium: str, url: str, count: int, clip: Path, live_seconds: float,
                  screenshot: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    args = [*CHROME_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(f"{url}?backend=wasm&threads={THREADS}")
        wait_until(page, "window.rvmkitTest !== undefined")
        page.evaluate("window.rvmkitTest.ready")
        status = page.evaluate("window.rvmkitTest.status()")
        hook = page.evaluate(HOOK, [[f"frames/{i}.png" for i in range(count)], RATIO])
        run_ms = np.array(hook["runMs"][WARMUP:])
        page.click("#start-camera")
        wait_until(page, f"window.rvmkitTest.status().frames >= {WARMUP}")
        first, started = page.evaluate("window.rvmkitTest.status().frames"), time.monotonic()
        time.sleep(live_seconds)
        last, ended = page.evaluate("window.rvmkitTest.status()"), time.monotonic()
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        version = browser.version
        browser.close()
    return {"chromium": version, "backend": status["backend"], "threads": status["threads"],
            "isolated": status["isolated"], "onnxruntime_web": status["ortVersion"],
            "hook_run_ms_median": round(float(np.median(run_ms)), 2),
            "hook_run_ms_mean": round(float(run_ms.mean()), 2),
            "hook_wall_ms_per_frame": round(hook["wallMs"] / count, 2),
            "live_frames": last["frames"] - first, "live_seconds": round(ended - started, 2),
            "live_fps": round((last["frames"] - first) / (ended - started), 2),
            "live_fps_page": round(last["fps"], 2)}


def write_report(result: dict, json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    web, py, m = result["browser"], result["python"], result["machine"]
    plain, fast = py["python_ort_plain"], py["python_ort_fast_path"]
    rows = [
        ("Chromium, onnxruntime-web WASM (2 threads), session.run", web["hook_run_ms_median"],
         1000 / web["hook_run_ms_median"]),
        ("Chromium, test hook per frame (decode + run + 8-bit out)", web["hook_wall_ms_per_frame"],
         1000 / web["hook_wall_ms_per_frame"]),
        ("Chromium, live page on the fake camera (newest frame only)", 1000 / max(web["live_fps"], 1e-9),
         web["live_fps"]),
        ("Python ONNX Runtime, plain session (2 threads)", plain["median_ms"], 1000 / plain["median_ms"]),
        ("Python ONNX Runtime, rvmkit fast path (2 threads)", fast["median_ms"], 1000 / fast["median_ms"]),
    ]
    table = "\n".join(f"| {name} | {ms:.1f} ms | {fps:.2f} |" for name, ms, fps in rows)
    md_path.write_text(f"""# Browser vs Python, 640x480 at ratio 0.5 (`benchmarks/web.py`)

Machine: {m['cpu']}, {m['cores']} vCPUs; onnxruntime {m['onnxruntime']} (Python),
onnxruntime-web {web['onnxruntime_web']} in Chromium {web['chromium']} (headless, --disable-gpu,
cross-origin isolated: {web['isolated']}, backend {web['backend']}, {web['threads']} threads).
Frames: the first {result['frames']} frames of book.mkv; medians after {WARMUP} warm-up frames.
1-min load average {result['load_before']} before, {result['load_after']} after: **the machine is shared
with other agents, so these numbers are noisy** (one run; compare the rows, not the absolute values).

| what | per frame | fps |
| --- | --- | --- |
{table}

The live fps counts frames matted while the fake camera plays at 30 fps; the page skips the frames
that arrive while the model runs, and its time also covers drawing and compositing on the main thread.
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--json", type=Path, default=HERE / "web.json")
    parser.add_argument("--md", type=Path, default=HERE / "web.md")
    args = parser.parse_args()

    from PIL import Image

    from rvmkit import bench, web
    from rvmkit.web.server import serve_in_thread, url_of

    frames = bench.load_frames(DATA / "book.mkv", WIDTH, HEIGHT, args.frames)
    result = {"frames": args.frames, "width": WIDTH, "height": HEIGHT, "ratio": RATIO,
              "machine": bench.machine(), "load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="rvmkit-web-bench-") as tmp:
        site = web.write_site(Path(tmp) / "site", ratios=(RATIO,))
        (site / "frames").mkdir()
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(site / "frames" / f"{index}.png")
        result["python"] = python_times(site / "models" / web.model_file_name("mobilenetv3", RATIO), frames)
        server = serve_in_thread(site)
        try:
            camera = bench.write_y4m(Path(tmp) / "clip.y4m", frames)
            result["browser"] = browser_times(args.chromium, url_of(server), args.frames, camera,
                                              args.live_seconds, args.screenshot)
        finally:
            server.shutdown()
            server.server_close()
    result["load_after"] = loadavg()
    write_report(result, args.json, args.md)
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
