"""`rvmkit live`: real-time matting of a camera, a network stream or a file played at its own rate."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rvmkit.cli.options import add_model_options, add_render_options
from rvmkit.cli.options import number as _number  # its range: `check_ranges` (one line naming it)
from rvmkit.contract import LIMITS
from rvmkit.live.loop import LIVE_AUTO_LONG_SIDE

EPILOG = """\
examples:
  rvmkit live /dev/video0 --background beach.jpg --output udp://127.0.0.1:5000
  rvmkit live rtsp://cam.local/stream --output rtmp://127.0.0.1/live/matted --record session.mkv
  rvmkit live talk.mp4 --realtime --loop --output tcp://127.0.0.1:9000 --stats stats.json
  rvmkit live /dev/video0 --virtual-camera
  rvmkit live avfoundation:0 --source-size 1280x720 --source-fps 30 --virtual-camera       # macOS
  rvmkit live "dshow:video=Integrated Camera" --output udp://127.0.0.1:5000                # Windows

Newest frame only: capture never waits for matting. When the machine is slower than the source, frames
are dropped (counted), never queued, so latency stays bounded; every output frame is a source frame with
its own timestamp. The recurrent state carries across dropped frames and restarts when the source
changes size or reconnects. --downsample-ratio auto (the default) gives the network a fixed size, long
side {long_side} px, as live tools do: ratio 0.5 at 640x480, 0.25 at 1280x720; give a ratio for more detail.

Stopping: Ctrl-C or SIGTERM is the normal way to end a live run. Unlike `rvmkit matte` (all or nothing:
an interrupted run publishes nothing), a live run ends cleanly: streams are closed and every recording is
finalized and playable. A status line (fps in/out, dropped, latency p50/p95 from capture to output)
shows on a terminal; a summary is printed at the end.
"""


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return width, height


def _range(name: str) -> str:
    _, low, high, _ = LIMITS[name]
    return f"{low:g} to {high:g}"


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. input_format=mjpeg")
    return key, value


def _set_help(group: argparse._ArgumentGroup, dest: str, text: str) -> None:
    """Live's own help for a shared option whose meaning differs here."""
    for action in group._group_actions:
        if action.dest == dest:
            action.help = text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live", help="matte a camera or a stream in real time",
        description="Matte SOURCE in real time (a camera, a network stream, or a file with --realtime) and "
                    "send the result to streams, recordings and/or a virtual camera.",
        epilog=EPILOG.format(long_side=LIVE_AUTO_LONG_SIDE),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE",
                        help="/dev/videoN, FORMAT:NAME of an FFmpeg device input (avfoundation:0, "
                             "'dshow:video=NAME', v4l2:/dev/video2), a URL (udp://, tcp://, rtsp://, "
                             "rtmp://, http(s)://; srt:// where FFmpeg has libsrt), or a video file with "
                             "--realtime")
    model = parser.add_argument_group("model (as in rvmkit matte)")
    add_model_options(model)
    _set_help(model, "downsample_ratio", f"R in (0, 1]; auto (default): the network sees a long side of "
                                         f"{LIVE_AUTO_LONG_SIDE} px, whatever the source's size")
    _set_help(model, "seq_chunk", "live mattes one frame at a time (the newest): only 1")
    out = parser.add_argument_group("outputs (any number, at least one)")
    out.add_argument("--output", action="append", default=[], metavar="URL",
                     help="stream the composition: udp://, tcp:// (MPEG-TS; srt:// where FFmpeg has "
                          "libsrt) or rtmp(s):// (FLV), H.264 tuned for low latency, a keyframe every second")
    out.add_argument("--output-alpha", action="append", default=[], metavar="URL",
                     help="stream the alpha matte (grey) the same way")
    out.add_argument("--record", action="append", default=[], metavar="PATH",
                     help="record the composition (.mp4/.mkv H.264, .webm VP9, .mov ProRes, or a folder "
                          "of PNGs), finalized however the run ends")
    out.add_argument("--record-alpha", action="append", default=[], metavar="PATH",
                     help="record the alpha matte (a folder of PNGs is lossless)")
    out.add_argument("--virtual-camera", nargs="?", const="", default=None, metavar="DEVICE",
                     help="show the composition as a virtual camera (pip install 'rvmkit[live]'; "
                          "v4l2loopback on Linux); DEVICE picks one, e.g. /dev/video10")
    out.add_argument("--overwrite", action="store_true", help="replace existing recordings / stats file")
    add_render_options(out)
    src = parser.add_argument_group("source")
    src.add_argument("--source-format", metavar="FMT",
                     help="FFmpeg input format, e.g. v4l2, avfoundation, dshow, mpegts "
                          "(default: from SOURCE)")
    src.add_argument("--source-size", type=_size, metavar="WxH", help="ask the camera for this size")
    src.add_argument("--source-fps", type=_number, metavar="FPS",
                     help=f"ask the camera for this rate ({_range('source_fps')})")
    src.add_argument("--source-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                     help="FFmpeg option for the source (repeatable), e.g. input_format=mjpeg, "
                          "rtsp_transport=tcp, fflags=nobuffer")
    src.add_argument("--realtime", action="store_true", help="play a file at its own frame rate")
    src.add_argument("--loop", action="store_true", help="with --realtime: start the file again at its end")
    run = parser.add_argument_group("run")
    run.add_argument("--max-fps", type=_number, metavar="FPS",
                     help=f"matte at most this many frames a second ({_range('max_fps')})")
    run.add_argument("--timeout", type=_number, default=10.0, metavar="S",
                     help="give up on a source (or sink) that does not answer or stalls this long "
                          f"(default 10; {_range('timeout')})")
    run.add_argument("--reconnect", action="store_true",
                     help="when a network source stops or drops, reconnect (backoff 0.5 s to 8 s) "
                          "until stopped")
    run.add_argument("--stats", metavar="FILE.json",
                     help="write per-second fps, drops and latency, and totals")
    run.add_argument("--quiet", action="store_true", help="no status line, notes or summary")
    parser.set_defaults(func=run_command)


def config_from(args: argparse.Namespace) -> Any:
    from rvmkit.errors import RvmkitError
    from rvmkit.live.loop import LiveConfig

    if args.seq_chunk != 1:
        raise RvmkitError("--seq-chunk: live mattes one frame at a time (the newest); leave it at 1")
    return LiveConfig(
        source=args.source, outputs=args.output, alpha_outputs=args.output_alpha, records=args.record,
        alpha_records=args.record_alpha, virtual_camera=args.virtual_camera, background=args.background,
        downsample_ratio=args.downsample_ratio, model=args.model, variant=args.variant, backend=args.backend,
        device=args.device, fp16=args.fp16, precision=args.precision,
        input_resize=tuple(args.input_resize) if args.input_resize else None,
        mbps=args.output_video_mbps, crf=args.crf, source_format=args.source_format,
        source_size=args.source_size, source_fps=args.source_fps, source_options=dict(args.source_option),
        realtime=args.realtime, loop=args.loop, max_fps=args.max_fps, timeout=args.timeout,
        reconnect=args.reconnect, stats=args.stats, overwrite=args.overwrite, quiet=args.quiet)


def run_command(args: argparse.Namespace) -> int:
    from rvmkit.live.run import run_until_stopped

    config = config_from(args)
    report = run_until_stopped(config)
    for path in report.recordings:
        print(f"recorded: {path}")
    if report.totals["frames_in"] == 0 and not config.quiet:
        print("rvmkit live: stopped before the source sent a frame", file=sys.stderr)
    return 0


__all__ = ["register", "run_command"]
