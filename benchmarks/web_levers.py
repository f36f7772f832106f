"""Where the browser page's WASM time goes: levers measured against native ONNX Runtime, in rounds.

    PYTHONPATH=src .venv/bin/python benchmarks/web_levers.py     # writes benchmarks/web_levers.json + .md

One site is exported at ratio 0.5 (`write_site`), the first --frames frames of book.mkv (640x480)
are written into it as raw float32 planar tensors (so no canvas or PNG decode is timed), plus a
bench page (bench.html, written here, not part of the site rvmkit ships) that imports the site's own
onnxruntime-web and times `session.run` for a given model file and session options, state carried.
Each round runs every browser variant and every native variant over the same frames, one after the
other (never concurrently, so a shared machine's load hits all alike); the report gives per-variant
medians over the rounds' frames (warm-up frames dropped) and the 1-min load before/after each round.

Variants: the page's model and options (in ORT's proxy worker as the page runs it, and on the page's
thread) (graphOptimizationLevel 'all'), other optimisation levels,
freeDimensionOverrides fixing src to the frame's size, and the low-resolution graph of the CPU fast
path (`rvmkit.graph.lowres`: the network only, the refiner's full-size tail outside ORT) with and
without the blocked rewrites or split convolutions; the tail's cost in JS is timed on the bench page
too (its own straightforward copy of the math: bilinear upsample of A, b and fgr/pha; the shipped page's
row-separable `lowResHead` + `lowResTail` are timed by benchmarks/web.py as the hook's `jsMs`). Native:
ONNX Runtime with --threads threads on the same files (level all; the low-res graph with the blocked
rewrites, as the CPU fast path runs it; level extended: without the NCHWc layout, which WASM lacks).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from web import renderer_cpu_s  # benchmarks/web.py

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
WIDTH, HEIGHT, RATIO = 640, 480, 0.5
THREADS = 2  # --threads
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATES = ["r1", "r2", "r3", "r4"]

BENCH_HTML = """<!doctype html><meta charset="utf-8"><title>bench</title>
<script type="module" src="bench.js"></script>"""

BENCH_JS = r"""
const ort = await import('./ort/ort.min.mjs');
const params = new URLSearchParams(location.search);
ort.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
ort.env.wasm.numThreads = Number(params.get('threads') || 2);
ort.env.wasm.proxy = params.get('proxy') === '1';
const sessions = new Map();
const tensors = new Map();
async function floats(url) {
  if (!tensors.has(url)) tensors.set(url, new Float32Array(await (await fetch(url)).arrayBuffer()));
  return tensors.get(url);
}
async function sessionFor(key, model, options) {
  if (!sessions.has(key)) {
    const bytes = new Uint8Array(await (await fetch(model)).arrayBuffer());
    sessions.set(key, await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], ...options }));
  }
  return sessions.get(key);
}
// the refiner's tail outside ORT: A, b [1,4,h,w] upsampled bilinearly (half-pixel) to H x W, then
// fgr = clamp(A*x + b + x), pha = clamp(A3*mean(x) + b3): what rvmkit.runtime.kernels does natively
function tail(a, b, h, w, src, H, W) {
  const fgr = new Float32Array(3 * H * W), pha = new Float32Array(H * W), n = H * W, m = h * w;
  const sy = h / H, sx = w / W;
  for (let y = 0; y < H; y += 1) {
    let fy = (y + 0.5) * sy - 0.5; if (fy < 0) fy = 0;
    const y0 = Math.min(h - 1, Math.floor(fy)), y1 = Math.min(h - 1, y0 + 1), wy = fy - y0;
    for (let x = 0; x < W; x += 1) {
      let fx = (x + 0.5) * sx - 0.5; if (fx < 0) fx = 0;
      const x0 = Math.min(w - 1, Math.floor(fx)), x1 = Math.min(w - 1, x0 + 1), wx = fx - x0;
      const i00 = y0 * w + x0, i01 = y0 * w + x1, i10 = y1 * w + x0, i11 = y1 * w + x1;
      const w00 = (1 - wy) * (1 - wx), w01 = (1 - wy) * wx, w10 = wy * (1 - wx), w11 = wy * wx;
      const p = y * W + x;
      let mean = 0;
      for (let c = 0; c < 4; c += 1) {
        const o = c * m;
        const av = a[o + i00] * w00 + a[o + i01] * w01 + a[o + i10] * w10 + a[o + i11] * w11;
        const bv = b[o + i00] * w00 + b[o + i01] * w01 + b[o + i10] * w10 + b[o + i11] * w11;
        if (c < 3) {
          const s = src[c * n + p]; mean += s;
          fgr[c * n + p] = Math.min(1, Math.max(0, av * s + bv + s));
        } else {
          pha[p] = Math.min(1, Math.max(0, av * (mean / 3) + bv));
        }
      }
    }
  }
  return [fgr, pha];
}
function toPlanar(rgba, count) {
  const planar = new Float32Array(3 * count);
  for (let i = 0, j = 0; i < count; i += 1, j += 4) {
    planar[i] = rgba[j] / 255;
    planar[count + i] = rgba[j + 1] / 255;
    planar[2 * count + i] = rgba[j + 2] / 255;
  }
  return planar;
}
window.bench = {
  // -> per-frame ms of session.run (state carried from frame to frame, zeros at the start), and of the
  // JS tail where `tailOf` names the full-size frames
  async run(key, model, options, input, urls, dims, tailOf) {
    const session = await sessionFor(key, model, options);
    let state = STATES.map(() => new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]));
    const runMs = [], tailMs = [];
    for (let f = 0; f < urls.length; f += 1) {
      const feeds = { [input]: new ort.Tensor('float32', (await floats(urls[f])).slice(), [1, 3, ...dims]) };
      STATES.forEach((name, i) => { feeds[`${name}i`] = state[i]; });
      const started = performance.now();
      const out = await session.run(feeds);
      runMs.push(performance.now() - started);
      state = STATES.map((name) => out[`${name}o`]);
      if (tailOf) {
        const full = await floats(tailOf[f]);
        const t0 = performance.now();
        tail(out.coef_a.data, out.coef_b.data, dims[0], dims[1], full, tailOf.H, tailOf.W);
        tailMs.push(performance.now() - t0);
      }
    }
    return { runMs, tailMs };
  },
  // the page's own per-frame packing: RGBA bytes -> planar float (canvas read excluded)
  pack(width, height, times) {
    const rgba = new Uint8ClampedArray(4 * width * height).map((_, i) => i % 251);
    const ms = [];
    for (let t = 0; t < times; t += 1) {
      const s = performance.now();
      toPlanar(rgba, width * height);
      ms.push(performance.now() - s);
    }
    return ms;
  },
};
const STATES = ['r1', 'r2', 'r3', 'r4'];
window.benchReady = true;
"""


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu() -> dict:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "").strip(), "cores": int(fields.get("CPU(s)", "0")),
            "simd_flags": [f for f in flags if f.startswith(("avx", "amx", "sse4", "fma"))],
            "platform": platform.platform()}


def write_models(site: Path, model: Path) -> dict[str, str]:
    import onnx

    from rvmkit.graph.lowres import low_res_model

    source = onnx.load(str(model))
    files = {"full": f"models/{model.name}"}
    for name, split, blocked in (("lowres", True, False), ("lowres_blocked", True, True),
                                 ("lowres_own_convs", False, False)):
        path = site / "models" / f"{name}.onnx"
        onnx.save(low_res_model(source, split_convs=split, blocked=blocked), str(path))
        files[name] = f"models/{name}.onnx"
    return files


def write_frames(site: Path, frames: list[np.ndarray]) -> tuple[list[str], list[str]]:
    from PIL import Image

    (site / "frames").mkdir()
    full, small = [], []
    for i, frame in enumerate(frames):
        planar = np.ascontiguousarray(frame.transpose(2, 0, 1), np.float32) / 255
        planar.tofile(site / "frames" / f"{i}.f32")
        low = np.asarray(Image.fromarray(frame).resize((int(WIDTH * RATIO), int(HEIGHT * RATIO)),
                                                       Image.BILINEAR))
        (np.ascontiguousarray(low.transpose(2, 0, 1), np.float32) / 255).tofile(site / "frames" / f"{i}s.f32")
        full.append(f"frames/{i}.f32")
        small.append(f"frames/{i}s.f32")
    return full, small


def native_runner(path: Path, level: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(tensors: list[np.ndarray]) -> list[float]:
        state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        outputs = [o.name for o in session.get_outputs()]
        times = []
        for tensor in tensors:
            feeds = {input_name: tensor, **{f"{s}i": v for s, v in zip(STATES, state)}}
            started = time.perf_counter()
            out = dict(zip(outputs, session.run(None, feeds)))
            times.append((time.perf_counter() - started) * 1000)
            state = [out[f"{s}o"] for s in STATES]
        return times
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path, default=HERE / "web_levers.json")
    parser.add_argument("--md", type=Path, default=HERE / "web_levers.md")
    parser.add_argument("--threads", type=int, default=2, choices=range(1, 65), metavar="N")
    parser.add_argument("--only", default="", help="comma-separated words: run the variants naming one")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads

    from playwright.sync_api import sync_playwright

    from rvmkit import bench, web
    from rvmkit.web.server import serve_in_thread, url_of

    frames = bench.load_frames(DATA / "book.mkv", WIDTH, HEIGHT, args.frames)
    h, w = int(HEIGHT * RATIO), int(WIDTH * RATIO)
    result: dict = {"frames": args.frames, "warmup": args.warmup, "rounds": args.rounds,
                    "size": f"{WIDTH}x{HEIGHT}", "ratio": RATIO, "threads": THREADS, "machine": cpu(),
                    "loads": [], "samples": {}, "cpu_ms": {}}
    with tempfile.TemporaryDirectory(prefix="rvmkit-web-levers-") as tmp:
        site = web.write_site(Path(tmp) / "site", ratios=(RATIO,))
        (site / "bench.html").write_text(BENCH_HTML)
        (site / "bench.js").write_text(BENCH_JS)
        files = write_models(site, site / "models" / web.model_file_name("mobilenetv3", RATIO))
        full_urls, small_urls = write_frames(site, frames)
        full_np = [np.fromfile(site / u, np.float32).reshape(1, 3, HEIGHT, WIDTH) for u in full_urls]
        small_np = [np.fromfile(site / u, np.float32).reshape(1, 3, h, w) for u in small_urls]
        fixed = {"batch_size0": 1, "height0": HEIGHT, "width0": WIDTH}
        browser_variants = {
            "wasm full, level all, in ORT's proxy worker (the page as shipped)": (
                "full", {"graphOptimizationLevel": "all"}),
            "wasm full, level all": ("full", {"graphOptimizationLevel": "all"}),
            "wasm full, level all + freeDimensionOverrides": (
                "full", {"graphOptimizationLevel": "all", "freeDimensionOverrides": fixed}),
            "wasm full, level basic + freeDimensionOverrides": (
                "full", {"graphOptimizationLevel": "basic", "freeDimensionOverrides": fixed}),
            "wasm full, level extended": ("full", {"graphOptimizationLevel": "extended"}),
            "wasm full, level basic": ("full", {"graphOptimizationLevel": "basic"}),
            "wasm full, level disabled": ("full", {"graphOptimizationLevel": "disabled"}),
            "wasm low-res graph, split concat convs, level all (+ JS tail)": (
                "lowres", {"graphOptimizationLevel": "all"}),
            "wasm low-res graph, the model's own convs, level all (+ JS tail; the page's)": (
                "lowres_own_convs", {"graphOptimizationLevel": "all"}),
            "wasm low-res graph, the model's own convs, level all, in ORT's proxy worker (+ JS tail)": (
                "lowres_own_convs", {"graphOptimizationLevel": "all"}),
            "wasm low-res graph, split concat convs, level basic (+ JS tail)": (
                "lowres", {"graphOptimizationLevel": "basic"}),
            "wasm low-res graph, blocked rewrites, level basic (+ JS tail)": (
                "lowres_blocked", {"graphOptimizationLevel": "basic"}),
        }
        native_variants = {
            "native full, level all": native_runner(site / files["full"], "all"),
            "native full, level extended (no NCHWc)": native_runner(site / files["full"], "extended"),
            "native low-res graph, blocked rewrites": native_runner(site / files["lowres_blocked"], "all"),
        }
        if args.only:
            words = args.only.split(",")
            keep = lambda name: name.startswith("native full, level all") or any(w in name for w in words)  # noqa: E731
            browser_variants = {k: v for k, v in browser_variants.items() if keep(k)}
            native_variants = {k: v for k, v in native_variants.items() if keep(k)}
        server = serve_in_thread(site)
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium, args=CHROME_ARGS)
                pages = {}
                for proxy in (0, 1):
                    pages[proxy] = browser.new_page()
                    pages[proxy].goto(f"{url_of(server)}bench.html?threads={THREADS}&proxy={proxy}")
                    pages[proxy].wait_for_function("window.benchReady === true", timeout=120_000)
                page = pages[0]
                result["chromium"] = browser.version
                pack = page.evaluate("window.bench.pack(640, 480, 20)")
                result["pack_ms_640x480"] = float(np.median(pack[5:]))
                samples = result["samples"]
                for round_index in range(args.rounds):
                    load = loadavg()
                    for name, (model, options) in browser_variants.items():
                        low = model.startswith("lowres")
                        tail_of = None
                        args_js = [name, files[model], options, "src_sm" if low else "src",
                                   small_urls if low else full_urls, [h, w] if low else [HEIGHT, WIDTH]]
                        cpu0 = renderer_cpu_s()
                        out = pages[int("proxy" in name)].evaluate("""([k, m, o, i, u, d, t]) => {
                            const tailOf = t ? Object.assign([...t], {H: 480, W: 640}) : null;
                            return window.bench.run(k, m, o, i, u, d, tailOf); }""",
                                            [*args_js, full_urls if low else tail_of])
                        samples.setdefault(name, []).extend(out["runMs"][args.warmup:])
                        cpu_ms = (renderer_cpu_s() - cpu0) * 1000 / len(out["runMs"])
                        result["cpu_ms"].setdefault(name, []).append(cpu_ms - (
                            np.mean(out["tailMs"]) if out["tailMs"] else 0))
                        if out["tailMs"]:
                            samples.setdefault(name + ": JS tail", []).extend(out["tailMs"][args.warmup:])
                        print(f"round {round_index}: {name}: {np.median(out['runMs'][args.warmup:]):.1f} ms",
                              file=sys.stderr)
                    for name, run in native_variants.items():
                        tensors = small_np if "low-res" in name else full_np
                        cpu0 = time.process_time()
                        times = run(tensors)
                        result["cpu_ms"].setdefault(name, []).append(
                            (time.process_time() - cpu0) * 1000 / len(times))
                        samples.setdefault(name, []).extend(times[args.warmup:])
                        print(f"round {round_index}: {name}: {np.median(times[args.warmup:]):.1f} ms",
                              file=sys.stderr)
                    result["loads"].append({"round": round_index, "before": load, "after": loadavg()})
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    result["median_ms"] = {name: round(float(np.median(v)), 1) for name, v in result["samples"].items()}
    result["cpu_ms_median"] = {name: round(float(np.median(v)), 1) for name, v in result["cpu_ms"].items()}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    native = result["median_ms"]["native full, level all"]
    native_cpu = result["cpu_ms_median"]["native full, level all"]
    cpu_ms = result["cpu_ms_median"]
    rows = "\n".join(
        f"| {name} | {ms:.1f} | {ms / native:.2f}x | "
        + (f"{cpu_ms[name]:.0f} | {cpu_ms[name] / native_cpu:.2f}x |" if name in cpu_ms else "| |")
        for name, ms in result["median_ms"].items())
    loads = ", ".join(f"{entry['before']:.1f}->{entry['after']:.1f}" for entry in result["loads"])
    m = result["machine"]
    args.md.write_text(f"""# Browser WASM levers vs native ONNX Runtime (`benchmarks/web_levers.py`)

Machine: {m['model']}, {m['cores']} vCPUs ({' '.join(m['simd_flags'])}); Chromium {result['chromium']},
onnxruntime-web (the site's), {THREADS} threads each side. {WIDTH}x{HEIGHT} at ratio {RATIO}, the first
{args.frames} frames of book.mkv, {args.rounds} rounds (browser variants then native, in turn), medians
over every round's frames after {args.warmup} warm-up frames per round. 1-min load per round: {loads}.
The page's own packing (RGBA -> planar float, 640x480): {result['pack_ms_640x480']:.1f} ms a frame.

CPU ms: the CPU time (user + system, all threads) per frame of the browser's renderer process or of
the native process over each round (warm-up frames included, JS tail excluded), median of the rounds:
a measure of work that the machine's load changes less than wall time (spinning threads count).

| variant | session.run ms (median) | vs native full, level all | CPU ms a frame | CPU vs native |
| --- | --- | --- | --- | --- |
{rows}
""")
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
