"""Issue 22 item 2: what the per-size path choice (`rvmkit.runtime.path_choice`) measures and picks on this
CPU, and what it costs the first frame of a size, once.

    PYTHONPATH=src python benchmarks/path_choice.py [--sizes 320x240@1 640x480@0.5 ...] [--reps 2]

Each rep, in a fresh cache folder (the official ONNX linked into it; the fast graph built and optimised
untimed): a backend as the engine loads it by default, one held-out frame (sister, milk, book) at the
size through `FrameMatter`: the first frame measures the paths (whole graph, its two stages side by
side where loaded, plain session) and caches the winner (its time is
the measurement plus the frame); a second backend then runs its first frame with the choice read from
the cache. The measurement runs whatever the machine's load (rvmkit skips it on a busy machine; the
load is in each row). Reported per size: the winner, both medians as measured, the rounds, the measurement's
seconds (the plain session's loading included) and the two first frames. Results in
benchmarks/path_choice.json.
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
LIVE_SIZES = ["320x240@1", "640x480@0.5", "1280x720@0.25", "1920x1080@0.1667", "1920x1080@0.25"]


def first_frame(frame, ratio: float) -> tuple[float, str]:
    from rvmkit import runtime
    from rvmkit.runtime.base import FrameMatter

    backend = runtime.load_backend("onnxruntime", None)
    started = time.perf_counter()
    result = FrameMatter(backend, ratio)(frame)
    result.arrays()
    seconds = time.perf_counter() - started
    backend.close()
    return seconds, type(result).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=LIVE_SIZES)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "path_choice.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import perf

    from rvmkit import bench
    from rvmkit.cache import CACHE_ENV, ONNX_NAME, cache_dir, official_onnx_path
    from rvmkit.graph.lowres import low_res_model_path
    from rvmkit.runtime import kernels, path_choice

    path_choice.machine_busy = lambda: False  # measured whatever the load (said in each row)
    official = official_onnx_path()
    kernels.warm_up(wait=True)
    os.environ.pop("RVMKIT_FAST", None)
    rows = []
    for text in args.sizes:
        width, height, ratio = bench.parse_size_ratio(text)
        with tempfile.TemporaryDirectory(prefix="rvmkit-choice-") as tmp:
            frame = bench.load_frames(perf.held_out_clip(Path(tmp) / "c.mp4", width, height, 1),
                                      width, height, 1)[0]
        for rep in range(args.reps):
            with tempfile.TemporaryDirectory(prefix="rvmkit-choice-cache-") as cache:
                os.environ[CACHE_ENV] = cache
                (Path(cache) / ONNX_NAME).symlink_to(official)
                for name in (ONNX_NAME + ".verified",):
                    if (official.parent / name).is_file():
                        (Path(cache) / name).write_bytes((official.parent / name).read_bytes())
                low_res_model_path(Path(cache) / ONNX_NAME)
                load = os.getloadavg()[0]
                cold, cold_kind = first_frame(frame, ratio)
                warm, warm_kind = first_frame(frame, ratio)
                [choice] = [json.loads(p.read_text()) for p in (cache_dir() / "fast").glob("*.choice.json")]
            row = {"size": f"{width}x{height}", "ratio": ratio, "rep": rep, "load_1min": round(load, 2),
                   **choice, "first_frame_measuring_s": round(cold, 3),
                   "first_frame_cached_s": round(warm, 3), "result": warm_kind}
            rows.append(row)
            staged = f", staged {choice['staged_ms']:.1f} ms" if choice.get("staged_ms") else ""
            print(f"{text:>17s} rep {rep}: {choice['use']:6s} fast {choice['fast_ms']:.1f} ms{staged}, plain "
                  f"{choice['plain_ms']:.1f} ms ({choice['rounds']} rounds), measured in "
                  f"{choice['seconds']:.2f} s; first frame {cold:.2f} s measuring, {warm:.3f} s cached; "
                  f"load {load:.1f}", flush=True)
    result = {"machine": bench.machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rows": rows}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
