"""`rvmkit convert`: official RVM ONNX -> TensorRT-ready ONNX (ratio baked in), no torch."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert",
                                   help="bake the ratio into an official RVM ONNX (TensorRT-ready)")
    parser.add_argument("source", metavar="OFFICIAL.onnx")
    parser.add_argument("--downsample-ratio", type=float, default=0.25,
                        help="ratio to bake in (default 0.25)")
    parser.add_argument("--output", required=True,
                        help="OUT.onnx (written simplified when onnxsim is installed)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.onnx")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rvmkit.graph.bake import convert_official

    output = convert_official(Path(args.source), Path(args.output), args.downsample_ratio,
                              overwrite=args.overwrite)
    print(f"wrote {output}")
    return 0
