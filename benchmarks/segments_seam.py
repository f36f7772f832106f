"""Seam error and speed-up of `--segments`: how many warm-up frames W make a segment match sequential.

Inputs: the real clips played forward, backward, forward ("ping-pong": book 109 -> 325 frames, sister
87 -> 259), so a seam can sit deep in a video, as it does in a long recording, with room for large W.

Seam error: one sequential pass is the reference. A segment starts from zero recurrent state W frames
before the seam (frame SEAM) and its alpha over the WINDOW frames after the seam is compared with the
reference, in 8-bit alpha levels (|alpha - reference| * 255, before rounding): max, mean, 99.9th
percentile, share of pixels off by more than 4 levels, and the same over the first 8 frames.

Speed: wall time of `rvmkit matte` (sequential, ONNX Runtime on every core), of the whole video on one
1-CPU Ray worker (a cluster's per-worker baseline), and of `--segments` over one 1-CPU worker per core,
on the ping-pong book video, on a warm local Ray cluster.

    python benchmarks/segments_seam.py                 # both parts, writes benchmarks/segments_seam.json
    python benchmarks/segments_seam.py --part seam     # one part, merged into the existing JSON
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
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from rvmkit import pipeline, weights
from rvmkit.runtime import auto_downsample_ratio, load_backend
from rvmkit.video.reader import Frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("book", "sister")
WARMUPS = (0, 2, 4, 8, 16, 32, 48, 64, 96)
SEAM, WINDOW = 160, 48
OUT = Path(__file__).with_suffix(".json")


def ping_pong(clip: str, passes: int = 3) -> list[np.ndarray]:
    """The clip's RGB frames forward, backward, forward, ... (no frame repeated at the turns)."""
    with av.open(str(DATA / f"{clip}.mkv")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    out = list(frames)
    for i in range(1, passes):
        out += (frames[::-1] if i % 2 else frames)[1:]
    return out


def as_frames(images: list[np.ndarray]) -> Iterator[Frame]:
    for index, rgb in enumerate(images):
        yield Frame(index=index, rgb=rgb, pts=index, time_base=None)


def alphas(images: list[np.ndarray], engine, ratio: float, start: int, stop: int, warmup: int) -> np.ndarray:
    """Alpha * 255 (float, unrounded) of frames [start, stop), inference starting `warmup` frames early."""
    out: list[np.ndarray] = []
    pipeline.run(as_frames(images), engine, ratio, lambda frame, fgr, pha: out.append(pha[0] * 255.0),
                 start=start, stop=stop, warmup=warmup)
    return np.stack(out)


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    diff = np.abs(got - want)
    written = np.floor(got + 0.5) != np.floor(want + 0.5)
    flat = diff.reshape(len(diff), -1)
    return {"max": float(diff.max()), "mean": float(diff.mean()), "p99_9": float(np.percentile(diff, 99.9)),
            "over4_pct": float((diff > 4).mean() * 100), "max_first8": float(diff[:8].max()),
            "mean_first8": float(diff[:8].mean()), "written_changed_pct": float(written.mean() * 100),
            "per_frame_max": [round(float(v), 2) for v in flat.max(axis=1)],
            "per_frame_mean": [round(float(v), 4) for v in flat.mean(axis=1)]}


def seam_errors(threads: int) -> dict:
    engine = load_backend("onnxruntime", weights.official_onnx_path(), threads=threads)
    result: dict = {}
    for clip in CLIPS:
        images = ping_pong(clip)
        height, width = images[0].shape[:2]
        ratio = auto_downsample_ratio(width, height)
        reference = alphas(images, engine, ratio, SEAM, SEAM + WINDOW, SEAM)  # from frame 0
        rows = []
        for warmup in WARMUPS:
            got = alphas(images, engine, ratio, SEAM, SEAM + WINDOW, warmup)
            row = {"warmup": warmup, **compare(got, reference)}
            rows.append(row)
            print(f"{clip} W={warmup:3d}: max {row['max']:6.2f} mean {row['mean']:.4f} "
                  f"p99.9 {row['p99_9']:5.2f} "
                  f">4 levels {row['over4_pct']:.4f}% | first 8 frames: max {row['max_first8']:6.2f} "
                  f"mean {row['mean_first8']:.4f}", flush=True)
        result[clip] = {"frames": len(images), "size": [width, height], "ratio": ratio, "seam": SEAM,
                        "window": WINDOW, "rows": rows}
    engine.close()
    return result


def write_clip(images: list[np.ndarray], path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for rgb in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def timing(segments: int, warmup: int, repeats: int) -> dict:
    import ray

    from rvmkit.api import convert_video
    from rvmkit.batch.ray_runner import convert_segmented, init_ray, run_batch

    tmp = Path(tempfile.mkdtemp(prefix="rvmkit-seam-"))
    path = write_clip(ping_pong("book"), tmp / "book_pingpong.mp4")
    started = time.monotonic()
    init_ray(num_cpus=os.cpu_count())
    result: dict = {"input": "book ping-pong, 325 frames 640x480", "segments": segments, "warmup": warmup,
                    "ray_start_s": round(time.monotonic() - started, 2)}
    modes = ("matte", "one_worker", "segmented")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for repeat in range(repeats):  # interleaved, so background load hits every mode alike
            for mode in modes:
                out = tmp / f"{mode}-{repeat}"
                began = time.monotonic()
                if mode == "matte":
                    convert_video(path, out / "c.mp4", out / "a.mp4", progress=False)
                elif mode == "one_worker":
                    [item] = run_batch([path], out, outputs=("composition", "alpha"), num_workers=1)
                    assert item.status == "done", item.error
                else:
                    convert_segmented(path, out / "c.mp4", out / "a.mp4", segments=segments, warmup=warmup,
                                      num_workers=segments)
                times[mode].append(round(time.monotonic() - began, 2))
                print(f"{mode}: {times[mode][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ray.shutdown()
    median = {mode: statistics.median(values) for mode, values in times.items()}
    result.update({"seconds": times, "median_s": median,
                   "speedup_vs_matte": round(median["matte"] / median["segmented"], 3),
                   "speedup_vs_one_worker": round(median["one_worker"] / median["segmented"], 3)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "seam", "timing"), default="all")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None,
                        help="W for the timing runs (default: DEFAULT_WARMUP)")
    args = parser.parse_args()
    report: dict = json.loads(OUT.read_text()) if args.part != "all" and OUT.exists() else {}
    report["unit"] = "8-bit alpha levels: |alpha - sequential alpha| * 255, before rounding"
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_start": os.getloadavg()}
    if args.part in ("all", "seam"):
        report["seam"] = seam_errors(threads=os.cpu_count() or 1)
        report["seam_machine"] = {**machine, "load_avg_end": os.getloadavg()}
    if args.part in ("all", "timing"):
        from rvmkit.batch.segments import DEFAULT_WARMUP

        cpus = os.cpu_count() or 2
        report["timing"] = timing(cpus, DEFAULT_WARMUP if args.warmup is None else args.warmup, args.repeats)
        report["timing_machine"] = {**machine, "load_avg_end": os.getloadavg()}
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
