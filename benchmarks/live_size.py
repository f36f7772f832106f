"""Issue 22 item 2: the fast path against a plain ONNX Runtime session at the live sizes, model only.

    PYTHONPATH=src python benchmarks/live_size.py [--frames 12] [--reps 3]
        [--sizes 320x240@1 640x480@0.5 1280x720@0.25 1920x1080@0.1667] [--variants plain fast ...]

"Model only" as `rvmkit bench` times it (`bench.backend_stepper`): uint8 frame -> prepare -> infer ->
float fgr/pha, on held-out frames (sister, milk, book). The default sizes are `rvmkit live`'s auto ratios
(the network sees a 320-pixel long side). Each variant runs its frames alone (interleaving sessions frame
by frame thrashes the caches), in --reps rounds whose order alternates; per variant the median of its
rounds' medians is reported with the best round, the load average and the CPU, and the process CPU ms
per frame (all threads, spinning included). Variants: `plain` is the
whole official graph in one ORT session (`load_backend(..., fast=False)`); `fast` is rvmkit's fast path;
the others change one fast-path setting. Results in benchmarks/live_size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIVE_SIZES = ["320x240@1", "640x480@0.5", "1280x720@0.25", "1920x1080@0.1667"]
VARIANTS: dict[str, dict] = {  # name -> load_backend options
    "plain": {"fast": False},
    "fast": {"fast": True},
    "fast, spinning": {"fast": True, "spinning": True},
    "fast, not blocked": {"fast": True, "blocked": False},
    "fast, convs not split": {"fast": True, "split_convs": False},
    # one thread, no workers to spin: process CPU time per frame is the work itself, which a busy shared
    # machine distorts far less than wall time
    "plain, 1 thread": {"fast": False, "threads": 1},
    "fast, 1 thread": {"fast": True, "threads": 1, "kernel_threads": 1},
}


def timed(step, count: int, warmup: int = 2) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) per frame; warm-up frames dropped."""
    walls, cpus = [], []
    for i in range(count):
        wall, used = time.perf_counter(), time.process_time()
        step(i)
        walls.append(1000 * (time.perf_counter() - wall))
        cpus.append(1000 * (time.process_time() - used))
    return statistics.median(walls[warmup:]), statistics.median(cpus[warmup:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=LIVE_SIZES)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["plain", "fast"])
    parser.add_argument("--json", type=Path, default=HERE / "live_size.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import perf

    from rvmkit import bench, runtime
    from rvmkit.runtime import kernels

    kernels.warm_up(wait=True)
    rows, loads = [], []
    for text in args.sizes:
        width, height, ratio = bench.parse_size_ratio(text)
        with tempfile.TemporaryDirectory(prefix="rvmkit-live-size-") as tmp:
            clip = perf.held_out_clip(Path(tmp) / "clip.mp4", width, height, args.frames + 2)
            frames = bench.load_frames(clip, width, height, args.frames + 2)
        backends = {name: runtime.load_backend("onnxruntime", None, **VARIANTS[name])
                    for name in args.variants}
        rounds: dict[str, list[float]] = {name: [] for name in backends}
        cpu: dict[str, list[float]] = {name: [] for name in backends}
        for rep in range(args.reps):
            for name in (list(backends) if rep % 2 == 0 else list(reversed(backends))):
                loads.append(os.getloadavg()[0])
                wall, used = timed(bench.backend_stepper(backends[name], frames, ratio), len(frames))
                rounds[name].append(round(wall, 2))
                cpu[name].append(round(used, 2))
        base = statistics.median(rounds[args.variants[0]])
        for name, medians in rounds.items():
            median = statistics.median(medians)
            row = {"size": f"{width}x{height}", "ratio": ratio, "variant": name,
                   "median_ms": round(median, 1),
                   "best_ms": min(medians), "rounds": medians, "cpu_ms": statistics.median(cpu[name]),
                   f"speed vs {args.variants[0]}": round(base / median, 3)}
            rows.append(row)
            print(f"{row['size']:>9s} @{ratio:<6} {name:24s} {median:7.1f} ms (best {min(medians):.1f}) "
                  f"{base / median:.2f}x; CPU {statistics.median(cpu[name]):.1f} ms", flush=True)
        for backend in backends.values():
            backend.close()
    print(f"load average {min(loads):.1f}-{max(loads):.1f}")
    result = {"machine": bench.machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "frames": args.frames, "reps": args.reps,
              "load_1min": {"min": min(loads), "max": max(loads)}, "rows": rows}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
