"""Video I/O for rvmkit (PyAV only, no torch): read frames, write outputs, composite, preview."""

from rvmkit.video.composite import (
    DEFAULT_GREEN,
    Background,
    alpha_u8,
    composite,
    foreground_u8,
    parse_background,
    rgba,
)
from rvmkit.video.preview import contact_sheet, sample_indices
from rvmkit.video.reader import DEFAULT_IMAGE_FPS, Frame, FrameSource, VideoInfo, open_source
from rvmkit.video.writer import FrameSink, encode_png, open_sink, resolve_output

__all__ = [
    "DEFAULT_GREEN", "DEFAULT_IMAGE_FPS", "Background", "Frame", "FrameSink", "FrameSource", "VideoInfo",
    "alpha_u8", "composite", "contact_sheet", "encode_png", "foreground_u8", "open_sink", "open_source",
    "parse_background", "resolve_output", "rgba", "sample_indices",
]
