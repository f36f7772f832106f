"""`rvmkit bench`: model-only and end-to-end speed per backend and resolution, as a table.

The arguments only; the benchmark itself is `rvmkit.bench`."""

from __future__ import annotations

import argparse
import sys

from rvmkit.bench import DEFAULT_SIZES, BenchOptions
from rvmkit.runtime import BACKENDS, DEVICES

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


def bench_options(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(input=args.input, backends=tuple(args.backend), device=args.device, fp16=args.fp16,
                        model=args.model, sizes=tuple(args.sizes) if args.sizes else None, frames=args.frames,
                        mode=args.mode, threads=args.threads, json=args.json)


def run(args: argparse.Namespace) -> int:
    from rvmkit import bench

    rows = bench.run_bench(bench_options(args))
    print(bench.format_table(rows, bench.TABLE_COLUMNS))
    if args.json:
        bench.write_json(args.json, rows)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
