"""`rvmkit export`: the seed recipe: TensorRT-ready dynamic ONNX (ratio baked in), simplified
to `<stem>_trt.onnx`, then verified against PyTorch and the official ONNX."""

from __future__ import annotations

import argparse

from rvmkit.export import PRECISIONS
from rvmkit.model import VARIANTS
from rvmkit.runtime import DEVICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a TensorRT-ready dynamic ONNX (ratio baked in)")
    parser.add_argument("--model-variant", choices=VARIANTS, default="mobilenetv3")
    parser.add_argument("--checkpoint",
                        help="RVM .pth (default: the cached pretrained weights, fetched if missing)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--opset", type=int, default=12, help="ONNX opset, 11 to 17 (default 12)")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--output", required=True,
                        help="OUT.onnx (must end in .onnx); the simplified model goes to OUT_trt.onnx")
    parser.add_argument("--downsample-ratio", type=float, default=0.25,
                        help="baked into the graph (default 0.25)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim (no _trt.onnx)")
    parser.add_argument("--verify-frames", type=int, default=3, metavar="N",
                        help="recurrent frames per size in the final verification (default 3)")
    parser.add_argument("--video", help="clip for the verification (default: generated frames)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rvmkit import weights
    from rvmkit.cli.verify import print_report
    from rvmkit.export.onnx_export import check_outputs, export_onnx, validate_options
    from rvmkit.export.verify import check_clip, torch_matches_reference, validate_frames, verify_model

    # Every argument is checked before the export: a bad one leaves no file behind.
    validate_options(downsample_ratio=args.downsample_ratio, precision=args.precision, opset=args.opset,
                     device=args.device)
    validate_frames(args.verify_frames, "--verify-frames")
    check_outputs(args.output, simplify=not args.no_simplify, overwrite=args.overwrite,
                  inputs=(args.checkpoint, args.video))
    if args.video is not None:
        check_clip(args.video)
    model = weights.load_model(args.checkpoint, variant=args.model_variant)
    paths = export_onnx(model, Path(args.output), downsample_ratio=args.downsample_ratio,
                        precision=args.precision, opset=args.opset, device=args.device,
                        simplify=not args.no_simplify, overwrite=args.overwrite)
    for path in paths:
        print(f"wrote {path}")
    reference = None
    if args.model_variant == "mobilenetv3":
        official = weights.official_onnx_path()
        if torch_matches_reference(model, official, args.downsample_ratio):
            reference = official
        else:
            print("note: checkpoint differs from the official pretrained weights; "
                  "comparing with PyTorch only")
    report = verify_model(paths[-1], reference=reference, torch_model=model, video=args.video,
                          frames=args.verify_frames)
    return print_report(report, paths[-1])
