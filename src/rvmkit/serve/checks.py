"""What a job may ask for, checked before it is accepted: the form fields, then the upload itself
(probed with rvmkit's own reader, so "not a video" carries FFmpeg's reason), the server's limits, and
the outputs exactly as `rvmkit matte` would check them. Every refusal is a 422 saying what is wrong.

The limits are judged on what the streams really hold, not on what the header claims: the frames the
reader counts from the packets, and the time the video packets really span (a header may claim one
second for ten minutes of video); the worker stops a job whose frames still run past the limit."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from rvmkit import api
from rvmkit.errors import RvmkitError
from rvmkit.options import FORMATS, ROLES, output_paths
from rvmkit.runtime import parse_ratio, resolve_model, resolve_ratio
from rvmkit.serve.config import ServeConfig
from rvmkit.serve.upload import UploadError
from rvmkit.video.composite import is_transparent, parse_background, parse_colour
from rvmkit.video.reader import open_source


def job_options(fields: dict[str, str], background_file: str | None, config: ServeConfig) -> dict[str, Any]:
    """The job's options from the form: outputs, format, downsample_ratio, background."""
    roles = [role.strip().lower() for role in fields.get("outputs", "composition").split(",") if role.strip()]
    roles = list(dict.fromkeys(roles))
    if not roles or any(role not in ROLES for role in roles):
        raise UploadError(422, f"outputs {fields.get('outputs')!r}: a comma list of {', '.join(ROLES)}")
    fmt = fields.get("format", "").strip().lower().lstrip(".")
    background = fields.get("background", "").strip() or None
    transparent = background is not None and is_transparent(background)
    if not fmt:
        fmt = "webm" if transparent else "mp4"
    if fmt not in FORMATS:
        raise UploadError(422, f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if background is not None and background_file is not None:
        raise UploadError(422, "give a background colour or a background image, not both")
    if background is not None and not transparent and parse_colour(background) is None:
        raise UploadError(422, f"background {background!r}: a colour name, #RRGGBB, R,G,B or 'transparent' "
                               "(send an image as the file field 'background_file')")
    ratio = fields.get("downsample_ratio", "").strip() or config.matte.downsample_ratio
    try:
        parse_ratio(ratio)
    except RvmkitError as exc:
        raise UploadError(422, str(exc)) from None
    return {"outputs": roles, "format": fmt, "downsample_ratio": ratio,
            "background": "transparent" if transparent else background, "background_file": background_file}


def check_upload(input_path: Path, name: str, options: dict[str, Any], outputs_dir: Path,
                 background_path: Path | None, config: ServeConfig) -> dict[str, Any]:
    """Probe the upload and check limits and outputs; return what the job's page shows about the input.
    Blocking (it reads the file): run it in a thread."""
    try:
        with open_source(input_path) as source:
            info = source.info
    except RvmkitError as exc:
        raise UploadError(422, str(exc).replace(str(input_path), name)) from None
    span = video_span(input_path)
    check_limits(info.width, info.height, info.frame_count, info.fps, config, span)
    try:
        baked, label = model_ratio(config.matte.model, config.matte.backend)
        ratio = resolve_ratio(options["downsample_ratio"], info.width, info.height, baked, label, name)
        background = str(background_path) if background_path is not None else options["background"]
        requested = {role: None for role in ROLES}
        requested.update(output_paths(outputs_dir, options["outputs"], options["format"]))
        output_type = "png_sequence" if options["format"] == "png" else "video"
        with parse_background(background, info.width, info.height) as bg:
            api.plan_targets(requested, info, output_type, bg.transparent, overwrite=True)
    except RvmkitError as exc:
        message = str(exc).replace(str(outputs_dir) + "/", "")
        if background_path is not None:
            message = message.replace(str(background_path), "the background image")
        raise UploadError(422, message) from None
    seconds = float(info.frame_count / info.fps) if info.frame_count and info.fps else None
    seconds = max(seconds, span or 0.0) if seconds else seconds
    return {"width": info.width, "height": info.height, "frames": info.frame_count,
            "fps": float(info.fps) if info.fps else None, "duration_s": seconds, "audio": info.has_audio,
            "downsample_ratio": round(ratio, 4)}


@functools.lru_cache(maxsize=4)
def model_ratio(model: str | None, backend: str | None) -> tuple[float | None, str]:
    """(ratio baked into the server's model, its label), read once rather than per upload."""
    spec = resolve_model(model, backend)
    return spec.baked_ratio, spec.label


def video_span(path: Path) -> float | None:
    """Seconds the video stream's packets really span (first start to last end), read from every packet's
    timestamps without decoding; None when it has none to tell."""
    import av

    start = stop = None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None or not packet.size:
                    continue
                begin = float(packet.pts * packet.time_base)
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                start = begin if start is None else min(start, begin)
                stop = end if stop is None else max(stop, end)
    except (av.FFmpegError, IndexError, OSError):
        return None
    if start is None or not math.isfinite(stop - start):
        return None
    return stop - start


def check_limits(width: int, height: int, frames: int | None, fps: Any, config: ServeConfig,
                 span: float | None = None) -> None:
    """422 naming the first limit the input is over (pixels, frames, duration: the longer of frames/fps
    and the time its packets really span)."""
    if width * height > config.max_pixels:
        raise UploadError(422, f"frame size {width}x{height} ({width * height} pixels) is over this server's "
                               f"limit of {config.max_pixels} pixels", limit="pixels")
    if frames is not None and frames > config.max_frames:
        raise UploadError(422, f"{frames} frames is over this server's limit of {config.max_frames} frames",
                          limit="frames")
    seconds = max(frames / float(fps) if frames is not None and fps else 0.0, span or 0.0)
    if seconds > config.max_duration_s:
        raise UploadError(422, f"duration {seconds:.1f} s is over this server's limit of "
                               f"{config.max_duration_s:g} s", limit="duration")
