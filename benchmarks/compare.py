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

Issue 15's numbers (benchmarks/perf.py; `--sections` picks any of steady, whole, startup, floor):
  whole:   both pipelines as fresh processes (start-up included) on a --whole-frames (150) frame 1080p
           held-out clip (sister, milk, book), ratio 0.25, composition + alpha as H.264 at 4 Mbps, and
           both compositions' PSNR;
  startup: `rvmkit matte` from launch to its first frame written (warm caches), and `-X importtime`;
  floor:   rvmkit's model-only time at each size (the fast path alone, not interleaved, on held-out
           frames) against the convolutions' floor (conv FLOPs at a measured sgemm rate);
  precision: the reduced-precision table (benchmarks/precision.py: mixed int8, emulated mixed bf16,
           each against the accuracy gate, on book, sister and held-out milk) for --precision-configs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchmarks/perf.py
DATA = HERE.parent.parent / "shared" / "data"
SIZES = ((640, 480, 0.5), (1280, 720, 0.375), (1920, 1080, 0.25))
TARGETS = {"e2e_vs_naive_1080p": 2.0, "model_vs_official_1080p": 1.3, "e2e_over_model_1080p": 1.25,
           "psnr_delta_db_min": -0.5,
           # issue 15
           "whole_process_vs_naive_1080p": 3.0, "whole_psnr_delta_db_min": -0.2, "first_frame_s_max": 0.5,
           "model_over_floor_max": 1.5}
SECTIONS = ("steady", "whole", "startup", "floor", "precision")


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
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to measure (default: all)")
    parser.add_argument("--whole-frames", type=int, default=150, help="held-out clip length (default 150)")
    parser.add_argument("--whole-reps", type=int, default=2, help="whole-process runs per pipeline (best)")
    parser.add_argument("--startup-reps", type=int, default=3, help="start-up runs (best)")
    parser.add_argument("--floor-rounds", type=int, default=3, help="floor rounds per size (median ratio)")
    parser.add_argument("--floor-one-core", action="store_true",
                        help="floor on one thread in CPU time (sgemm and the model): what a shared machine's "
                             "load distorts least")
    parser.add_argument("--precision-configs", default="b7,b16",
                        help="precision.py configs for the precision section (default b7,b16)")
    parser.add_argument("--precision-frames", type=int, default=20, help="frames per clip (default 20)")
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
        # warm-up: numba's compiled-kernel cache and the cached low-res model, both one-time costs, and
        # each timed size's path choice (measured once per CPU and size: never inside a timed run)
        timed = {(width, height, ratio or 0.25) for width, height, ratio in sizes}
        for width, height, ratio in sorted({(320, 240, 0.5), (1920, 1080, 0.25), *timed}):
            warm = Path(tmp) / f"warm_{width}x{height}.mp4"
            bench.make_clip(DATA / args.clip, warm, width, height, 3)
            bench.rvmkit_e2e(warm, Path(tmp) / "w_c.mp4", Path(tmp) / "w_a.mp4", ratio)
        if "steady" in args.sections:
            for width, height, ratio in sizes:
                results["sizes"].append(measure_size(width, height, ratio or 0.25, args, Path(tmp)))
        results.update(_issue15_sections(args, sizes, results["sizes"], Path(tmp)))
    results["loadavg_end"] = _loadavg()
    results["targets_met"] = _targets_met(results)
    text = json.dumps(results, indent=2)
    write_atomically(args.json, lambda tmp_path: tmp_path.write_text(text + "\n"))
    if results["sizes"]:
        try:
            chart(results, args.chart)
        except ImportError:
            print("matplotlib not installed: no chart (pip install matplotlib)", file=sys.stderr)
        _print_steady(results["sizes"])
    _print_issue15(results)
    print(f"wrote {args.json}; targets met: {results['targets_met']}")
    return 0


def _issue15_sections(args: argparse.Namespace, sizes: list, steady: list[dict], tmp: Path) -> dict:
    """Whole processes and start-up at 1080p on the held-out clip; model-only against the floor."""
    import perf

    out: dict = {}
    if "whole" in args.sections or "startup" in args.sections:
        clip = perf.held_out_clip(tmp / "held_out_1080p.mp4", 1920, 1080, args.whole_frames)
        if "startup" in args.sections:
            out["startup"] = perf.startup(clip, tmp, 0.25, args.startup_reps)
        if "whole" in args.sections:
            whole = perf.whole_process(clip, tmp, 0.25, args.whole_reps, args.whole_frames)
            from rvmkit import bench
            from rvmkit.weights import official_onnx_path

            naive, ours = bench.composition_psnr(clip, [tmp / "naive_c.mp4", tmp / "rvmkit_c.mp4"],
                                                 official_onnx_path(), 0.25)
            whole["psnr_db"] = {"naive": naive, "rvmkit": ours, "delta": round(ours - naive, 3)}
            whole.pop("outputs")
            out["whole_process_1080p"] = whole
    if "floor" in args.sections:
        out["floor"] = [_floor_row(width, height, ratio or 0.25, args) for width, height, ratio in sizes]
    if "precision" in args.sections:
        rows_path = tmp / "precision_rows.json"
        subprocess.run([sys.executable, str(HERE / "precision.py"), "--frames", str(args.precision_frames),
                        "--configs", args.precision_configs, "--json", str(rows_path)], check=True,
                       stdout=subprocess.DEVNULL)
        out["precision"] = json.loads(rows_path.read_text())
    return out


def _floor_row(width: int, height: int, ratio: float, args: argparse.Namespace) -> dict:
    """--floor-rounds rounds of the sgemm rate and the model measured one right after the other, so a
    busier moment of a shared machine slows both; the row is the round with the median ratio."""
    import perf

    one = args.floor_one_core
    rounds = sorted((perf.floor(width, height, ratio, _model_ms(width, height, ratio, args.model_frames, one),
                                perf.sgemm_gflops(reps=8, one_core=one)) for _ in range(args.floor_rounds)),
                    key=lambda row: row["model_over_floor"])
    return {"size": f"{width}x{height}", "ratio": ratio, **rounds[len(rounds) // 2],
            "rounds_over_floor": [row["model_over_floor"] for row in rounds],
            "timing": "one thread, CPU time" if one else "all cores, wall time"}


def _model_ms(width: int, height: int, ratio: float, frames: int, one_core: bool = False) -> float:
    """rvmkit's fast path alone (as `rvmkit matte` runs it), median ms a frame, on held-out frames;
    `one_core`: one ORT and kernel thread, process CPU time."""
    import statistics
    import time

    import perf

    from rvmkit import bench
    from rvmkit.runtime import load_backend
    from rvmkit.weights import official_onnx_path

    with tempfile.TemporaryDirectory(prefix="rvmkit-model-") as tmp:
        clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, frames + 2)
        model_frames = bench.load_frames(clip, width, height, frames + 2)
    threads = {"threads": 1, "kernel_threads": 1} if one_core else {}
    with load_backend("onnxruntime", official_onnx_path(), fast=True, **threads) as fast:
        fast.warm_up()
        if one_core:
            step, cpu = bench.backend_stepper(fast, model_frames, ratio), []
            for index in range(len(model_frames)):
                started = time.process_time()
                step(index)
                cpu.append(1000 * (time.process_time() - started))
            return round(statistics.median(cpu[2:]), 2)
        times = bench.time_interleaved({"rvmkit": bench.backend_stepper(fast, model_frames, ratio)},
                                       len(model_frames))
    return bench.summarize("rvmkit", times["rvmkit"], width, height, ratio).as_dict()["median_ms"]


def _targets_met(results: dict) -> dict:
    met: dict = {}
    hd = next((r for r in results["sizes"] if r["size"] == "1920x1080"), None)
    if hd is not None:
        ratios = hd["ratios"]
        met.update({
            "e2e_vs_naive_1080p": ratios["e2e_vs_naive"] >= TARGETS["e2e_vs_naive_1080p"],
            "model_vs_official_1080p": ratios["model_vs_official"] >= TARGETS["model_vs_official_1080p"],
            "e2e_over_model_1080p": ratios["e2e_over_model"] <= TARGETS["e2e_over_model_1080p"],
            "psnr_delta_1080p": hd["psnr_db"]["delta"] >= TARGETS["psnr_delta_db_min"]})
    whole = results.get("whole_process_1080p")
    if whole:
        met["whole_process_vs_naive_1080p"] = whole["ratio"] >= TARGETS["whole_process_vs_naive_1080p"]
        met["whole_psnr_delta_1080p"] = whole["psnr_db"]["delta"] >= TARGETS["whole_psnr_delta_db_min"]
    if "startup" in results:
        met["first_frame_s"] = results["startup"]["first_frame_s"] <= TARGETS["first_frame_s_max"]
    for row in results.get("floor", []):
        met[f"model_over_floor_{row['size']}"] = row["model_over_floor"] <= TARGETS["model_over_floor_max"]
    return met


def _print_steady(sizes: list[dict]) -> None:
    from rvmkit import bench

    rows = [{"size": r["size"], "ratio": r["ratio"], "naive ms": r["e2e_ms"]["naive"],
             "rvmkit ms": r["e2e_ms"]["rvmkit"], "e2e x": r["ratios"]["e2e_vs_naive"],
             "naive wall": r["e2e_ms"]["naive_wall"], "rvmkit wall": r["e2e_ms"]["rvmkit_wall"],
             "official model ms": r["model_ms"]["official"], "rvmkit model ms": r["model_ms"]["rvmkit"],
             "model x": r["ratios"]["model_vs_official"], "e2e/model": r["ratios"]["e2e_over_model"],
             "PSNR naive": r["psnr_db"]["naive"], "PSNR rvmkit": r["psnr_db"]["rvmkit"]}
            for r in sizes]
    print(bench.format_table(rows, list(rows[0])))


def _print_issue15(results: dict) -> None:
    from rvmkit import bench

    whole = results.get("whole_process_1080p")
    if whole:
        print(f"whole process, 1080p, {whole['frames']} frames: naive {whole['seconds']['naive']:.2f} s, "
              f"rvmkit {whole['seconds']['rvmkit']:.2f} s: {whole['ratio']:.2f}x; PSNR naive "
              f"{whole['psnr_db']['naive']} dB, rvmkit {whole['psnr_db']['rvmkit']} dB")
    if "startup" in results:
        startup = results["startup"]
        print(f"start-up: first frame after {startup['first_frame_s']:.3f} s; imports "
              f"{startup['imports']['total_ms']} ms ({startup['imports']['top_ms']})")
    if results.get("precision"):
        import precision

        print(precision.table(results["precision"]))
    if results.get("floor"):
        print(bench.format_table(results["floor"], ["size", "ratio", "conv_gflop", "sgemm_gflops", "floor_ms",
                                                    "model_ms", "model_over_floor", "rounds_over_floor"]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
