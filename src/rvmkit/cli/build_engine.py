"""`rvmkit build-engine`: build a TensorRT engine for a TRT-ready RVM ONNX and a shape profile."""

from __future__ import annotations

import argparse

from rvmkit.cli.profile import TRADE, add_profile_arguments, profile_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build a TensorRT engine (needs TensorRT and an NVIDIA GPU)",
        description="Check the model (refusing one that is not ready for TensorRT), then build a serialized "
                    "engine with one optimization profile and write it with a .json sidecar (baked ratio, "
                    "profile). " + TRADE)
    parser.add_argument("model", help="TRT-ready RVM ONNX (ratio baked in)")
    add_profile_arguments(parser)
    parser.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    parser.add_argument("--workspace", type=float, default=None, metavar="GiB",
                        help="builder workspace limit")
    parser.add_argument("--output", "-o", required=True, help="engine file to write, e.g. rvm.engine")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing engine and sidecar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rvmkit.trt.engine import build_engine, validate_workspace

    if args.workspace is not None:
        validate_workspace(args.workspace)  # before the model is read or TensorRT imported
    profile = profile_from_args(args.model, args)
    path = build_engine(args.model, args.output, profile, fp16=args.fp16, workspace_gib=args.workspace,
                        verbose=args.debug, overwrite=args.overwrite)
    print(path)
    return 0
