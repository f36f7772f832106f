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
import os
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


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def renderer_cpu_s() -> float:
    """CPU seconds (user + system) of this process's Chromium renderers: the page's work, less load-bound."""
    tree, total, todo = _children(), 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def lscpu() -> dict:
    """The CPU's model name and SIMD flags (lscpu): WASM SIMD is 128-bit whatever the CPU has."""
    import subprocess

    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "?").strip(),
            "simd_flags": [flag for flag in flags if flag.startswith(("avx", "amx", "fma"))]}


def native_runner(model: Path, frames: list[np.ndarray]):
    """ONNX Runtime's session.run on the site's model file, 2 threads (rvmkit's plain session options),
    the float input made before timing, state carried from frame to frame: ms per frame."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    inputs = [np.ascontiguousarray(frame.transpose(2, 0, 1)[None], np.float32) / 255 for frame in frames]
    names = [output.name for output in session.get_outputs()]

    def run() -> list[float]:
        state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        times = []
        for src in inputs:
            started = time.perf_counter()
            feeds = {"src": src, **{f"r{i + 1}i": value for i, value in enumerate(state)}}
            out = dict(zip(names, session.run(None, feeds)))
            times.append((time.perf_counter() - started) * 1000)
            state = [out[f"r{i + 1}o"] for i in range(4)]
        return times
    return run


def fast_path_runner(model: Path, frames: list[np.ndarray]):
    """rvmkit's CPU fast path (frame to fgr/pha, 2 threads) on the same file: ms per frame."""
    from rvmkit import bench
    from rvmkit.runtime import load_backend

    step = bench.backend_stepper(load_backend("onnxruntime", model, threads=THREADS), frames, RATIO)

    def run() -> list[float]:
        seconds = bench.time_interleaved({"fast": step}, len(frames), warmup=0)["fast"]
        return [1000 * float(t) for t in seconds]
    return run


def wait_until(page, expression: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.2)


HOOK = """async ([urls, ratio]) => {
    const started = performance.now();
    const results = await window.rvmkitTest.matteUrls(urls, ratio);
    return {wallMs: performance.now() - started, runMs: results.map((r) => r.runMs),
            jsMs: results.map((r) => r.jsMs), lowRes: results.map((r) => r.lowRes)};
}"""
#: the page as shipped (WASM on the low-res graph, its ends in JS) and the page on the full model
PAGES = {"low_res": "", "full": "&lowres=0"}


def open_page(browser, url: str, query: str):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(f"{url}?backend=wasm&threads={THREADS}{query}")
    wait_until(page, "window.rvmkitTest !== undefined")
    page.evaluate("window.rvmkitTest.ready")
    return page


def measure(chromium: str, url: str, count: int, clip: Path, rounds: int, native: dict,
            live_seconds: float, screenshot: Path | None) -> dict:
    """Rounds of: each browser page over the frames, then each native runner over them; then live."""
    from playwright.sync_api import sync_playwright

    args = [*CHROME_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    samples: dict[str, list[float]] = {}
    loads = []
    urls = [f"frames/{i}.png" for i in range(count)]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=args)
        pages = {name: open_page(browser, url, query) for name, query in PAGES.items()}
        status = pages["low_res"].evaluate("window.rvmkitTest.status()")
        for index in range(rounds):
            before = loadavg()
            for name, page in pages.items():
                cpu = renderer_cpu_s()
                hook = page.evaluate(HOOK, [urls, RATIO])
                samples.setdefault(f"cpu_browser_{name}_hook", []).append(
                    (renderer_cpu_s() - cpu) * 1000 / count)
                assert all(hook["lowRes"]) == (name == "low_res"), name
                run, js = hook["runMs"][WARMUP:], hook["jsMs"][WARMUP:]
                samples.setdefault(f"browser_{name}_run", []).extend(run)
                samples.setdefault(f"browser_{name}_run_js", []).extend(r + j for r, j in zip(run, js))
                samples.setdefault(f"browser_{name}_hook_wall", []).append(hook["wallMs"] / count)
            for name, runner in native.items():
                cpu = time.process_time()
                samples.setdefault(name, []).extend(runner()[WARMUP:])
                samples.setdefault(f"cpu_{name}", []).append((time.process_time() - cpu) * 1000 / count)
            loads.append([before, loadavg()])
            print(f"round {index}: " + ", ".join(f"{k} {np.median(v):.1f}" for k, v in samples.items()),
                  file=sys.stderr)
        page = pages["low_res"]
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
            "isolated": status["isolated"], "onnxruntime_web": status["ortVersion"], "loads": loads,
            "median_ms": {name: round(float(np.median(values)), 1) for name, values in samples.items()},
            "samples_ms": {name: [round(v, 1) for v in values] for name, values in samples.items()},
            "live_frames": last["frames"] - first, "live_seconds": round(ended - started, 2),
            "live_fps": round((last["frames"] - first) / (ended - started), 2)}


def write_report(result: dict, json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    m, med = result["machine"], result["median_ms"]
    native = med["native_session_run"]
    rows = [
        ("Chromium WASM, the page as shipped: low-res graph `session.run` + its ends in JS",
         med["browser_low_res_run_js"]),
        ("  of which `session.run` (the low-res graph)", med["browser_low_res_run"]),
        ("Chromium WASM, the full model (`?lowres=0`, the page before): `session.run`",
         med["browser_full_run"]),
        ("Chromium, test hook wall per frame, as shipped (PNG decode, canvas read, packing, run, 8-bit out)",
         med["browser_low_res_hook_wall"]),
        ("Chromium, live page on the fake camera (newest frame only)", 1000 / max(result["live_fps"], 1e-9)),
        ("native ONNX Runtime, `session.run` on the full model file", native),
        ("native rvmkit CPU fast path (frame to fgr/pha)", med["native_fast_path"]),
    ]
    table = "\n".join(f"| {name} | {ms:.1f} | {ms / native:.2f}x |" for name, ms in rows)
    cpu_rows = [("Chromium renderer, the page as shipped (hook: decode, canvas read, head, run, tail, 8-bit)",
                 med["cpu_browser_low_res_hook"]),
                ("Chromium renderer, the full model (`?lowres=0`; hook: decode, canvas, pack, run, 8-bit)",
                 med["cpu_browser_full_hook"]),
                ("native ONNX Runtime, `session.run` on the full model file", med["cpu_native_session_run"]),
                ("native rvmkit CPU fast path", med["cpu_native_fast_path"])]
    cpu_native = med["cpu_native_session_run"]
    cpu_table = "\n".join(f"| {name} | {ms:.0f} | {ms / cpu_native:.2f}x |" for name, ms in cpu_rows)
    loads = ", ".join(f"{a:.1f}->{b:.1f}" for a, b in result["loads"])
    md_path.write_text(f"""# Browser vs native ONNX Runtime, 640x480 at ratio 0.5 (`benchmarks/web.py`)

Machine: {result['lscpu']['model']}, {m['cores']} vCPUs ({' '.join(result['lscpu']['simd_flags'])});
onnxruntime {m['onnxruntime']} (Python), onnxruntime-web {result['onnxruntime_web']} in Chromium
{result['chromium']} (headless, --disable-gpu, cross-origin isolated: {result['isolated']}, backend
{result['backend']}, {result['threads']} threads; native 2 threads). Frames: the first {result['frames']}
frames of book.mkv, {result['rounds']} rounds (each: both browser pages over the frames, then native),
medians over every round's frames after {WARMUP} warm-up frames per round.
1-min load average per round (before->after): {loads}. The machine is shared: compare the rows, which
ran in turn, rather than the absolute values.

| what (2 threads each) | ms per frame (median) | vs native `session.run` |
| --- | --- | --- |
{table}

CPU time per frame (user + system over all threads, of Chromium's renderer processes or of the native
process, per round, warm-up frames included; median of the rounds): the work done, which the machine's
load changes far less than the wall time (a spinning thread counts as working).

| what (2 threads each) | CPU ms per frame | vs native `session.run` |
| --- | --- | --- |
{cpu_table}

The live fps counts frames matted while the fake camera plays at 30 fps; the page skips the frames
that arrive while the model runs, and its time also covers drawing and compositing on the main thread.
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
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
    result = {"frames": args.frames, "rounds": args.rounds, "width": WIDTH, "height": HEIGHT, "ratio": RATIO,
              "machine": bench.machine(), "lscpu": lscpu(), "load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="rvmkit-web-bench-") as tmp:
        site = web.write_site(Path(tmp) / "site", ratios=(RATIO,))
        (site / "frames").mkdir()
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(site / "frames" / f"{index}.png")
        model = site / "models" / web.model_file_name("mobilenetv3", RATIO)
        native = {"native_session_run": native_runner(model, frames),
                  "native_fast_path": fast_path_runner(model, frames)}
        server = serve_in_thread(site)
        try:
            camera = bench.write_y4m(Path(tmp) / "clip.y4m", frames)
            result.update(measure(args.chromium, url_of(server), args.frames, camera, args.rounds, native,
                                  args.live_seconds, args.screenshot))
        finally:
            server.shutdown()
            server.server_close()
    result["load_after"] = loadavg()
    write_report(result, args.json, args.md)
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
