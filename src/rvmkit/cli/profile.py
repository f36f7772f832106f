"""`rvmkit profile`: TensorRT min/opt/max shapes for src and r1i..r4i, in several formats."""

from __future__ import annotations

import argparse
import shlex
import sys

from rvmkit.trt.profile import FORMATS, compute_profile, format_profile, parse_batch, parse_size

TRADE = ("By default each state's minimum is [1,1,1,1], so the usual all-zero [1,1,1,1] initial state is "
         "accepted; the cost is a loose profile (channels 1..C). --full-states fixes the channels and sets "
         "the minimum to the full-size state at --min; then the first frame must get zero-filled full-size "
         "states, which give identical results (rvmkit's tensorrt backend does this).")


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """--min/--opt/--max/--batch/--full-states/--downsample-ratio, shared with build-engine."""
    parser.add_argument("--min", required=True, metavar="WxH", help="smallest frame size, e.g. 320x240")
    parser.add_argument("--opt", required=True, metavar="WxH", help="frame size to optimize for")
    parser.add_argument("--max", required=True, metavar="WxH", help="largest frame size")
    parser.add_argument("--batch", default="1:1:1", metavar="MIN:OPT:MAX", help="batch sizes (default 1:1:1)")
    parser.add_argument("--full-states", action="store_true",
                        help="states' minimum is the full-size state at --min instead of [1,1,1,1]")
    parser.add_argument("--downsample-ratio", type=float, default=None, metavar="R",
                        help="only for models without a baked ratio; must match a baked one")


def profile_from_args(model: str, args: argparse.Namespace):
    sizes = [parse_size(getattr(args, flag), f"--{flag}") for flag in ("min", "opt", "max")]
    return compute_profile(model, *sizes, batch=parse_batch(args.batch), full_states=args.full_states,
                           ratio=args.downsample_ratio)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile", help="TensorRT optimization-profile shapes for a TRT-ready model",
        description="Print min/opt/max shapes for src and r1i..r4i, following the model's variant and "
                    "baked downsample ratio. " + TRADE)
    parser.add_argument("--model", required=True, help="TRT-ready RVM ONNX (ratio baked in)")
    add_profile_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json, trtexec (a pasteable command), ort-trt (TensorRT EP options), "
                             "fastdeploy (set_trt_input_shape calls)")
    parser.add_argument("--engine", default=None,
                        help="engine path for --format trtexec (default MODEL.engine)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rvmkit.graph.io import has_ratio_input, load_onnx

    profile = profile_from_args(args.model, args)
    print(format_profile(profile, args.format, args.model, args.engine))
    if has_ratio_input(load_onnx(args.model)):
        print(f"note: {args.model} takes downsample_ratio as an input, which TensorRT cannot build with "
              f"dynamic shapes; make it TRT-ready first: rvmkit convert {shlex.quote(args.model)} "
              f"--downsample-ratio {profile.ratio:g} --output MODEL_trt.onnx (see rvmkit check)",
              file=sys.stderr)
    return 0
