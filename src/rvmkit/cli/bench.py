"""`rvmkit bench`: model-only and end-to-end speed per backend and resolution, as a table."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rvmkit.runtime import BACKENDS, DEVICES

DEFAULT_SIZES = ("640x480@0.5", "1280x720@0.375", "1920x1080@0.25")
EPILOG = """\
examples:
  rvmkit bench                                   # synthetic frames, onnxruntime, three sizes
  rvmkit bench clip.mp4 --mode both --sizes 1920x1080@0.25 --frames 24
  rvmkit bench --backend onnxruntime openvino torch --json bench.json

Model-only variants run interleaved frame by frame (each with its own recurrent state); 'official' is
the official ONNX in ONNX Runtime with default options on float input, 'fast' is rvmkit's default CPU
path from the uint8 frame to float fgr/pha. End to end = `rvmkit matte` with composition + alpha as
H.264 at 4 Mbps (for benchmarks/compare.py's side-by-side against the naive loop, see benchmarks/).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the model and the whole video pipeline",
        description="Per-frame times (median) per backend and resolution.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", nargs="?",
                        help="video whose frames to use (scaled to each size); default: synthetic frames")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["onnxruntime"])
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--fp16", action="store_true", help="torch backend in half precision (cuda)")
    parser.add_argument("--model", metavar="PATH", help="ONNX / checkpoint (default: pretrained)")
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="WxH@R")
    parser.add_argument("--frames", type=int, default=12, help="timed frames per size (default 12)")
    parser.add_argument("--mode", choices=("model", "e2e", "both"), default="model")
    parser.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.set_defaults(func=run)


def _model_rows(args: argparse.Namespace, width: int, height: int, ratio: float) -> list[dict]:
    from rvmkit import bench
    from rvmkit.runtime import load_backend
    from rvmkit.weights import official_onnx_path

    frames = bench.load_frames(args.input, width, height, args.frames + 2)
    official = official_onnx_path()
    steppers = {"official ONNX (ORT)": bench.official_stepper(args.model or official, frames, ratio,
                                                               args.threads)}
    backends = []
    for name in args.backend:
        options: dict = {"threads": args.threads} if args.threads and name != "torch" else {}
        if name == "torch" and args.fp16:
            options["fp16"] = True
        variants = [("fast", {"fast": True}), ("plain", {"fast": False})] if name == "onnxruntime" \
            and args.device == "cpu" else [("", {})]
        for label, extra in variants:
            backend = load_backend(name, args.model, device=args.device, **options, **extra)
            backends.append(backend)
            title = f"{name} ({label})" if label else f"{name} ({args.device}{', fp16' if args.fp16 else ''})"
            steppers[title] = bench.backend_stepper(backend, frames, ratio)
    times = bench.time_interleaved(steppers, len(frames))
    for backend in backends:
        backend.close()
    rows = []
    reference = bench.summarize("official", times["official ONNX (ORT)"], width, height, ratio).median_ms
    for name, seconds in times.items():
        timing = bench.summarize(name, seconds, width, height, ratio)
        rows.append({"mode": "model", "variant": name, "size": f"{width}x{height}", "ratio": ratio,
                     "ms/frame": timing.median_ms, "fps": round(timing.fps, 2),
                     "vs official": f"{reference / timing.median_ms:.2f}x"})
    return rows


def _e2e_rows(args: argparse.Namespace, width: int, height: int, ratio: float) -> list[dict]:
    import av
    import numpy as np

    from rvmkit import bench

    rows = []
    with tempfile.TemporaryDirectory(prefix="rvmkit-bench-") as tmp:
        clip = Path(tmp) / "input.mp4"
        if args.input:
            bench.make_clip(args.input, clip, width, height, args.frames)
        else:
            with av.open(str(clip), "w") as out:
                stream = out.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                for frame in bench.synthetic_frames(width, height, args.frames):
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame))))
                out.mux(stream.encode(None))
        for name in args.backend:
            frames, seconds = bench.rvmkit_e2e(clip, Path(tmp) / f"c_{name}.mp4", Path(tmp) / f"a_{name}.mp4",
                                               ratio, backend=name, device=args.device, model=args.model,
                                               fp16=args.fp16)
            ms = 1000 * seconds / frames
            rows.append({"mode": "e2e", "variant": f"rvmkit matte ({name})", "size": f"{width}x{height}",
                         "ratio": ratio, "ms/frame": round(ms, 2), "fps": round(1000 / ms, 2),
                         "vs official": ""})
    return rows


def run(args: argparse.Namespace) -> int:
    from rvmkit import bench
    from rvmkit.errors import RvmkitError

    if args.frames < 1:
        raise RvmkitError(f"--frames {args.frames}: must be at least 1")
    if args.json:  # before the timings, not after them
        from rvmkit.fileio import require_writable_output

        require_writable_output(args.json)
    rows: list[dict] = []
    for text in args.sizes:
        try:
            width, height, ratio = bench.parse_size(text)
        except ValueError:
            raise RvmkitError(f"size {text!r}: expected WxH or WxH@RATIO, e.g. 1920x1080@0.25") from None
        if ratio is None:
            from rvmkit.runtime import auto_downsample_ratio

            ratio = round(auto_downsample_ratio(width, height), 4)
        if args.mode in ("model", "both"):
            rows += _model_rows(args, width, height, ratio)
        if args.mode in ("e2e", "both"):
            rows += _e2e_rows(args, width, height, ratio)
    print(bench.format_table(rows, ["mode", "variant", "size", "ratio", "ms/frame", "fps", "vs official"]))
    if args.json:
        from rvmkit.fileio import write_atomically

        text = json.dumps({"machine": bench.machine(), "rows": rows}, indent=2)
        write_atomically(Path(args.json), lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
