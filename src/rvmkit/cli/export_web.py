"""`rvmkit export-web OUT_DIR`: a static site for live webcam matting in the browser (onnxruntime-web)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-web", help="write a static site that mattes the webcam live in the browser",
        description="Write a self-contained static site (page, onnxruntime-web, one model per ratio) "
                    "that mattes the webcam or a video file live in the browser. Nothing leaves the "
                    "user's machine.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (must not exist, or be empty)")
    parser.add_argument("--ratio", dest="ratios", type=_ratio, action="append", metavar="R",
                        help="downsample ratio in (0, 1] to bake into a model; repeat for several "
                             "(default: 0.25 and 0.5)")
    parser.add_argument("--model", help="official RVM ONNX to convert (default: the pretrained MobileNetV3)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export-web site in OUT_DIR")
    parser.add_argument("--serve", action="store_true",
                        help="then serve OUT_DIR over http with the COOP/COEP headers WASM threads need "
                             "(an existing site is served as it is unless --overwrite)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000,
                        help="port to serve on, 0..65535 (0: any free port; default 8000)")
    parser.set_defaults(func=run)


def _ratio(text: str) -> float:
    """argparse type: a downsample ratio in (0, 1], checked before any work."""
    from rvmkit.contract import validate_ratio
    from rvmkit.errors import RvmkitError

    try:
        return validate_ratio(float(text))
    except (ValueError, RvmkitError):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0 and <= 1") from None


def _port(text: str) -> int:
    """argparse type: a TCP port, 0..65535 (0: any free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number from 0 to 65535")
    return value


def run(args: argparse.Namespace) -> int:
    from rvmkit.web import DEFAULT_RATIOS, MANIFEST
    from rvmkit.web.server import serve_until_stopped, write_until_stopped

    out_dir = Path(args.out_dir)
    existing_site = out_dir.is_dir() and (out_dir / MANIFEST).is_file()
    if not (args.serve and existing_site and not args.overwrite):
        write_until_stopped(out_dir, ratios=tuple(args.ratios or DEFAULT_RATIOS), model=args.model,
                            overwrite=args.overwrite)
        print(f"wrote {out_dir}")
    elif args.ratios or args.model:
        print(f"{out_dir} already holds a site: serving it as it is (add --overwrite to re-export)")
    if args.serve:
        serve_until_stopped(out_dir, args.host, args.port, announce=lambda line: print(line, flush=True))
        return 0
    print(f"serve it over http (from file:// the page cannot run): rvmkit export-web {out_dir} --serve")
    return 0
