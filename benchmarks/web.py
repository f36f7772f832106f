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
  (c) levers (--levers, issue 22): each onnxruntime-web variant in its own bare page (`lever.html`, the
      site's WASM files, float frames): session options (memory arena and pattern, freeDimensionOverrides,
      graph optimisation level), a model per size (shapes fixed, simplified) with and without the CPU fast
      path's rewrites (concat convolutions split, even crops skipped), 1 thread, ORT's proxy worker or not,
      and a second identical page as the noise control; frame by frame, every variant's session.run and
      then native ORT's, in turn, --passes times. CPU time is summed around each run (Chromium's
      processes, the native process);
  (d) --profile: ORT's profiler on both sides (WASM prints its JSON to the console when the session runs
      on the page's thread), kernel ms per run summed by op kind (convolutions by kind).
Warm-up frames are dropped everywhere. The screenshot is the live page over a colour.

    .venv/bin/python benchmarks/web.py --frames 20 --passes 3 --profile   # issue 22's run
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
            "live_fps_page": round(last["fps"], 2),
            "live_stage_ms": {name: round(ms, 2) for name, ms in last["stageMs"].items()}}


# ---- levers: onnxruntime-web session options, models and threads, frame by frame beside native ----

#: a bare page (benchmark only, written into the temporary site) that runs one session on float frames
LEVER_HTML = '<!doctype html><meta charset="utf-8"><script type="module" src="lever.js"></script>\n'
LEVER_JS = """import * as ort from './ort/ort.min.mjs';
const params = new URLSearchParams(location.search);
ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
ort.env.wasm.numThreads = Number(params.get('threads'));
ort.env.wasm.proxy = params.get('proxy') === '1';
const NAMES = ['r1', 'r2', 'r3', 'r4'];
const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
const S = {};
window.create = async (model, options, count, shapes, height, width) => {
  const file = await bytes(model);
  S.session = await ort.InferenceSession.create(file, { executionProviders: ['wasm'], ...options });
  S.frames = [];
  for (let i = 0; i < count; i += 1) {
    S.frames.push(new Float32Array((await bytes(`frames/${i}.f32`)).buffer));
  }
  Object.assign(S, { shapes, height, width, state: null });
  return { isolated: self.crossOriginIsolated, threads: ort.env.wasm.numThreads };
};
window.step = async (index) => {  // one frame, state carried; returns session.run() ms
  const zeros = (shape) => new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b)), shape);
  S.state ??= S.shapes.map(zeros);
  const feeds = { src: new ort.Tensor('float32', S.frames[index].slice(), [1, 3, S.height, S.width]) };
  NAMES.forEach((name, i) => { feeds[`${name}i`] = S.state[i]; });
  const started = performance.now();
  const out = await S.session.run(feeds);
  const ms = performance.now() - started;
  S.state = NAMES.map((name) => out[`${name}o`]);
  return ms;
};
window.endProfiling = () => S.session.endProfiling();
window.leverReady = true;
"""
PAGE_OPTIONS = {"graphOptimizationLevel": "all"}
#: name -> (model: "site" | "fixed" | "fixed+rewrites", session options, threads, proxy)
LEVERS = {
    "page": ("site", PAGE_OPTIONS, THREADS, True),
    "page again (noise control: a second identical page)": ("site", PAGE_OPTIONS, THREADS, True),
    "no proxy worker": ("site", PAGE_OPTIONS, THREADS, False),
    "arena + memory pattern": ("site", {**PAGE_OPTIONS, "enableCpuMemArena": True, "enableMemPattern": True},
                               THREADS, True),
    "freeDimensionOverrides": ("site", {**PAGE_OPTIONS, "freeDimensionOverrides": "fixed"}, THREADS, True),
    "model per size": ("fixed", PAGE_OPTIONS, THREADS, True),
    "model per size + fast-path rewrites": ("fixed+rewrites", PAGE_OPTIONS, THREADS, True),
    "level basic": ("site", {"graphOptimizationLevel": "basic"}, THREADS, True),
    "level disabled": ("site", {"graphOptimizationLevel": "disabled"}, THREADS, True),
    "1 thread": ("site", PAGE_OPTIONS, 1, True),
}
#: --profile: the page's session with ORT's profiler (on the page's thread: its profile goes to the console)
PROFILED = "page options, profiled, no proxy worker"
DEFAULT_LEVERS = ("page", "page again (noise control: a second identical page)", "arena + memory pattern",
                  "freeDimensionOverrides", "model per size", "model per size + fast-path rewrites",
                  "level disabled", "no proxy worker", "1 thread")


def renderer_cpu_ms() -> float:
    """CPU time (user + system) of every Chromium process so far, in ms."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, tail = stat.read_text().rpartition(")")
        except OSError:
            continue
        if "chrom" in head:
            fields = tail.split()
            total += int(fields[11]) + int(fields[12])
    return total * 1000.0 / os.sysconf("SC_CLK_TCK")


def lever_models(site: Path, model: Path, shapes: dict[str, list[int]]) -> dict[str, str]:
    """The site's model, and per-size variants: shapes fixed and simplified (a model per size), and that
    with the CPU fast path's graph rewrites (concat convolutions split, even crops skipped)."""
    import onnx
    import onnxsim

    from rvmkit.graph.blocked import skip_even_crops
    from rvmkit.graph.lowres import _split_concat_convs

    fixed, ok = onnxsim.simplify(onnx.load(str(model)), overwrite_input_shapes=shapes)
    assert ok, "onnxsim could not check the fixed-shape model"
    onnx.save(fixed, str(site / "models" / "fixed.onnx"))
    rewritten = onnx.shape_inference.infer_shapes(fixed)
    counts = (_split_concat_convs(rewritten), skip_even_crops(rewritten))
    onnx.save(rewritten, str(site / "models" / "fixed_rewrites.onnx"))
    print(f"fast-path rewrites on the fixed model: {counts[0]} concat convolutions split, {counts[1]} crops",
          file=sys.stderr)
    return {"site": f"models/{model.name}", "fixed": "models/fixed.onnx",
            "fixed+rewrites": "models/fixed_rewrites.onnx"}


class NativeStepper:
    """ONNX Runtime's plain session on the site's model, state carried frame to frame."""

    def __init__(self, model: Path, inputs: list[np.ndarray], profile: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        if profile is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile)
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.inputs, self.state = inputs, [np.zeros((1, 1, 1, 1), np.float32)] * 4

    def step(self, index: int) -> float:
        feeds = {"src": self.inputs[index], **dict(zip(("r1i", "r2i", "r3i", "r4i"), self.state))}
        started = time.perf_counter()
        out = self.session.run(None, feeds)
        self.state = out[2:]
        return (time.perf_counter() - started) * 1000.0


def lever_times(chromium: str, url: str, site: Path, model: Path, frames: list[np.ndarray],
                names: list[str], passes: int, profile: bool) -> dict:
    """Each lever in its own page; frame by frame: every lever's session.run, then native's, in turn,
    `passes` times over the frames (state carried). Chromium's CPU time is summed around each run."""
    from playwright.sync_api import sync_playwright

    inputs = [(frame.astype(np.float32) / 255).transpose(2, 0, 1)[None].copy() for frame in frames]
    (site / "frames").mkdir(exist_ok=True)
    for index, planar in enumerate(inputs):
        planar.tofile(site / "frames" / f"{index}.f32")
    (site / "lever.html").write_text(LEVER_HTML)
    (site / "lever.js").write_text(LEVER_JS)
    native = NativeStepper(model, inputs)
    natives = {"native": native}
    if profile:
        names = [*names, PROFILED]
        natives["native, profiled"] = NativeStepper(model, inputs, profile=site / "native_profile")
    out = native.session.run(None, {"src": inputs[0], **{n: np.zeros((1, 1, 1, 1), np.float32)
                                                         for n in ("r1i", "r2i", "r3i", "r4i")}})
    states = [list(array.shape) for array in out[2:]]
    files = lever_models(site, model, {"src": [1, 3, HEIGHT, WIDTH], **dict(zip(("r1i", "r2i", "r3i", "r4i"),
                                                                                  states))})
    fixed_dims = fixed_dimensions(model, states)
    wall: dict[str, list[float]] = {name: [] for name in [*names, *natives]}
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    loads: list[float] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROME_ARGS)
        pages = {}
        for name in names:
            kind, options, threads, proxy = LEVERS.get(name, LEVERS["page"])
            if name == PROFILED:
                kind, options = "site", {**PAGE_OPTIONS, "enableProfiling": True}
                threads, proxy = THREADS, False
            if options.get("freeDimensionOverrides") == "fixed":
                options = {**options, "freeDimensionOverrides": fixed_dims}
            fixed = kind != "site" or "freeDimensionOverrides" in options
            page = browser.new_page()
            page.goto(f"{url}lever.html?threads={threads}&proxy={int(proxy)}")
            wait_until(page, "window.leverReady === true")
            page.evaluate("([m, o, n, s, h, w]) => window.create(m, o, n, s, h, w)",
                          [files[kind], options, len(frames), states if fixed else [[1, 1, 1, 1]] * 4,
                           HEIGHT, WIDTH])
            pages[name] = page
        for pass_index in range(passes):
            for index in range(len(frames)):
                loads.append(loadavg())
                keep = pass_index > 0 or index >= WARMUP
                for name, page in pages.items():
                    before = renderer_cpu_ms()
                    ms = page.evaluate("(i) => window.step(i)", index)
                    if keep:
                        wall[name].append(ms)
                        cpu[name].append(renderer_cpu_ms() - before)
                for name, stepper in natives.items():
                    before = time.process_time()
                    ms = stepper.step(index)
                    if keep:
                        wall[name].append(ms)
                        cpu[name].append((time.process_time() - before) * 1000.0)
        logs: list[str] = []
        if profile:
            pages[PROFILED].on("console", lambda message: logs.append(message.text))
            pages[PROFILED].evaluate("() => window.endProfiling()")
            time.sleep(1.0)
        version = browser.version
        browser.close()
    result = {"chromium": version, "passes": passes, "frames": len(frames), "load": [min(loads), max(loads)],
              "levers": summarize_levers(wall, cpu, names)}
    if profile:
        native_file = Path(natives["native, profiled"].session.end_profiling())
        result["profile"] = op_table("\n".join(logs), native_file, skip=WARMUP)
    return result


def fixed_dimensions(model: Path, states: list[list[int]]) -> dict[str, int]:
    """freeDimensionOverrides for the site's model at WIDTH x HEIGHT: each symbolic input dimension."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    shapes = {"src": [1, 3, HEIGHT, WIDTH], **dict(zip(("r1i", "r2i", "r3i", "r4i"), states))}
    dims = {}
    for value in graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
            if dim.dim_param:
                dims[dim.dim_param] = size
    return dims


def summarize_levers(wall: dict[str, list[float]], cpu: dict[str, list[float]], names: list[str]) -> dict:
    """Per lever: median session.run ms, median of its per-frame ratio to native's run beside it and to
    the page's, and mean CPU ms a frame."""
    native = np.array(wall["native"])
    page = np.array(wall[names[0]])
    rows = {}
    for name, values in wall.items():
        ms = np.array(values)
        rows[name] = {"run_ms_median": round(float(np.median(ms)), 1),
                      "vs_native": round(float(np.median(ms / native)), 3),
                      "vs_first": round(float(np.median(ms / page)), 3),
                      "cpu_ms_mean": round(float(np.mean(cpu[name])), 1),
                      "cpu_vs_native": round(float(np.mean(cpu[name]) / np.mean(cpu["native"])), 3),
                      "frames": int(ms.size)}
    return rows


def profile_events(text: str) -> list[dict]:
    """ONNX Runtime's profile (a JSON array; WASM prints it to the console)."""
    body = text[text.index("["): text.rindex("]") + 1]
    return json.loads(body)


def op_kind(event: dict) -> str:
    """Conv split by kind (depthwise, 1x1, full kxk), other ops by type; NCHWc reorders together."""
    args = event["args"]
    op = args["op_name"]
    if op.startswith("Reorder"):
        return "NCHWc layout reorders (native only)"
    if op not in ("Conv", "FusedConv"):
        return op
    x, w = (shape["float"] for shape in args["input_type_shape"][:2])
    if w[1] == 1 and x[1] > 1:
        return f"Conv depthwise {w[2]}x{w[3]}"
    return f"Conv {w[2]}x{w[3]}"


def per_op_ms(events: list[dict], skip: int) -> tuple[float, dict[str, float]]:
    """Median model_run ms after `skip` runs, and the median per run of each op kind's kernel ms."""
    runs = [event for event in events if event.get("name") == "model_run"][skip:]
    nodes = [event for event in events
             if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")]
    per_kind: dict[str, list[float]] = {}
    for number, run in enumerate(runs):
        sums: dict[str, float] = {}
        for node in nodes:
            if run["ts"] <= node["ts"] <= run["ts"] + run["dur"]:
                kind = op_kind(node)
                sums[kind] = sums.get(kind, 0.0) + node["dur"] / 1000.0
        for kind, ms in sums.items():
            per_kind.setdefault(kind, [0.0] * len(runs))[number] = ms
    total = float(np.median([run["dur"] for run in runs])) / 1000.0
    return total, {kind: float(np.median(values)) for kind, values in per_kind.items()}


def op_table(wasm_text: str, native_file: Path, skip: int) -> dict:
    wasm_total, wasm = per_op_ms(profile_events(wasm_text), skip)
    native_total, native = per_op_ms(json.loads(native_file.read_text()), skip)
    kinds = sorted(set(wasm) | set(native), key=lambda kind: -wasm.get(kind, 0.0))
    return {"wasm_run_ms": round(wasm_total, 1), "native_run_ms": round(native_total, 1),
            "ops": {kind: {"wasm_ms": round(wasm.get(kind, 0.0), 2),
                           "native_ms": round(native.get(kind, 0.0), 2)} for kind in kinds}}


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
{stage_section(web)}{lever_section(result.get("levers"))}""")


def stage_section(web: dict) -> str:
    stages = web.get("live_stage_ms")
    if not stages:
        return ""
    total = sum(stages.values())
    rows = "\n".join(f"| {STAGES[name]} | {ms:.1f} ms | {100 * ms / total:.0f}% |"
                     for name, ms in stages.items())
    return f"""
## Where the live page's frame goes (`status().stageMs`, means over the live frames)

| stage | per frame | share |
| --- | --- | --- |
{rows}
"""


STAGES = {"readMs": "read the frame (drawImage + getImageData)", "packMs": "pack RGBA -> float CHW",
          "runMs": "session.run (ORT's proxy worker)", "drawMs": "composite + putImageData"}


def lever_section(levers: dict | None) -> str:
    if not levers:
        return ""
    rows = "\n".join(
        f"| {name} | {row['run_ms_median']:.1f} | {row['vs_first']:.3f} | {row['vs_native']:.2f}x | "
        f"{row['cpu_ms_mean']:.0f} | {row['cpu_vs_native']:.2f}x |" for name, row in levers["levers"].items())
    text = f"""
## Levers, frame by frame beside native (`--levers`, `--passes {levers['passes']}`)

Each lever in its own page (`lever.html`: a bare session on float frames, the page's WASM files),
2 threads unless named; per frame, every lever's `session.run` and then native ORT's, in turn,
{levers['passes']} passes over the {levers['frames']} frames (state carried), the first pass's first {WARMUP}
frames dropped. Ratios are medians of per-frame ratios to the first row and to native's run beside
it; CPU ms: Chromium's (all processes) or native's CPU time around each run. 1-min load during the
run: {levers['load'][0]}-{levers['load'][1]}. Chromium {levers['chromium']}.

| lever | run ms (median) | vs first row | vs native | CPU ms a frame | CPU vs native |
| --- | --- | --- | --- | --- | --- |
{rows}
"""
    if "profile" in levers:
        prof = levers["profile"]
        ops = "\n".join(
            f"| {kind} | {row['wasm_ms']:.2f} | {row['native_ms']:.2f} | "
            f"{(row['wasm_ms'] / row['native_ms']) if row['native_ms'] else float('nan'):.2f}x |"
            for kind, row in prof["ops"].items())
        text += f"""
## Per op: ORT's profilers, WASM (`enableProfiling`, page's thread) vs native (`--profile`)

Kernel ms per run (median over runs), summed by kind; runs: WASM {prof['wasm_run_ms']} ms, native
{prof['native_run_ms']} ms (profiling on). Native ORT runs most convolutions in its blocked NCHWc layout
(the reorders are its own ops); onnxruntime-web has no NCHWc kernels, and its convolutions are MLAS's
im2col + 4-wide WASM SIMD SGEMM.

| op kind | WASM ms | native ms | ratio |
| --- | --- | --- | --- |
{ops}
"""
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--levers", default=",".join(DEFAULT_LEVERS),
                        help=f"comma-separated, first = the reference ('' for none); of: {', '.join(LEVERS)}")
    parser.add_argument("--passes", type=int, default=3, help="lever rounds over the frames")
    parser.add_argument("--profile", action="store_true", help="per-op table, WASM vs native ORT's profilers")
    parser.add_argument("--json", type=Path, default=HERE / "web.json")
    parser.add_argument("--md", type=Path, default=HERE / "web.md")
    args = parser.parse_args()
    names = [name for name in args.levers.split(",") if name]
    unknown = [name for name in names if name not in LEVERS]
    if unknown:
        parser.error(f"--levers: unknown {unknown[0]!r}; known: {', '.join(LEVERS)}")

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
        model = site / "models" / web.model_file_name("mobilenetv3", RATIO)
        result["python"] = python_times(model, frames)
        server = serve_in_thread(site)
        try:
            camera = bench.write_y4m(Path(tmp) / "clip.y4m", frames)
            result["browser"] = browser_times(args.chromium, url_of(server), args.frames, camera,
                                              args.live_seconds, args.screenshot)
            if names or args.profile:
                result["levers"] = lever_times(args.chromium, url_of(server), site, model, frames,
                                               names or ["page"], args.passes, args.profile)
        finally:
            server.shutdown()
            server.server_close()
    result["load_after"] = loadavg()
    write_report(result, args.json, args.md)
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
