"""Seam error and speed-up of `--segments`: how many warm-up frames W make a segment match sequential.

For each real clip, frames are split into K segments. A segment starts from zero recurrent state W
frames before its seam; its alpha from the seam to the next seam is compared with one sequential
pass, in the 8-bit levels that are written (|a - b| * 255). Then whole runs are timed: sequential
`convert_video` against `convert_segmented` on a local Ray cluster, same outputs.

    python benchmarks/segments_seam.py            # writes benchmarks/segments_seam.json
    python benchmarks/segments_seam.py --quick    # one clip, fewer W, no timing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rvmkit import pipeline, weights
from rvmkit.batch.segments import plan_segments
from rvmkit.runtime import auto_downsample_ratio, load_backend
from rvmkit.video.reader import open_source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("book", "sister")
WARMUPS = (0, 1, 2, 4, 8, 16, 24)
SEGMENTS = 3
OUT = Path(__file__).with_suffix(".json")


def alphas(path: Path, engine, ratio: float, start: int = 0, stop: int | None = None, warmup: int = 0
           ) -> np.ndarray:
    """8-bit alpha levels (as float, unrounded) of frames [start, stop), warm-started `warmup` early."""
    out: list[np.ndarray] = []
    with open_source(path) as source:
        pipeline.run(source, engine, ratio, lambda frame, fgr, pha: out.append(pha[0] * 255.0),
                     start=start, stop=stop, warmup=warmup)
    return np.stack(out)


def seam_errors(threads: int, warmups: tuple[int, ...], clips: tuple[str, ...]) -> dict:
    engine = load_backend("onnxruntime", weights.official_onnx_path(), threads=threads)
    result: dict = {}
    for clip in clips:
        path = DATA / f"{clip}.mkv"
        with open_source(path) as source:
            info = source.info
        ratio = auto_downsample_ratio(info.width, info.height)
        reference = alphas(path, engine, ratio)
        plan = plan_segments(info.frame_count, SEGMENTS, 0)
        rows = []
        for warmup in warmups:
            per_seam = []
            for segment in plan[1:]:
                got = alphas(path, engine, ratio, segment.start, segment.stop, warmup)
                diff = np.abs(got - reference[segment.start:segment.stop])
                q = np.abs(np.floor(got + 0.5) - np.floor(reference[segment.start:segment.stop] + 0.5))
                per_frame_max = diff.reshape(len(diff), -1).max(axis=1)
                per_seam.append({
                    "seam": segment.start, "frames": len(diff),
                    "max": float(diff.max()), "mean": float(diff.mean()),
                    "max_first8": float(diff[:8].max()), "mean_first8": float(diff[:8].mean()),
                    "max_last8": float(diff[-8:].max()),
                    "written_max": int(q.max()), "written_changed_pct": float((q > 0).mean() * 100),
                    "per_frame_max": [round(float(v), 2) for v in per_frame_max],
                })
            rows.append({"warmup": warmup,
                         "max": max(s["max"] for s in per_seam),
                         "mean": float(np.mean([s["mean"] for s in per_seam])),
                         "max_first8": max(s["max_first8"] for s in per_seam),
                         "written_max": max(s["written_max"] for s in per_seam),
                         "written_changed_pct": float(np.mean([s["written_changed_pct"] for s in per_seam])),
                         "seams": per_seam})
            print(f"{clip} W={warmup:3d}: max {rows[-1]['max']:6.2f}  mean {rows[-1]['mean']:.4f} "
                  f"(8-bit levels), first 8 frames max {rows[-1]['max_first8']:6.2f}, "
                  f"pixels changed {rows[-1]['written_changed_pct']:.3f}%", flush=True)
        result[clip] = {"frames": info.frame_count, "ratio": ratio, "segments": SEGMENTS, "rows": rows}
    engine.close()
    return result


def timing(clips: tuple[str, ...], segments: int, warmup: int, repeats: int) -> dict:
    """Wall time of sequential matte vs segmented on a warm local Ray cluster (start time reported apart)."""
    import ray

    from rvmkit.api import convert_video
    from rvmkit.batch.ray_runner import convert_segmented, init_ray

    started = time.monotonic()
    init_ray(num_cpus=os.cpu_count())
    ray_start = time.monotonic() - started
    result: dict = {"ray_start_s": round(ray_start, 2), "clips": {}}
    tmp = Path(tempfile.mkdtemp(prefix="rvmkit-seam-"))
    try:
        for clip in clips:
            path = DATA / f"{clip}.mkv"
            times: dict[str, list[float]] = {"sequential": [], "segmented": []}
            for repeat in range(repeats):  # interleaved, so background load hits both alike
                for mode in ("sequential", "segmented"):
                    out = tmp / f"{clip}-{mode}-{repeat}"
                    kwargs = {"output_composition": out / "c.mp4", "output_alpha": out / "a.mp4"}
                    began = time.monotonic()
                    if mode == "sequential":
                        convert_video(path, progress=False, **kwargs)
                    else:
                        convert_segmented(path, segments=segments, warmup=warmup, **kwargs)
                    times[mode].append(time.monotonic() - began)
                    print(f"{clip} {mode}: {times[mode][-1]:.1f} s", flush=True)
            seq, segd = statistics.median(times["sequential"]), statistics.median(times["segmented"])
            result["clips"][clip] = {"sequential_s": times["sequential"], "segmented_s": times["segmented"],
                                     "speedup_median": round(seq / segd, 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ray.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=None, help="W for the timing runs (default: chosen)")
    parser.add_argument("--part", choices=("all", "seam", "timing"), default="all",
                        help="run one half and merge it into the existing JSON")
    args = parser.parse_args()
    clips = CLIPS[:1] if args.quick else CLIPS
    warmups = (0, 4, 16) if args.quick else WARMUPS
    report: dict = json.loads(OUT.read_text()) if args.part != "all" and OUT.exists() else {}
    report.update({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "load_avg_start": os.getloadavg()},
                   "segments": SEGMENTS, "unit": "8-bit alpha levels (|alpha - sequential| * 255)"})
    if args.part in ("all", "seam"):
        report["seam"] = seam_errors(threads=os.cpu_count() or 1, warmups=warmups, clips=clips)
    if not args.quick and args.part in ("all", "timing"):
        from rvmkit.batch.segments import DEFAULT_WARMUP

        warmup = DEFAULT_WARMUP if args.warmup is None else args.warmup
        report["timing"] = {"segments": os.cpu_count(), "warmup": warmup,
                            **timing(clips, os.cpu_count() or 2, warmup, args.repeats)}
    report["machine"]["load_avg_end"] = os.getloadavg()
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
