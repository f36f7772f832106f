"""Side by side, in one run: `rvmkit matte` vs the naive loop over the official ONNX, and model-only times.

    .venv/bin/python benchmarks/compare.py            # writes benchmarks/results.json and chart.png

For each size (640x480 @ 0.5, 1280x720 @ 0.375, 1920x1080 @ 0.25) the first --frames frames of
../shared/data/book.mkv are scaled (bicubic) and encoded as high-quality H.264 (x264 crf 10, veryfast)
in a temporary folder; both pipelines read that file and write composition + alpha as H.264 at 4 Mbps:
  (a) rvmkit: `convert_video` (what `rvmkit matte` runs) with --output-video-mbps 4 (x264 preset
      veryfast, yuv420p, BT.601 limited, x264 threads auto), default fast CPU path;
  (b) naive: decode, float32 NCHW / 255, sess.run (official ONNX, default session options), numpy
      composite over green, uint8, encode both with libx264's default preset (medium) at 4 Mbps.
End to end, each pipeline runs on the --frames clip and on a --short-frames clip; the steady-state
time per frame is (T_long - T_short) / (frames - short_frames), which removes the one-time costs (model
load, encoder start/flush) that a real video amortises; the wall time per frame of the long run (all
included) is reported too. Ratios use steady-state times. Model-only: the official ONNX in
ONNX Runtime (sess.run on float input, conversion not timed) vs rvmkit's fast path (uint8 frame in,
float fgr/pha out) as `rvmkit matte` runs it (ORT thread spinning off) and with spinning on (its
fastest model-only setting, not used end to end), interleaved frame by frame; ratios use the former.
PSNR: each composition, decoded, against the lossless render (the official model's float fgr/pha
composited in float).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SIZES = ((640, 480, 0.5), (1280, 720, 0.375), (1920, 1080, 0.25))
TARGETS = {"e2e_vs_naive_1080p": 2.0, "model_vs_official_1080p": 1.3, "e2e_over_model_1080p": 1.25,
           "psnr_delta_db_min": -0.5}


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return -1.0


def measure_size(width: int, height: int, ratio: float, args: argparse.Namespace, tmp: Path) -> dict:
    from rvmkit import bench
    from rvmkit.runtime import load_backend
    from rvmkit.weights import official_onnx_path

    official = official_onnx_path()
    clip = bench.make_clip(DATA / args.clip, tmp / f"in_{width}x{height}.mp4", width, height, args.frames)
    short = bench.make_clip(DATA / args.clip, tmp / f"short_{width}x{height}.mp4", width, height,
                            args.short_frames)
    names = ("naive_c", "naive_a", "rvmkit_c", "rvmkit_a")
    out = {name: tmp / f"{name}_{width}x{height}.mp4" for name in names}
    scratch = {name: tmp / f"short_{name}_{width}x{height}.mp4" for name in names}
    runs: dict[str, list[tuple[float, float]]] = {"naive": [], "rvmkit": []}
    for rep in range(args.reps):
        order = ("naive", "rvmkit") if rep % 2 == 0 else ("rvmkit", "naive")
        for name in order:
            seconds = []
            for source, paths in ((clip, out), (short, scratch)):
                run = bench.naive_loop if name == "naive" else bench.rvmkit_e2e
                extra = (official,) if name == "naive" else ()
                _frames, wall = run(source, paths[f"{name}_c"], paths[f"{name}_a"], *extra, ratio)
                seconds.append(wall)
            wall_ms = 1000 * seconds[0] / args.frames
            steady_ms = 1000 * (seconds[0] - seconds[1]) / (args.frames - args.short_frames)
            runs[name].append((wall_ms, steady_ms))
            print(f"  {width}x{height} {name:6s} {wall_ms:7.1f} ms/frame wall, {steady_ms:7.1f} steady",
                  flush=True)
    psnr_naive, psnr_ours = bench.composition_psnr(clip, [out["naive_c"], out["rvmkit_c"]], official, ratio)
    model_frames = bench.load_frames(clip, width, height, args.model_frames + 2)
    fast = load_backend("onnxruntime", official, fast=True)
    spinning = load_backend("onnxruntime", official, fast=True, spinning=True)
    times = bench.time_interleaved({"official": bench.official_stepper(official, model_frames, ratio),
                                    "rvmkit": bench.backend_stepper(fast, model_frames, ratio),
                                    "rvmkit_spinning": bench.backend_stepper(spinning, model_frames, ratio)},
                                   len(model_frames))
    fast.close()
    spinning.close()
    model = {name: bench.summarize(name, seconds, width, height, ratio).as_dict()
             for name, seconds in times.items()}
    best = {name: min(values, key=lambda v: v[1]) for name, values in runs.items()}
    e2e_naive, e2e_ours = best["naive"][1], best["rvmkit"][1]
    official_ms, ours_ms = model["official"]["median_ms"], model["rvmkit"]["median_ms"]
    size_mb = {name: round(path.stat().st_size / 1e6, 3) for name, path in out.items()}
    return {
        "size": f"{width}x{height}", "ratio": ratio, "frames": args.frames,
        "e2e_ms": {"naive": round(e2e_naive, 2), "rvmkit": round(e2e_ours, 2),
                   "naive_wall": round(best["naive"][0], 2), "rvmkit_wall": round(best["rvmkit"][0], 2),
                   "runs": {name: [[round(a, 2), round(b, 2)] for a, b in values]
                            for name, values in runs.items()}},
        "e2e_fps": {"naive": round(1000 / e2e_naive, 2), "rvmkit": round(1000 / e2e_ours, 2)},
        "model_ms": {"official": model["official"]["median_ms"], "rvmkit": model["rvmkit"]["median_ms"],
                     "rvmkit_spinning": model["rvmkit_spinning"]["median_ms"],
                     "frames": model["rvmkit"]["frames"]},
        "ratios": {"e2e_vs_naive": round(e2e_naive / e2e_ours, 3),
                   "model_vs_official": round(official_ms / ours_ms, 3),
                   "e2e_over_model": round(e2e_ours / ours_ms, 3)},
        "psnr_db": {"naive": psnr_naive, "rvmkit": psnr_ours, "delta": round(psnr_ours - psnr_naive, 3)},
        "output_mb": size_mb,
    }


def chart(results: dict, path: Path) -> None:
    """Per-frame ms, grouped by size: naive e2e, rvmkit e2e, official model-only, rvmkit model-only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = results["sizes"]
    labels = [f"{r['size']}\n@{r['ratio']}" for r in rows]
    series = [("naive loop, end to end", [r["e2e_ms"]["naive"] for r in rows], "#bbbbbb"),
              ("rvmkit matte, end to end", [r["e2e_ms"]["rvmkit"] for r in rows], "#2b7bba"),
              ("official ONNX in ORT, model only", [r["model_ms"]["official"] for r in rows], "#e3a869"),
              ("rvmkit, model only", [r["model_ms"]["rvmkit"] for r in rows], "#6aaed6")]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    for k, (name, values, colour) in enumerate(series):
        bars = ax.bar(x + (k - 1.5) * 0.2, values, 0.2, label=name, color=colour)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(x, labels)
    ax.set_ylabel("ms per frame, steady state (lower is better)")
    machine = results["machine"]
    ax.set_title(f"RVM MobileNetV3 on {machine['cpu']}, {machine['cores']} cores "
                 f"(composition + alpha, H.264 4 Mbps)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48, help="frames per size, end to end (default 48)")
    parser.add_argument("--short-frames", type=int, default=16,
                        help="frames of the short run whose time is subtracted (default 16)")
    parser.add_argument("--model-frames", type=int, default=24, help="timed model-only frames (default 24)")
    parser.add_argument("--reps", type=int, default=2, help="end-to-end runs per pipeline, best kept")
    parser.add_argument("--clip", default="book.mkv", help="clip in ../shared/data (default book.mkv)")
    parser.add_argument("--sizes", nargs="+", help="subset, e.g. 1920x1080@0.25")
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--chart", type=Path, default=HERE / "chart.png")
    args = parser.parse_args(argv)

    from rvmkit import bench
    from rvmkit.fileio import write_atomically

    sizes = [bench.parse_size_ratio(text) for text in args.sizes] if args.sizes else SIZES
    command = "python benchmarks/compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {"machine": bench.machine(), "loadavg_start": _loadavg(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "command": command.strip(),
                     "rvmkit_encoder": "libx264 preset veryfast, 4 Mbps ABR, yuv420p, threads auto",
                     "naive_encoder": "libx264 default preset (medium), 4 Mbps ABR, yuv420p, threads auto",
                     "targets": TARGETS, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="rvmkit-compare-") as tmp:
        # warm-up: numba's compiled-kernel cache and the cached low-res model, both one-time costs
        warm = bench.make_clip(DATA / args.clip, Path(tmp) / "warm.mp4", 320, 240, 3)
        bench.rvmkit_e2e(warm, Path(tmp) / "w_c.mp4", Path(tmp) / "w_a.mp4", 0.5)
        for width, height, ratio in sizes:
            results["sizes"].append(measure_size(width, height, ratio or 0.25, args, Path(tmp)))
    results["loadavg_end"] = _loadavg()
    hd = next((r for r in results["sizes"] if r["size"] == "1920x1080"), None)
    if hd is not None:
        ratios = hd["ratios"]
        results["targets_met"] = {
            "e2e_vs_naive_1080p": ratios["e2e_vs_naive"] >= TARGETS["e2e_vs_naive_1080p"],
            "model_vs_official_1080p": ratios["model_vs_official"] >= TARGETS["model_vs_official_1080p"],
            "e2e_over_model_1080p": ratios["e2e_over_model"] <= TARGETS["e2e_over_model_1080p"],
            "psnr_delta_1080p": hd["psnr_db"]["delta"] >= TARGETS["psnr_delta_db_min"]}
    text = json.dumps(results, indent=2)
    write_atomically(args.json, lambda tmp_path: tmp_path.write_text(text + "\n"))
    try:
        chart(results, args.chart)
    except ImportError:
        print("matplotlib not installed: no chart (pip install matplotlib)", file=sys.stderr)
    rows = [{"size": r["size"], "ratio": r["ratio"], "naive ms": r["e2e_ms"]["naive"],
             "rvmkit ms": r["e2e_ms"]["rvmkit"], "e2e x": r["ratios"]["e2e_vs_naive"],
             "naive wall": r["e2e_ms"]["naive_wall"], "rvmkit wall": r["e2e_ms"]["rvmkit_wall"],
             "official model ms": r["model_ms"]["official"], "rvmkit model ms": r["model_ms"]["rvmkit"],
             "model x": r["ratios"]["model_vs_official"], "e2e/model": r["ratios"]["e2e_over_model"],
             "PSNR naive": r["psnr_db"]["naive"], "PSNR rvmkit": r["psnr_db"]["rvmkit"]}
            for r in results["sizes"]]
    print(bench.format_table(rows, list(rows[0])))
    print(f"wrote {args.json} and {args.chart}" + (f"; targets met: {results['targets_met']}"
                                                    if "targets_met" in results else ""))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
