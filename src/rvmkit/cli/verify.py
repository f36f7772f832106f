"""`rvmkit verify`: run an RVM ONNX with ONNX Runtime over recurrent frames at several sizes and
compare it with the official ONNX (or --reference), the PyTorch model and, with --backend, the model on
another CPU backend or precision; exit 1 above tolerance. Every pair's alpha difference is also given in
RVM's evaluation metrics (MAD, MSE, Grad, dtSSD); a bf16 runner is judged on those."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from rvmkit.runtime.registry import VERIFY_BACKENDS

if TYPE_CHECKING:
    from rvmkit.export.verify import VerifyReport



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify", help="compare an RVM ONNX with the official model and PyTorch")
    parser.add_argument("model", metavar="MODEL.onnx")
    parser.add_argument("--reference", help="reference RVM ONNX (default: the official one, for mobilenetv3)")
    parser.add_argument("--checkpoint", help="PyTorch weights to compare with (default: cached pretrained, "
                        "for mobilenetv3)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--video", help="clip whose frames are resized to each size (default: generated)")
    parser.add_argument("--frames", type=int, default=3, help="recurrent frames per size (default 3)")
    parser.add_argument("--downsample-ratio", type=float,
                        help="ratio for a model with a downsample_ratio input (default 0.25)")
    parser.add_argument("--backend", choices=VERIFY_BACKENDS,
                        help="also run the model on this CPU backend (onnxruntime: the fast path matte runs)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="precision of the --backend runner (bf16 / fp16: openvino, on a CPU with "
                        "AMX_BF16 or AVX512_BF16 / AVX512_FP16; judged on RVM's metrics: within 10%% of "
                        "RVM's own error)")
    parser.set_defaults(func=run)


def _torch_model(args: argparse.Namespace, variant: str | None):
    if args.no_torch or (args.checkpoint is None and variant != "mobilenetv3"):
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        print("note: torch is not installed; skipping the PyTorch comparison")
        return None
    from rvmkit import weights

    return weights.load_model(args.checkpoint, variant=variant)


def run(args: argparse.Namespace) -> int:
    from rvmkit import weights
    from rvmkit.export.verify import check_clip, validate_frames, verify_model
    from rvmkit.graph.io import require_rvm_onnx, variant_of

    validate_frames(args.frames)
    if args.precision != "fp32" and args.backend is None:
        args.backend = "openvino"
    variant = variant_of(require_rvm_onnx(args.model))
    if args.video is not None:
        check_clip(args.video)  # before loading the PyTorch model
    reference = args.reference
    if reference is None and variant == "mobilenetv3":
        reference = weights.official_onnx_path()
    report = verify_model(args.model, reference=reference, torch_model=_torch_model(args, variant),
                          video=args.video, frames=args.frames, downsample_ratio=args.downsample_ratio,
                          backend=args.backend, precision=args.precision)
    return print_report(report, args.model)


def print_report(report: VerifyReport, model_path: str | os.PathLike) -> int:
    """Print the comparison table; exit status 1 (with one error line) when a tolerance is exceeded."""
    print(report.table())
    if not report.ok:
        print(f"rvmkit: error: {model_path}: verification failed ({report.failure()})", file=sys.stderr)
        return 1
    return 0
