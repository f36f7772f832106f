"""Options shared by `rvmkit matte` and `rvmkit batch`: the model, rendering and segment flags, once.

Choices come from the registries (model variants, runtime backends and devices), so a new backend or
variant shows up in every command by itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from rvmkit.contract import LIMITS, check_limit
from rvmkit.errors import RvmkitError
from rvmkit.model import VARIANTS
from rvmkit.options import MatteOptions
from rvmkit.runtime import BACKENDS, DEVICES
from rvmkit.runtime.precision import PRECISIONS

__all__ = ["add_model_options", "add_render_options", "add_segment_options", "limited", "matte_options",
           "number", "within_limit"]


def add_model_options(group: argparse._ArgumentGroup) -> None:
    """--model ... --seq-chunk: which network runs, where, and how."""
    group.add_argument("--model", metavar="PATH",
                       help="official RVM ONNX, TRT-ready ONNX (ratio baked in), .pth checkpoint or TensorRT "
                            "engine (default: pretrained MobileNetV3, fetched on first use)")
    group.add_argument("--model-variant", "--variant", dest="variant", choices=VARIANTS,
                       help="expected .pth variant")
    group.add_argument("--backend", choices=BACKENDS,
                       help="default: onnxruntime (torch for .pth, tensorrt for an engine)")
    group.add_argument("--device", choices=DEVICES, default="cpu", help="default: cpu")
    group.add_argument("--fp16", action="store_true", help="half precision (torch backend on cuda)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="fp32 (default, exact); bf16/int8 only where offered (issue 15: none passes the "
                            "accuracy gate yet, see benchmarks/LEVERS.md)")
    group.add_argument("--downsample-ratio", default="auto", metavar="auto|R",
                       help="R in (0, 1]; auto: downsampled long side ~512 px (default)")
    group.add_argument("--seq-chunk", type=int, default=1, metavar="N",
                       help="frames per inference call, for backends that batch time (torch)")


def add_render_options(group: argparse._ArgumentGroup) -> None:
    """--input-resize, --background and the encoder settings."""
    group.add_argument("--input-resize", type=int, nargs=2, metavar=("W", "H"),
                       help="resize frames before matting")
    group.add_argument("--background", metavar="SPEC",
                       help="colour name, #RRGGBB or R,G,B (default RVM green 120,255,155), image, video "
                            "(looped), or 'transparent' (RGBA: PNG folder, .webm, .mov)")
    group.add_argument("--output-video-mbps", type=float, metavar="MBPS", help="video bitrate")
    group.add_argument("--crf", type=int, help="constant quality for H.264 / VP9 (lower is better)")


def _converted(text: str, convert: Any, what: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _whole(text: str) -> int:
    return _converted(text, int, "a whole number")


def number(text: str) -> float:
    """argparse type: a number; its range is checked where the option is known (one line naming it)."""
    return _converted(text, float, "a number")


def limited(name: str) -> Any:
    """argparse type: a number (whole where LIMITS says so) within `rvmkit.contract.LIMITS[name]`, with
    check_limit's one line otherwise."""
    whole = LIMITS[name][3]

    def parse(text: str) -> float:
        value = _whole(text) if whole else number(text)
        within_limit(name, value, shown=text)
        return value

    return parse


def within_limit(name: str, value: Any, shown: str | None = None) -> None:
    """check_limit for argparse: its one line as a usage error."""
    try:
        check_limit(name, value, shown)
    except RvmkitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_segment_options(group: argparse._ArgumentGroup) -> None:
    """--segments / --warmup."""
    from rvmkit.batch.segments import DEFAULT_WARMUP

    group.add_argument("--segments", type=limited("segments"), default=1, metavar="K",
                       help="split each video into K time segments matted in parallel (default 1)")
    group.add_argument("--warmup", type=limited("warmup"), default=DEFAULT_WARMUP, metavar="W",
                       help=f"frames each segment starts early to settle the recurrent state (default "
                            f"{DEFAULT_WARMUP})")


def matte_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `convert_video` / `run_batch` that the shared options set: the fields of
    `rvmkit.options.MatteOptions`, the one spelling of them."""
    return MatteOptions(model=args.model, variant=args.variant, backend=args.backend, device=args.device,
                        downsample_ratio=args.downsample_ratio,
                        input_resize=tuple(args.input_resize) if args.input_resize else None,
                        output_type=args.output_type, background=args.background,
                        output_video_mbps=args.output_video_mbps, crf=args.crf, seq_chunk=args.seq_chunk,
                        fp16=args.fp16, precision=args.precision).as_dict()
