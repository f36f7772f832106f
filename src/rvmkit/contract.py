"""What every room agrees on about an RVM model: tensor names and axes, state channels, variants, and
every downsample-ratio rule (parse, auto, resolve, the downsampled size, the state sizes), and the range
of every numeric option of every command (LIMITS, check_limit).

Names and numbers only (numpy, no torch, no onnx), so the graph tools, the TensorRT tools, the backends
and the front-ends cannot disagree: each rule is written once, with one ratio tolerance.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from rvmkit.errors import RvmkitError, describe_path

VARIANTS = ("mobilenetv3", "resnet50")

INPUT_NAMES = ["src", "r1i", "r2i", "r3i", "r4i"]
OUTPUT_NAMES = ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]
STATE_INPUTS = tuple(INPUT_NAMES[1:])  # r1i..r4i
STATE_OUTPUTS = tuple(OUTPUT_NAMES[2:])  # r1o..r4o
STATE_LEVELS = 4
RATIO_INPUT = "downsample_ratio"  # the official models' extra float input
RATIO_METADATA_KEY = "rvmkit.downsample_ratio"

# Exactly the seed's dynamic_axes (../shared/seed): one distinct set of names per tensor.
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "src": {0: "batch_size0", 2: "height0", 3: "width0"},
    "fgr": {0: "batch_size1", 2: "height1", 3: "width1"},
    "pha": {0: "batch_size2", 2: "height2", 3: "width2"},
    **{f"r{k}i": {0: f"batch_size{k + 2}", 1: f"channels{k + 2}", 2: f"height{k + 2}", 3: f"width{k + 2}"}
       for k in range(1, 5)},
    **{f"r{k}o": {0: f"batch_size{k + 6}", 2: f"height{k + 6}", 3: f"width{k + 6}"} for k in range(1, 5)},
}

# Recurrent state channels per variant (r1..r4), for building full-size states.
STATE_CHANNELS = {"mobilenetv3": (16, 20, 40, 64), "resnet50": (16, 32, 64, 128)}


def is_torch_model(value: Any) -> bool:
    """An in-memory model (torch.nn.Module or alike), told apart without importing torch."""
    return hasattr(value, "state_dict") and not isinstance(value, (str, os.PathLike))


# ---------------------------------------------------------------------------------------------
# Numeric options: one range each, checked before any work

#: the largest frame side (--input-resize, bench sizes): frames larger than 16K are refused rather than
#: left to fail an allocation
MAX_SIDE = 16384

#: megabytes in bytes (serve's sizes are typed in MB)
MB = 1024 * 1024

#: every numeric option of `matte`, `batch`, `convert_video`, `live` and `serve`: (how messages name it,
#: lowest, highest, whole number?), in the units the user types. A value outside can never work, or makes
#: the machine allocate without bound (--seq-chunk frames are held at once; each segment and each worker
#: is a Ray job).
LIMITS: dict[str, tuple[str, float, float, bool]] = {
    "seq_chunk": ("seq chunk", 1, 64, True),
    "output_video_mbps": ("output video mbps", 0.01, 1000, False),  # 10 kbit/s to 1 Gbit/s
    "crf": ("crf", 0, 63, True),  # VP9's range; H.264's is 0 to 51 (checked with the codec)
    "input_resize": ("input resize", 1, MAX_SIDE, True),
    "num_workers": ("num workers", 1, 4096, True),  # Ray actors of `batch`
    "compat_num_workers": ("num workers", 0, 1024, True),  # convert_video's, unused (RVM's DataLoader's)
    "cpus_per_worker": ("cpus per worker", 1, 1024, True),
    "segments": ("segments", 1, 4096, True),
    "warmup": ("warm-up", 0, 100_000, True),
    # `rvmkit live`'s own: beyond these a value can never work or costs without bound (a camera asked for
    # 100000 fps, a timeout of 1e300 s that overflows FFmpeg's microseconds or one too short for any
    # packet, a --max-fps wait longer than a second between frames that holds up the end of the source)
    "source_fps": ("--source-fps", 0.1, 1000, False),
    "max_fps": ("--max-fps", 1, 1000, False),
    "timeout": ("--timeout", 0.1, 3600, False),
    "source_size": ("--source-size", 1, MAX_SIDE, True),  # each side
    # `rvmkit serve`'s: far beyond any real use, but bounded (each worker is a process, each queued job a
    # folder); sizes in MB, durations in seconds
    "port": ("--port", 1, 65535, True),
    "workers": ("--workers", 1, 64, True),
    "max_queued": ("--max-queued", 1, 10_000, True),
    "max_upload_mb": ("--max-upload-mb", 0.001, 1024 * 1024, False),  # 1 kB to 1 TiB
    "max_duration": ("--max-duration", 0.001, 7 * 86400, False),  # seconds of video, up to 7 days
    "max_frames": ("--max-frames", 1, 10_000_000, True),
    "max_pixels": ("--max-pixels", 1, MAX_SIDE * MAX_SIDE, True),  # per frame
    "min_free_mb": ("--min-free-mb", 0, 1024 * 1024, False),  # up to 1 TiB
    "retention": ("--retention", 1, 100 * 365 * 86400, False),  # seconds, up to 100 years
}


def check_limit(name: str, value: Any, shown: str | None = None) -> None:
    """`value` within LIMITS[name], else a one-line RvmkitError naming the option and its range; `shown`:
    the value as the user typed it, when that differs (a duration '7d', a size '80x60')."""
    label, low, high, whole = LIMITS[name]
    try:
        number = float(value)
        ok = math.isfinite(number) and low <= number <= high and (not whole or int(value) == value)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        what = "a whole number" if whole else "a number"
        raise RvmkitError(f"{label} {value if shown is None else shown}: must be {what} from "
                          f"{limit_text(low)} to {limit_text(high)}")


def limit_text(bound: float) -> str:
    """A range's bound in full (1048576, not :g's 1.04858e+06)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


# ---------------------------------------------------------------------------------------------
# Downsample ratio

#: relative tolerance under which two ratios are the same one (a ratio baked into a graph as float32,
#: or typed by a user with fewer digits, still matches the model's)
RATIO_TOLERANCE = 1e-4

#: `auto` ratio: the downsampled long side is at most this many pixels (RVM's convert_video rule)
AUTO_RATIO_LONG_SIDE = 512
#: `auto` ratio in `rvmkit live`: the network sees a fixed size, this long side in pixels, as the live
#: tools run it, so a 720p or 1080p source costs what 640x480 does (ratio 0.5 there). matte's auto (long
#: side 512, RVM's rule) would run 640x480 at 0.8, 2.6 times the pixels, at about a third of the rate.
LIVE_AUTO_LONG_SIDE = 320


def same_ratio(a: float, b: float) -> bool:
    """True when ratios `a` and `b` are the same within RATIO_TOLERANCE."""
    return math.isclose(float(a), float(b), rel_tol=RATIO_TOLERANCE)


#: the smallest ratio that leaves a pixel of a MAX_SIDE frame (smaller ones shrink every frame to nothing)
MIN_RATIO = 1 / MAX_SIDE


def _checked_ratio(ratio: float, shown: object, alternative: str = "") -> float:
    if not math.isfinite(ratio) or not 0.0 < ratio <= 1.0:
        raise RvmkitError(f"downsample ratio {shown}: must be > 0 and <= 1{alternative}")
    if ratio < MIN_RATIO:
        raise RvmkitError(f"downsample ratio {shown}: below 1/{MAX_SIDE}, it shrinks every frame (at most "
                          f"{MAX_SIDE} px a side) to nothing; use a larger ratio{alternative}")
    return ratio


def validate_ratio(ratio: float) -> float:
    """0 < ratio <= 1 (a number, never 'auto': a ratio to bake into a graph), else a one-line RvmkitError."""
    ratio = float(ratio)
    return _checked_ratio(ratio, f"{ratio:g}")


def parse_ratio(value: str | float | None) -> float | None:
    """'auto'/None -> None (decided per input), else a float in (0, 1] or a one-line RvmkitError."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise RvmkitError(f"downsample ratio {value!r}: expected 'auto' or a number in (0, 1]") from None
    return _checked_ratio(ratio, value, " (or 'auto')")


def auto_downsample_ratio(width: int, height: int) -> float:
    """RVM's rule (its convert_video with downsample_ratio=None): min(1, 512 / max(W, H)), so the
    downsampled long side is about 512 px and inputs up to 512 px run at full resolution.
    E.g. 3840x2160 -> 0.133, 1920x1080 -> 0.267, 1280x720 -> 0.4, 640x480 -> 0.8, 512x512 -> 1."""
    if width <= 0 or height <= 0:
        raise RvmkitError(f"frame size {width}x{height}: must be positive")
    return min(1.0, AUTO_RATIO_LONG_SIDE / max(width, height))


def live_auto_ratio(width: int, height: int) -> float:
    """`rvmkit live`'s auto rule: min(1, 320 / max(W, H)), a fixed network size whatever the source's
    (640x480 -> 0.5, 1280x720 -> 0.25, 1920x1080 -> 0.167)."""
    if width <= 0 or height <= 0:
        raise RvmkitError(f"frame size {width}x{height}: must be positive")
    return min(1.0, LIVE_AUTO_LONG_SIDE / max(width, height))


def downsampled(size: int, ratio: float) -> int:
    """floor(size * ratio) in float32, as Resize with scales computes it; unchanged at ratio 1."""
    if ratio == 1.0:
        return size
    return int(math.floor(np.float32(size) * np.float32(ratio)))


def state_sizes(height: int, width: int, ratio: float) -> list[tuple[int, int]]:
    """(h, w) of r1..r4 for a frame of height x width: ceil(d / 2) per level from the downsampled frame
    (the encoder's stride-2 convolutions and the decoder's ceil_mode AvgPool all round up)."""
    h, w = downsampled(height, ratio), downsampled(width, ratio)
    sizes = []
    for _ in range(STATE_LEVELS):
        h, w = -(-h // 2), -(-w // 2)
        sizes.append((h, w))
    return sizes


def resolve_ratio(requested: str | float | None, width: int, height: int, baked: float | None = None,
                  model_label: str = "model", input_label: str | os.PathLike = "input") -> float:
    """The ratio to run at: `baked` (a TRT-ready ONNX's or an engine's) when there is one, and asking
    for another is an error; else the requested one; else `auto_downsample_ratio`. A ratio that leaves
    no pixel of the `input_label` frame is an error."""
    ratio = parse_ratio(requested)
    if baked is not None:
        if ratio is not None and not same_ratio(ratio, baked):
            raise RvmkitError(f"{describe_path(model_label)}: downsample ratio {baked:g} is baked into this "
                              f"model; cannot run it at {ratio:g} (use --downsample-ratio auto or {baked:g}, "
                              "or export the model again for that ratio)")
        ratio = float(baked)
    elif ratio is None:
        ratio = auto_downsample_ratio(width, height)
    if downsampled(width, ratio) < 1 or downsampled(height, ratio) < 1:
        if baked is not None:
            remedy = "this model's ratio is baked in: use --input-resize, or export it with a larger ratio"
        else:
            remedy = "use a larger ratio (up to 1)" if parse_ratio(requested) is None else \
                "use a larger ratio, or auto"
        raise RvmkitError(f"{describe_path(input_label)}: downsample ratio {ratio:g} shrinks its "
                          f"{width}x{height} frames to nothing; {remedy}")
    return ratio
