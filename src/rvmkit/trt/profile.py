"""TensorRT optimization profiles (min/opt/max shapes) for `src` and the four recurrent states.

The states follow the *downsampled* frame: d = floor(H * ratio) (Resize's scale semantics, computed in
float32 as ONNX Runtime does; no resize at ratio 1), then r1 = ceil(d/2), r2 = ceil(r1/2),
r3 = ceil(r2/2), r4 = ceil(r3/2) (the encoder's stride-2 convolutions with k3/pad1, k5/pad2 or
k7/pad3, and the decoder's ceil_mode AvgPool, all round up). Channels come from the model (r1o..r4o
output dims, else the variant's table).

**[1,1,1,1] vs full states.** By default a state's minimum is [1,1,1,1], so the seed's initial
all-zero [1,1,1,1] state is a legal input and any caller that starts streams that way works. The cost
is a loose profile: channels range over 1..C and spatial dims over 1..max, so TensorRT tunes kernels
for a range it never sees after the first frame. `--full-states` fixes the channels and makes the
minimum the full-size state at the min frame; the first frame must then be fed zero-filled
full-size states, which give identical outputs (a zero state broadcasts exactly like [1,1,1,1]
zeros). Use it when you control the runtime (rvmkit's TensorRT backend does this automatically).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvmkit.contract import (
    INPUT_NAMES,
    STATE_CHANNELS,
    STATE_LEVELS,
    downsampled,
    same_ratio,
    state_sizes,
    validate_ratio,
)
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.graph.io import baked_ratio, require_rvm_onnx, variant_of

FORMATS = ("json", "trtexec", "ort-trt", "fastdeploy")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max shape per input name (src, r1i..r4i), in INPUT_NAMES order."""

    shapes: dict[str, tuple[Shape, Shape, Shape]]
    ratio: float
    channels: tuple[int, ...]
    full_states: bool = False

    def as_json(self) -> dict[str, dict[str, list[int]]]:
        return {name: {"min": list(lo), "opt": list(opt), "max": list(hi)}
                for name, (lo, opt, hi) in self.shapes.items()}

    def shape_string(self, which: str) -> str:
        """'src:1x3x480x640,r1i:1x16x60x80,...' (trtexec and ORT TensorRT EP syntax); which = min/opt/max."""
        index = ("min", "opt", "max").index(which)
        return ",".join(f"{name}:{'x'.join(map(str, triple[index]))}" for name, triple in self.shapes.items())


# ---------------------------------------------------------------------------------------------
# Parsing user input


def parse_size(text: str, flag: str = "size") -> tuple[int, int]:
    """'640x480' -> (640, 480); one-line RvmkitError for anything else."""
    match = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*", text or "")
    if not match:
        raise RvmkitError(f"{flag} {text!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0:
        raise RvmkitError(f"{flag} {text!r}: width and height must be positive")
    return width, height


def parse_batch(text: str) -> tuple[int, int, int]:
    """'1:2:4' (or a single '2') -> (min, opt, max), positive and ordered."""
    parts = (text or "").split(":")
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in parts):
        raise RvmkitError(f"--batch {text!r}: expected MIN:OPT:MAX, e.g. 1:1:4")
    lo, opt, hi = (int(p) for p in parts)
    if min(lo, opt, hi) <= 0:
        raise RvmkitError(f"--batch {text!r}: batch sizes must be positive")
    if not lo <= opt <= hi:
        raise RvmkitError(f"--batch {text!r}: must satisfy min <= opt <= max")
    return lo, opt, hi


def _check_order(sizes: dict[str, tuple[int, int]]) -> None:
    (_, lo), (_, opt), (_, hi) = sizes.items()
    for axis, label in ((0, "width"), (1, "height")):
        if not lo[axis] <= opt[axis] <= hi[axis]:
            raise RvmkitError(f"--min/--opt/--max: {label} must satisfy min <= opt <= max "
                              f"(got {lo[axis]}, {opt[axis]}, {hi[axis]})")


# ---------------------------------------------------------------------------------------------
# Shapes the network produces


def state_channels(model: Any) -> tuple[int, ...]:
    """Channels of r1..r4: fixed dims of r1o..r4o when the graph has them, else the variant's table."""
    outputs = {o.name: o for o in model.graph.output}
    found = []
    for k in range(1, STATE_LEVELS + 1):
        value = outputs.get(f"r{k}o")
        dims = value.type.tensor_type.shape.dim if value is not None else []
        found.append(dims[1].dim_value if len(dims) == 4 and dims[1].dim_value > 0 else 0)
    if all(found):
        return tuple(found)
    return STATE_CHANNELS[variant_of(model) or "resnet50"]


def model_ratio(model: Any, path: str | os.PathLike, override: float | None) -> float:
    """The baked ratio; `override` must agree with it, and is required for a model without one."""
    baked = baked_ratio(model)
    if override is not None:
        override = validate_ratio(override)
        if baked is not None and not same_ratio(baked, override):
            raise RvmkitError(f"{describe_path(path)}: downsample ratio {baked:g} is baked in; "
                              f"--downsample-ratio {override:g} disagrees")
        return baked if baked is not None else override
    if baked is None:
        raise RvmkitError(f"{describe_path(path)}: no baked downsample ratio (official model?); pass "
                          "--downsample-ratio or export a TensorRT-ready model with `rvmkit convert`")
    return baked


def compute_profile(model_or_path: Any, min_size: tuple[int, int], opt_size: tuple[int, int],
                    max_size: tuple[int, int], batch: tuple[int, int, int] = (1, 1, 1),
                    full_states: bool = False, ratio: float | None = None) -> ShapeProfile:
    """Profile for an RVM ONNX (model or path); sizes are (width, height)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        model = require_rvm_onnx(path)
    else:
        path, model = "<model>", model_or_path
    sizes = {"min": min_size, "opt": opt_size, "max": max_size}
    _check_order(sizes)
    ratio = model_ratio(model, path, ratio)
    channels = state_channels(model)
    tiny = [f"{w}x{h}" for w, h in sizes.values() if downsampled(w, ratio) < 1 or downsampled(h, ratio) < 1]
    if tiny:
        raise RvmkitError(f"size {tiny[0]}: smaller than one pixel after downsampling by {ratio:g}")
    per_size = {key: state_sizes(h, w, ratio) for key, (w, h) in sizes.items()}
    shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
    shapes["src"] = tuple((b, 3, h, w) for b, (w, h) in zip(batch, sizes.values(), strict=True))  # type: ignore
    for k in range(STATE_LEVELS):
        full = [(b, channels[k], *per_size[key][k]) for b, key in zip(batch, sizes, strict=True)]
        low = full[0] if full_states else (1, 1, 1, 1)
        shapes[INPUT_NAMES[k + 1]] = (tuple(low), tuple(full[1]), tuple(full[2]))
    return ShapeProfile(shapes, ratio, channels, full_states)


# ---------------------------------------------------------------------------------------------
# Output formats


def default_engine_path(model_path: str | os.PathLike) -> str:
    return str(Path(model_path).with_suffix(".engine"))


def format_profile(profile: ShapeProfile, fmt: str, model_path: str | os.PathLike = "MODEL.onnx",
                   engine_path: str | os.PathLike | None = None) -> str:
    """The profile as json, a trtexec command line, ORT TensorRT EP options, or FastDeploy calls."""
    if fmt == "json":
        return json.dumps(profile.as_json(), indent=2)
    if fmt == "trtexec":
        engine = engine_path or default_engine_path(model_path)
        return " ".join([
            "trtexec", f"--onnx={shlex.quote(os.fspath(model_path))}",
            f"--minShapes={profile.shape_string('min')}",
            f"--optShapes={profile.shape_string('opt')}",
            f"--maxShapes={profile.shape_string('max')}",
            f"--saveEngine={shlex.quote(os.fspath(engine))}",
        ])
    if fmt == "ort-trt":
        return json.dumps({f"trt_profile_{which}_shapes": profile.shape_string(which)
                           for which in ("min", "opt", "max")}, indent=2)
    if fmt == "fastdeploy":
        return "\n".join(f'option.set_trt_input_shape("{name}", {list(lo)}, {list(opt)}, {list(hi)})'
                         for name, (lo, opt, hi) in profile.shapes.items())
    raise RvmkitError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")

