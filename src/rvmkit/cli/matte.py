"""`rvmkit matte`: matte a video, an image folder or an image into composition / alpha / foreground.

Also defines the model / render / segment options once, for `rvmkit batch` to share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rvmkit.runtime import BACKENDS, DEVICES

EPILOG = """\
examples:
  rvmkit matte talk.mp4 --output-composition talk_green.mp4
  rvmkit matte talk.mp4 --background transparent --output-composition talk.webm --output-alpha alpha/
  rvmkit matte talk.mp4 --background beach.jpg --output-composition out.mp4 --preview sheet.png

--downsample-ratio auto = min(1, 512 / longest side): 1920x1080 -> 0.267, 1280x720 -> 0.4, up to 512 px -> 1.
A frame that fails to decode stops the run (no partial outputs are kept).
"""


def add_model_options(group: argparse._ArgumentGroup) -> None:
    """--model ... --seq-chunk: which network runs, where, and how (shared with `rvmkit batch`)."""
    group.add_argument("--model", metavar="PATH",
                       help="official RVM ONNX, TRT-ready ONNX (ratio baked in), .pth checkpoint or TensorRT "
                            "engine (default: pretrained MobileNetV3, fetched on first use)")
    group.add_argument("--variant", choices=("mobilenetv3", "resnet50"), help="expected .pth variant")
    group.add_argument("--backend", choices=BACKENDS,
                       help="default: onnxruntime (torch for .pth, tensorrt for an engine)")
    group.add_argument("--device", choices=DEVICES, default="cpu", help="default: cpu")
    group.add_argument("--fp16", action="store_true", help="half precision (torch backend on cuda)")
    group.add_argument("--downsample-ratio", default="auto", metavar="auto|R",
                       help="R in (0, 1]; auto: downsampled long side ~512 px (default)")
    group.add_argument("--seq-chunk", type=int, default=1, metavar="N",
                       help="frames per inference call, for backends that batch time (torch)")


def add_render_options(group: argparse._ArgumentGroup) -> None:
    """--input-resize, --background and the encoder settings (shared with `rvmkit batch`)."""
    group.add_argument("--input-resize", type=int, nargs=2, metavar=("W", "H"),
                       help="resize frames before matting")
    group.add_argument("--background", metavar="SPEC",
                       help="colour name, #RRGGBB or R,G,B (default RVM green 120,255,155), image, video "
                            "(looped), or 'transparent' (RGBA: PNG folder, .webm, .mov)")
    group.add_argument("--output-video-mbps", type=float, metavar="MBPS", help="video bitrate")
    group.add_argument("--crf", type=int, help="constant quality for H.264 / VP9 (lower is better)")


def whole_number(minimum: int) -> Any:
    """argparse type: an int >= minimum (argparse reports anything else as a usage error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value

    return parse


def add_segment_options(group: argparse._ArgumentGroup) -> None:
    """--segments / --warmup (shared with `rvmkit batch`)."""
    from rvmkit.batch.segments import DEFAULT_WARMUP

    group.add_argument("--segments", type=whole_number(1), default=1, metavar="K",
                       help="split each video into K time segments matted in parallel (default 1)")
    group.add_argument("--warmup", type=whole_number(0), default=DEFAULT_WARMUP, metavar="W",
                       help=f"frames each segment starts early to settle the recurrent state (default "
                            f"{DEFAULT_WARMUP})")


def matte_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `convert_video` / `run_batch` that the shared options set."""
    return {"model": args.model, "variant": args.variant, "backend": args.backend, "device": args.device,
            "downsample_ratio": args.downsample_ratio,
            "input_resize": tuple(args.input_resize) if args.input_resize else None,
            "output_type": args.output_type, "background": args.background,
            "output_video_mbps": args.output_video_mbps, "crf": args.crf, "seq_chunk": args.seq_chunk,
            "fp16": args.fp16}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matte", help="remove or replace the background of a video",
        description="Matte INPUT (a video, a folder of images, or an image) with RobustVideoMatting. "
                    "Outputs are written under temporary names and renamed when complete.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="video file, folder of images (sorted), or image")
    add_model_options(parser.add_argument_group("model"))
    io = parser.add_argument_group("input and outputs")
    io.add_argument("--output-composition", metavar="PATH", help="subject over --background")
    io.add_argument("--output-alpha", metavar="PATH", help="alpha matte (grey)")
    io.add_argument("--output-foreground", metavar="PATH", help="predicted foreground colours")
    io.add_argument("--output-type", choices=("video", "png_sequence"),
                    help="default: from each path (folder -> PNGs, .mp4/.mkv H.264, .webm VP9, .mov ProRes)")
    add_render_options(io)
    io.add_argument("--preview", metavar="PATH.png", help="contact sheet: input | alpha | composition")
    io.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    add_segment_options(parser.add_argument_group("scale out (Ray; RAY_ADDRESS joins a cluster)"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rvmkit.api import convert_video

    if args.segments > 1:
        from rvmkit.batch.ray_runner import segmented_converter

        convert_video = segmented_converter(args.segments, args.warmup)  # noqa: F811
    result = convert_video(args.input, args.output_composition, args.output_alpha, args.output_foreground,
                           progress=not args.quiet, overwrite=args.overwrite, preview=args.preview,
                           **matte_options(args))
    if not args.quiet:
        fps = result.frames / result.seconds if result.seconds > 0 else 0.0
        print(f"matted {result.frames} frames in {result.seconds:.1f} s ({fps:.1f} fps, {result.backend}, "
              f"downsample ratio {result.downsample_ratio:.3g})", file=sys.stderr)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        for role, path in result.outputs.items():
            print(f"{role}: {path}")
    return 0
