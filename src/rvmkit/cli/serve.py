"""`rvmkit serve`: matting as a web service (API + browser UI), on the engine and options of `matte`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rvmkit.cli.options import add_model_options, limited, within_limit

EPILOG = """\
examples:
  rvmkit serve                                    # http://127.0.0.1:8000 (UI at /, API docs at /docs)
  rvmkit serve --workers 2 --data-dir /srv/rvmkit --retention 3d
  rvmkit serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"   # other machines: bearer token required
  rvmkit serve --address ray://head:10001        # jobs run on a Ray cluster (rvmkit batch's code)

Jobs and their files live in --data-dir (SQLite + one folder per job); a restart keeps finished jobs and
runs interrupted ones again. API: POST /api/jobs (multipart 'file' + outputs, background,
downsample_ratio, format), GET /api/jobs/{id}[/events], /outputs/{name}, /preview, DELETE /api/jobs/{id}.
"""


def _parsed(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _pixels(text: str) -> int:
    """argparse type: WxH or a pixel count, within LIMITS["max_pixels"]."""
    from rvmkit.serve.config import parse_pixels

    value = _parsed(parse_pixels)(text)
    within_limit("max_pixels", value, shown=text)
    return value


def _retention(text: str) -> float | None:
    """argparse type: a duration (30m, 12h, 7d; 0 keeps jobs forever) within LIMITS["retention"]."""
    from rvmkit.serve.config import parse_duration

    seconds = _parsed(parse_duration)(text)
    if seconds is not None:
        within_limit("retention", seconds, shown=f"{text} ({seconds:g} s)")
    return seconds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="matting as a web service with a browser UI",
        description="Serve matting over HTTP: a browser UI at /, a JSON API at /api (OpenAPI at /docs). "
                    "Needs the 'serve' extra: pip install 'rvmkit[serve]'.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other "
                        "needs --token)")
    server.add_argument("--port", type=limited("port"), default=8000, help="default 8000")
    server.add_argument("--data-dir", type=Path, default=Path("rvmkit-serve"), metavar="DIR",
                        help="jobs database and files (default ./rvmkit-serve)")
    server.add_argument("--workers", type=limited("workers"), default=1, metavar="N",
                        help="jobs run at the same time, each in its own process (default 1)")
    server.add_argument("--token", default=os.environ.get("RVMKIT_SERVE_TOKEN"), metavar="T",
                        help="bearer token every API call must present (default $RVMKIT_SERVE_TOKEN)")
    server.add_argument("--address", metavar="RAY", help="run jobs on this Ray cluster (as rvmkit batch)")
    server.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow this origin to call the API from a browser (repeatable; default none)")
    server.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests addressed to this host name (repeatable; default: the "
                             "bound address and, on loopback, localhost); others get 403")
    server.add_argument("--live-dir", type=Path, metavar="DIR",
                        help="static site to serve at /live (default: built with rvmkit.web when available)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=limited("max_upload_mb"), default=2048.0,
                        metavar="MB", help="largest upload request, all its parts together (default 2048)")
    limits.add_argument("--max-duration", type=limited("max_duration"), default=600.0, metavar="S",
                        help="seconds of video (default 600)")
    limits.add_argument("--max-frames", type=limited("max_frames"), default=36_000, metavar="N")
    limits.add_argument("--max-pixels", type=_pixels, default=3840 * 2160, metavar="WxH|N",
                        help="largest frame (default 3840x2160)")
    limits.add_argument("--max-queued", type=limited("max_queued"), default=32, metavar="N",
                        help="jobs waiting before new uploads get 429 (default 32)")
    limits.add_argument("--min-free-mb", type=limited("min_free_mb"), default=256.0, metavar="MB",
                        help="free disk space an upload must leave (default 256)")
    limits.add_argument("--retention", type=_retention, default=7 * 86400.0, metavar="AGE",
                        help="remove ended jobs older than this: 30m, 12h, 7d (default); 0 keeps them")
    add_model_options(parser.add_argument_group("model (for every job; jobs choose the ratio)"))
    parser.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> Any:
    from rvmkit.options import MatteOptions
    from rvmkit.serve.config import MB, ServeConfig

    model = str(Path(args.model).expanduser().absolute()) if args.model else None
    matte = MatteOptions(model=model, variant=args.variant, backend=args.backend, device=args.device,
                         fp16=args.fp16, precision=args.precision, seq_chunk=args.seq_chunk,
                         downsample_ratio=args.downsample_ratio)
    return ServeConfig(data_dir=args.data_dir.expanduser().absolute(), host=args.host, port=args.port,
                       workers=args.workers, token=args.token or None, address=args.address,
                       max_upload_bytes=int(args.max_upload_mb * MB), max_duration_s=args.max_duration,
                       max_frames=args.max_frames, max_pixels=args.max_pixels, max_queued=args.max_queued,
                       retention_s=args.retention, min_free_bytes=int(args.min_free_mb * MB),
                       cors_origins=tuple(args.cors_origin),
                       allowed_hosts=tuple(args.allow_host), live_dir=args.live_dir,
                       matte=matte).checked()


def run(args: argparse.Namespace) -> int:
    from rvmkit.serve.run import serve

    serve(config_from(args), args.model, announce=lambda line: print(line, flush=True))
    return 0
