"""`rvmkit matte`: matte a video, an image folder or an image into composition / alpha / foreground."""

from __future__ import annotations

import argparse
import sys

from rvmkit.cli.options import (
    add_model_options,
    add_render_options,
    add_segment_options,
    matte_options,
)
from rvmkit.video.writer import OUTPUT_TYPES

EPILOG = """\
examples:
  rvmkit matte talk.mp4 --output-composition talk_green.mp4
  rvmkit matte talk.mp4 --background transparent --output-composition talk.webm --output-alpha alpha/
  rvmkit matte talk.mp4 --background beach.jpg --output-composition out.mp4 --preview sheet.png
  rvmkit matte photo.jpg --background transparent --output-composition cutout.png --output-alpha alpha.png

--downsample-ratio auto = min(1, 512 / longest side): 1920x1080 -> 0.267, 1280x720 -> 0.4, up to 512 px -> 1.
A frame that fails to decode stops the run (no partial outputs are kept).
"""


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
    io.add_argument("--output-type", choices=OUTPUT_TYPES,
                    help="default: from each path (folder -> PNGs, .mp4/.mkv H.264, .webm VP9, .mov ProRes; "
                         ".png/.webp/.tif/.jpg: one image, for a one-frame input)")
    add_render_options(io)
    io.add_argument("--preview", metavar="PATH.png", help="contact sheet: input | alpha | composition")
    io.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    add_segment_options(parser.add_argument_group("scale out (Ray; RAY_ADDRESS joins a cluster)"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rvmkit.batch import converter

    convert = converter(args.segments, args.warmup)
    result = convert(args.input, args.output_composition, args.output_alpha, args.output_foreground,
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
