"""`rvmkit bench`: model-only and end-to-end speed per backend and resolution, as a table."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rvmkit.runtime import BACKENDS, DEVICES

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

DEFAULT_SIZES = ("640x480@0.5", "1280x720@0.375", "1920x1080@0.25")
EPILOG = """\
examples:
  rvmkit bench                                   # synthetic frames, onnxruntime, three sizes
  rvmkit bench clip.mp4 --mode both --sizes 1920x1080@0.25 --frames 24
  rvmkit bench --backend onnxruntime openvino torch --json bench.json

Model-only variants run interleaved frame by frame (each with its own recurrent state); 'official' is
the official ONNX (--model's when it is an RVM ONNX with a ratio input) in ONNX Runtime with default
options on float input, 'fast' is rvmkit's default CPU path from the uint8 frame to float fgr/pha.
--model takes what `rvmkit matte --model` takes: an RVM ONNX or a TRT-ready one (its baked ratio is the
sizes' ratio), a .pth checkpoint with --backend torch, a TensorRT engine with --backend tensorrt.
End to end = `rvmkit matte` with composition + alpha as H.264 at 4 Mbps (for benchmarks/compare.py's
side-by-side against the naive loop, see benchmarks/).
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
    parser.add_argument("--fp16", action="store_true",
                        help="torch backend in half precision (cuda); needs torch among --backend")
    parser.add_argument("--model", metavar="PATH", help="ONNX / checkpoint / engine (default: pretrained)")
    parser.add_argument("--sizes", nargs="+", metavar="WxH@R",
                        help=f"sizes, each with its downsample ratio in (0, 1], auto when left out "
                             f"(default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--frames", type=int, default=12, help="timed frames per size (default 12)")
    parser.add_argument("--mode", choices=("model", "e2e", "both"), default="model")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="model-only ONNX Runtime / OpenVINO threads, at least 1 (default: all cores)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> tuple[dict[str, ModelSpec], list[tuple[int, int, float]]]:
    """Everything given checked before any frame is timed, as `rvmkit matte` checks it (one-line errors):
    ({backend: model spec}, [(width, height, ratio)])."""
    from rvmkit import bench
    from rvmkit.api import check_model
    from rvmkit.contract import resolve_ratio, same_ratio
    from rvmkit.errors import RvmkitError, describe_path

    if args.frames < 1:
        raise RvmkitError(f"--frames {args.frames}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise RvmkitError(f"--threads {args.threads}: must be at least 1 (leave it out to use all cores)")
    specs = {}
    for name in dict.fromkeys(args.backend):
        # fp16 is the torch backend's; without torch among the backends it is refused as matte refuses it
        fp16 = args.fp16 and (name == "torch" or "torch" not in args.backend)
        specs[name] = check_model(args.model, name, args.device, fp16)[0]
    spec = next(iter(specs.values()))
    baked = spec.baked_ratio
    texts = args.sizes or [text.partition("@")[0] if baked is not None else text for text in DEFAULT_SIZES]
    sizes = []
    for text in texts:
        width, height, ratio = bench.parse_size(text)
        if baked is not None and ratio is not None and not same_ratio(ratio, baked):
            raise RvmkitError(f"size {text!r}: {describe_path(spec.label)} has downsample ratio {baked:g} "
                              f"baked in; use {width}x{height}@{baked:g} or {width}x{height}")
        auto = ratio is None and baked is None
        ratio = resolve_ratio(ratio, width, height, baked, spec.label, text)  # refuses one leaving no pixel
        sizes.append((width, height, round(ratio, 4) if auto else ratio))
    return specs, sizes


def _model_rows(args: argparse.Namespace, specs: dict[str, ModelSpec], width: int, height: int,
                ratio: float) -> list[dict]:
    from rvmkit import bench
    from rvmkit.cache import official_onnx_path
    from rvmkit.errors import first_line
    from rvmkit.graph.lowres import UnsupportedGraph
    from rvmkit.runtime import load_backend

    frames = bench.load_frames(args.input, width, height, args.frames + 2)
    spec = next(iter(specs.values()))
    official = spec.path if spec.kind == "onnx" and spec.path is not None else official_onnx_path()
    steppers = {"official ONNX (ORT)": bench.official_stepper(official, frames, ratio, args.threads)}
    backends = []
    for name, spec in specs.items():
        options: dict = {"threads": args.threads} if args.threads and name != "torch" else {}
        fp16 = args.fp16 and name == "torch"
        if fp16:
            options["fp16"] = True
        variants = [("fast", {"fast": True}), ("plain", {"fast": False})] if name == "onnxruntime" \
            and args.device == "cpu" else [("", {})]
        for label, extra in variants:
            try:
                backend = load_backend(name, spec, device=args.device, **options, **extra)
            except UnsupportedGraph as exc:  # a float16 model, or a graph the fast path does not know
                print(f"rvmkit bench: {name} ({label}) left out: {first_line(exc)}", file=sys.stderr)
                continue
            backends.append(backend)
            title = f"{name} ({label})" if label else f"{name} ({args.device}{', fp16' if fp16 else ''})"
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


def _e2e_rows(args: argparse.Namespace, specs: dict[str, ModelSpec], width: int, height: int,
              ratio: float) -> list[dict]:
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
        for name in specs:
            frames, seconds = bench.rvmkit_e2e(clip, Path(tmp) / f"c_{name}.mp4", Path(tmp) / f"a_{name}.mp4",
                                               ratio, backend=name, device=args.device, model=args.model,
                                               fp16=args.fp16 and name == "torch")
            ms = 1000 * seconds / frames
            rows.append({"mode": "e2e", "variant": f"rvmkit matte ({name})", "size": f"{width}x{height}",
                         "ratio": ratio, "ms/frame": round(ms, 2), "fps": round(1000 / ms, 2),
                         "vs official": ""})
    return rows


def run(args: argparse.Namespace) -> int:
    from rvmkit import bench

    specs, sizes = check_args(args)
    if args.json:  # before the timings, not after them
        from rvmkit.fileio import require_writable_output

        require_writable_output(args.json)
    rows: list[dict] = []
    for width, height, ratio in sizes:
        if args.mode in ("model", "both"):
            rows += _model_rows(args, specs, width, height, ratio)
        if args.mode in ("e2e", "both"):
            rows += _e2e_rows(args, specs, width, height, ratio)
    print(bench.format_table(rows, ["mode", "variant", "size", "ratio", "ms/frame", "fps", "vs official"]))
    if args.json:
        from rvmkit.fileio import write_atomically

        text = json.dumps({"machine": bench.machine(), "rows": rows}, indent=2)
        write_atomically(Path(args.json), lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
