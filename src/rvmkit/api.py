"""`convert_video`: RVM's familiar Python entry point, on rvmkit's backends, pipeline and writers.

Everything the user controls is checked before any work starts (input, outputs, model, backend,
ratio), so a mistake costs one line and writes nothing. Outputs go to temporary names and are
renamed only when every frame is written; any failure or Ctrl-C aborts all of them.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rvmkit.contract import check_limit
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import Staged, publish_all, remove_stale_temps, require_distinct_outputs, temp_beside
from rvmkit.options import ROLES, MatteOptions, check_model_fit
from rvmkit.progress import Progress
from rvmkit.runtime import ModelSpec, is_torch_model, load_backend, parse_ratio, resolve_ratio
from rvmkit.runtime.base import Backend, FrameResult
from rvmkit.video.composite import Background, alpha_u8, composite, foreground_u8, parse_background, rgba
from rvmkit.video.preview import sample_indices
from rvmkit.video.reader import Frame, FrameSource, VideoInfo, open_source
from rvmkit.video.reader import notes as input_notes
from rvmkit.video.writer import (
    FrameSink,
    check_output_path,
    check_quality,
    check_transparency,
    open_sink,
    resolve_output,
)

PREVIEW_FRAMES = 4


@dataclass(frozen=True)
class MatteResult:
    """What a run produced: frames written per output, wall time, and the published paths by role
    ('composition', 'alpha', 'foreground', 'preview')."""

    frames: int
    seconds: float
    outputs: dict[str, Path] = field(default_factory=dict)
    downsample_ratio: float = 1.0
    backend: str = "onnxruntime"
    notes: tuple[str, ...] = ()  # about the input, e.g. that it is interlaced


@dataclass
class Target:
    role: str
    path: Path
    kind: str  # "video" | "png_sequence"
    alpha: bool  # RGBA output (transparent composition)
    sink: FrameSink | None = None


def convert_video(source: Any = None, /, *positional: Any,
                  output_composition: str | os.PathLike | None = None,
                  output_alpha: str | os.PathLike | None = None,
                  output_foreground: str | os.PathLike | None = None,
                  input_source: str | os.PathLike | None = None, model: Any = None,
                  variant: str | None = None, backend: str | None = None, device: str | None = None,
                  downsample_ratio: str | float | None = "auto", input_resize: tuple[int, int] | None = None,
                  output_type: str | None = None, background: str | os.PathLike | tuple | None = None,
                  output_video_mbps: float | None = None, crf: int | None = None, seq_chunk: int = 1,
                  num_workers: int = 0, progress: bool = True, overwrite: bool = False,
                  preview: str | os.PathLike | None = None, fp16: bool = False,
                  precision: str = "fp32", dtype: Any = None,
                  on_progress: Callable[[int, int | None], None] | None = None
                  ) -> MatteResult:
    """Matte the input (video file, image folder or image) into any of the three outputs: each a video,
    a PNG folder, or, for a one-frame input such as a photo, one image (.png, .webp, .tif, .jpg).

    Called as `convert_video("in.mp4", "out.mp4")` (then the alpha and foreground paths, in that order),
    or as RVM's own converter is: `convert_video(model, "in.mp4", output_composition="out.mp4", ...)`,
    with RVM's positional order after the model (input_source, input_resize, downsample_ratio,
    output_type, output_composition, ...), where `model` is an RVM torch model (official or rvmkit's;
    it runs on the torch backend). `model=` also takes a path: an official or TRT-ready ONNX, a .pth,
    or a TensorRT engine; None is the pretrained default.

    backend None: onnxruntime, or torch for a .pth/torch model, tensorrt for an engine. device None:
    the torch model's device, else cpu. dtype: torch.float16 means fp16 (torch backend on CUDA).
    precision: 'fp32' (exact, the default); 'bf16'/'int8' are refused unless offered (issue 15: none
    passed the accuracy gate; `rvmkit.runtime.precision`).
    downsample_ratio 'auto'/None: min(1, 512 / long side). background: colour name, #RRGGBB, an
    (R, G, B) tuple, image, video, or 'transparent' (RGBA composition: PNGs, .webm, .mov); default
    RVM's green, for PNG sequences too (RVM's converter writes RGBA PNGs there: ask for 'transparent').
    output_video_mbps None: quality-based (x264 crf 18), not RVM's fixed 1 Mbps; with output_type
    'png_sequence' it is ignored, with a note on stderr when `progress` (RVM's CLI always passes one).
    num_workers is accepted for compatibility and unused: decoding and encoding always run in their
    own threads.
    `on_progress(frames_written, frames_total)` is called after each frame (from the pipeline's writer
    thread; total None when unknown), for front-ends that show their own progress (`rvmkit serve`).
    Raises RvmkitError (or TypeError for a wrongly typed argument) before writing anything when an
    argument, the input or the model is wrong.
    """
    if positional:  # bind them by name, then run with keywords only
        keywords = {name: value for name, value in locals().items() if name not in ("source", "positional")}
        return convert_video(source, **_bind_positional(source, positional, keywords))
    started = time.monotonic()
    input_source, model = _source_and_model(source, input_source, model)
    device, fp16 = _device_and_precision(device, fp16, dtype, model)
    requested, background, output_video_mbps, ratio_request, resize = _check_arguments(
        (output_composition, output_alpha, output_foreground), background, output_type, output_video_mbps,
        downsample_ratio, seq_chunk, crf, input_resize, progress=progress, overwrite=overwrite,
        preview=preview, num_workers=num_workers)
    with open_source(input_source, resize=resize) as source:
        info = source.info
        spec, backend_name = check_model_fit(model, backend, device, fp16, variant, precision)
        ratio = resolve_ratio(ratio_request, info.width, info.height, spec.baked_ratio, spec.label, info.path)
        with parse_background(background, info.width, info.height) as bg:
            reads = read_paths(background, model)
            targets = plan_targets(requested, info, output_type, bg.transparent, overwrite, output_video_mbps,
                                   crf, reads)
            preview_path = _check_preview(preview, info, targets, overwrite, reads)
            job = MatteJob(source, info, targets, bg, ratio, output_type=output_type, mbps=output_video_mbps,
                           crf=crf, overwrite=overwrite, seq_chunk=seq_chunk, progress=progress,
                           preview=preview_path, on_progress=on_progress)
            frames = _load_and_render(job, backend_name, spec, ratio_request, device=device, variant=variant,
                                      **({"fp16": True} if fp16 else {}))
    return _result(job, frames, time.monotonic() - started, backend_name)


def _check_arguments(outputs: tuple[Any, Any, Any], background: Any, output_type: str | None, mbps: Any,
                     downsample_ratio: Any, seq_chunk: Any, crf: Any, input_resize: Any, *, progress: Any,
                     **others: Any) -> tuple[dict[str, Any], str | None, Any, float | None,
                                             tuple[int, int] | None]:
    """convert_video's arguments checked, types first (TypeError), then values (RvmkitError): (requested
    outputs, background text, bitrate (None for PNGs), ratio request, input resize). `others` are the
    preview, overwrite and num_workers, whose types only are checked here."""
    composition, alpha, foreground = outputs
    _check_types(output_composition=composition, output_alpha=alpha, output_foreground=foreground,
                 progress=progress, input_resize=input_resize, seq_chunk=seq_chunk, crf=crf,
                 output_video_mbps=mbps, **others)
    background = _background_text(background)
    mbps = ignored_png_mbps(output_type, mbps, progress)
    requested = _requested_outputs(composition, alpha, foreground)
    options = MatteOptions(downsample_ratio=downsample_ratio, input_resize=input_resize,
                           output_type=output_type, background=background, output_video_mbps=mbps, crf=crf,
                           seq_chunk=seq_chunk)
    options.check_values()
    check_limit("compat_num_workers", others["num_workers"])
    ratio_request = parse_ratio(downsample_ratio)
    resize = (int(input_resize[0]), int(input_resize[1])) if input_resize is not None else None
    return requested, background, mbps, ratio_request, resize


def _result(job: MatteJob, frames: int, seconds: float, backend: str) -> MatteResult:
    """What `convert_video` returns: the published paths by role (the preview's too, if any)."""
    outputs: dict[str, Path] = {target.role: target.path for target in job.targets}
    outputs.update({"preview": job.preview} if job.preview is not None else {})
    return MatteResult(frames=frames, seconds=seconds, outputs=outputs, downsample_ratio=job.ratio,
                       backend=backend, notes=tuple(input_notes(job.info)))


def _load_and_render(job: MatteJob, name: str, spec: ModelSpec, ratio_request: float | None,
                     **loading: Any) -> int:
    """Load the backend, take a TensorRT engine's baked ratio (read once it is loaded), render `job`."""
    with load_backend(name, spec, **loading) as loaded:
        if loaded.baked_ratio is not None and spec.baked_ratio is None:  # an engine's metadata
            job.ratio = resolve_ratio(ratio_request, job.info.width, job.info.height, loaded.baked_ratio,
                                      spec.label, job.info.path)
        return render(job, loaded)


def _requested_outputs(composition: Any, alpha: Any, foreground: Any) -> dict[str, Any]:
    """{role: path or None}; at least one output must be asked for."""
    requested = {"composition": composition, "alpha": alpha, "foreground": foreground}
    if all(path is None for path in requested.values()):
        raise RvmkitError("no output requested: give output_composition, output_alpha and/or "
                          "output_foreground (--output-composition, --output-alpha, --output-foreground)")
    return requested


#: RVM's convert_video(model, input_source, ...) positional order, after the model
RVM_POSITIONAL = ("input_source", "input_resize", "downsample_ratio", "output_type", "output_composition",
                  "output_alpha", "output_foreground", "output_video_mbps", "seq_chunk", "num_workers",
                  "progress", "device", "dtype")
OWN_POSITIONAL = ("output_composition", "output_alpha", "output_foreground")


def _bind_positional(source: Any, positional: tuple[Any, ...], keywords: dict[str, Any]) -> dict[str, Any]:
    """`keywords` with the positional arguments after the first bound by name: RVM's order after a torch
    model, rvmkit's (the three outputs) after an input path."""
    names = RVM_POSITIONAL if is_torch_model(source) else OWN_POSITIONAL
    if len(positional) > len(names):
        raise TypeError(f"convert_video() takes at most {len(names) + 1} positional arguments here "
                        f"({len(positional) + 1} given)")
    defaults = inspect.signature(convert_video).parameters
    for name, value in zip(names, positional):
        if keywords[name] is not defaults[name].default:
            raise TypeError(f"convert_video() got multiple values for argument {name!r}")
        keywords[name] = value
    return keywords


def ignored_png_mbps(output_type: str | None, mbps: Any, progress: bool) -> Any:
    """None for a bitrate asked of PNG output (output_type 'png_sequence'): RVM's CLI passes one always
    (--output-video-mbps defaults to 1), and PNGs have no bitrate; said on stderr when `progress`."""
    if output_type != "png_sequence" or mbps is None:
        return mbps
    if progress:
        print(f"note: output_video_mbps {mbps} ignored: output_type png_sequence writes PNG images",
              file=sys.stderr)
    return None


def _source_and_model(source: Any, input_source: Any, model: Any) -> tuple[str | os.PathLike, Any]:
    """The input and the model from the first positional argument: an input path, or (RVM's order) a
    torch model followed by input_source=..."""
    if is_torch_model(source):
        if model is not None:
            raise TypeError("convert_video(): a model was given twice (first argument and model=)")
        source, model = None, source
        if input_source is None:
            raise TypeError("convert_video(): with a model as the first argument, name the input: "
                            "input_source='video.mp4' (as in RVM's convert_video)")
    if source is not None and input_source is not None:
        raise TypeError("convert_video(): the input was given twice (first argument and input_source=)")
    chosen = input_source if input_source is not None else source
    if chosen is None:
        raise TypeError("convert_video(): missing the input: convert_video('video.mp4', ...)")
    _require_path("input_source", chosen)
    return chosen, model


def _device_and_precision(device: str | None, fp16: bool, dtype: Any, model: Any) -> tuple[str, bool]:
    """RVM's device=None (the model's device, else cpu) and dtype (float16 means fp16)."""
    if device is None:
        parameter = next(model.parameters(), None) if hasattr(model, "parameters") else None
        device = "cuda" if parameter is not None and parameter.device.type == "cuda" else "cpu"
    name = str(dtype).replace("torch.", "") if dtype is not None else None
    if name not in (None, "float32", "float16", "half", "float"):
        raise RvmkitError(f"dtype {dtype!r}: expected torch.float32 or torch.float16")
    _require_bool("fp16", fp16)
    return device, bool(fp16) or name in ("float16", "half")


def _require_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"convert_video(): {name} must be True or False, not {value!r}")


def _require_path(name: str, value: Any) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"convert_video(): {name} must be a path (str or pathlib.Path), not {value!r}")


def _require_number(name: str, value: Any, whole: bool) -> None:
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if whole else "a number"
        raise TypeError(f"convert_video(): {name} must be {what}, not {value!r}")


def _check_types(*, input_resize: Any, progress: Any, overwrite: Any, **values: Any) -> None:
    """TypeErrors that name the argument, for values the range checks could not even compare."""
    for name in ("output_composition", "output_alpha", "output_foreground", "preview"):
        if values[name] is not None:
            _require_path(name, values[name])
    _require_bool("progress", progress)
    _require_bool("overwrite", overwrite)
    for name in ("seq_chunk", "num_workers", "crf", "output_video_mbps"):
        if values[name] is not None or name in ("seq_chunk", "num_workers"):
            _require_number(name, values[name], whole=name != "output_video_mbps")
    if input_resize is not None:
        pair = hasattr(input_resize, "__len__") and not isinstance(input_resize, (str, bytes))
        if not pair or len(input_resize) != 2:
            raise TypeError(f"convert_video(): input_resize must be (width, height), not {input_resize!r}")
        for value in input_resize:
            _require_number("input_resize", value, whole=False)


def _background_text(background: Any) -> str | None:
    """The background as parse_background takes it: a (R, G, B) tuple becomes 'R,G,B'."""
    if background is None or isinstance(background, (str, os.PathLike)):
        return None if background is None else os.fspath(background)
    def channel(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255

    if isinstance(background, (tuple, list)) and len(background) == 3 and all(map(channel, background)):
        return ",".join(str(int(v)) for v in background)
    raise TypeError(f"convert_video(): background must be a colour name, '#RRGGBB', an (R, G, B) tuple of "
                    f"0-255, an image or video path, or 'transparent'; not {background!r}")



def plan_targets(requested: dict[str, Any], info: VideoInfo, output_type: str | None, transparent: bool,
                  overwrite: bool, mbps: float | None = None, crf: int | None = None,
                  reads: dict[str, Path | None] | None = None) -> list[Target]:
    """Check every output path (type, transparency, clashes, existing files) and the quality settings
    against the outputs' codecs before opening any. `reads`: the other files the run reads (background,
    model), which no output may be or hold."""
    targets: list[Target] = []
    codecs: list[str] = []
    seen: dict[Path, str] = {}
    for role in ROLES:
        if requested[role] is None:
            continue
        typed = os.path.expanduser(os.fspath(requested[role]))
        kind, codec = resolve_output(typed, output_type, images=True)  # as typed: "x/" is a folder
        path = Path(typed)
        codecs.append(codec)
        alpha = transparent and role == "composition"
        check_transparency(path, kind, alpha)
        if kind == "image" and info.frame_count != 1:
            frames = "an unknown number of" if info.frame_count is None else info.frame_count
            raise RvmkitError(f"{describe_path(path)}: an image output holds one frame, and "
                              f"{describe_path(info.path)} has {frames} frames; name a video or a folder "
                              "(PNG frames) instead")
        _check_target(path, info, overwrite, seen, role, kind)
        targets.append(Target(role, path, kind, alpha))
    require_distinct_outputs([(f"{t.role} output", t.path) for t in targets],
                             [info.path, *(reads or {}).items()])
    check_quality(codecs, mbps, crf)
    return targets


def read_paths(background: str | None, model: Any) -> dict[str, Path | None]:
    """The files besides the input that a run reads: a background image or video, a model file."""
    def existing(value: Any) -> Path | None:
        if not isinstance(value, (str, os.PathLike)):
            return None
        path = Path(os.fspath(value)).expanduser()
        return path if path.is_file() else None

    return {"background": existing(background), "model": existing(model)}


def _check_target(path: Path, info: VideoInfo, overwrite: bool, seen: dict[Path, str], role: str,
                  kind: str) -> None:
    resolved = path.resolve()
    if resolved in seen:
        raise RvmkitError(f"{describe_path(path)}: used for both the {seen[resolved]} and the {role} output")
    seen[resolved] = role
    check_output_path(path, info, overwrite, kind)


def _check_preview(preview: str | os.PathLike | None, info: VideoInfo, targets: list[Target],
                   overwrite: bool, reads: dict[str, Path | None] | None = None) -> Path | None:
    if preview is None:
        return None
    path = Path(os.fspath(preview)).expanduser()
    if path.suffix.lower() != ".png":
        raise RvmkitError(f"{describe_path(path)}: the preview is a PNG image; name it *.png")
    _check_target(path, info, overwrite, {t.path.resolve(): t.role for t in targets}, "preview", "image")
    require_distinct_outputs([*((f"{t.role} output", t.path) for t in targets), ("preview", path)],
                             [info.path, *(reads or {}).items()])
    return path


def _open_sinks(targets: list[Target], info: VideoInfo, output_type: str | None, mbps: float | None,
                crf: int | None, overwrite: bool) -> None:
    audio = info.path if info.has_audio and not info.is_image_sequence else None
    try:
        for target in targets:
            target.sink = open_sink(target.path, info, alpha=target.alpha, output_type=target.kind, mbps=mbps,
                                    crf=crf, overwrite=overwrite, matte=target.role == "alpha",
                                    audio_from=audio if target.kind == "video" else None)
    except BaseException:
        _abort(targets)
        raise


def _abort(targets: list[Target]) -> None:
    for target in targets:
        if target.sink is not None:
            try:
                target.sink.abort()
            except Exception:  # noqa: BLE001 - keep aborting the others; the original error matters
                pass


@dataclass
class MatteJob:
    """One input matted into its targets, as `render` runs it (for `convert_video` and for every batch
    or segment worker). start/stop/warmup pick a time segment (the warmup frames are inferred, not
    written); open_sinks(targets), when given, sets each target.sink instead of the final writers
    (segments write lossless parts)."""

    source: FrameSource
    info: VideoInfo
    targets: list[Target]
    background: Background
    ratio: float
    output_type: str | None = None
    mbps: float | None = None
    crf: int | None = None
    overwrite: bool = False
    seq_chunk: int = 1
    progress: bool = False
    preview: Path | None = None
    start: int = 0
    stop: int | None = None
    warmup: int = 0
    open_sinks: Callable[[list[Target]], None] | None = None
    on_progress: Callable[[int, int | None], None] | None = None  # (frames written, total)

    @property
    def expected_frames(self) -> int | None:
        """How many frames the run must write, when the input's frame count is known."""
        if self.info.frame_count is None:
            return None
        return (self.info.frame_count if self.stop is None else self.stop) - self.start


class _FrameWriter:
    """The pipeline's consumer: each frame's result into the targets' sinks, and the preview samples."""

    def __init__(self, job: MatteJob) -> None:
        self.job = job
        self.by_role = {target.role: target for target in job.targets}
        self.keep = set(sample_indices(job.info.frame_count or 1, PREVIEW_FRAMES)) \
            if job.preview is not None else set()
        self.previews: list[tuple[np.ndarray, ...]] = []
        bg = job.background
        # composition over an opaque background and/or alpha come out of one pass (fused on the fast path)
        self.fused = "composition" in self.by_role and not bg.transparent and "foreground" not in self.by_role

    def __call__(self, frame: Frame, result: FrameResult) -> None:
        if self.fused and frame.index not in self.keep:
            background = self.job.background.frame(frame.index)
            composition, alpha = result.composite(background, want_alpha="alpha" in self.by_role)
            self.by_role["composition"].sink.write(composition, frame)
            if alpha is not None:
                self.by_role["alpha"].sink.write(alpha, frame)  # HxW grey: video sinks encode it as gray
            return
        fgr, pha = result.arrays()
        self.write_arrays(frame, fgr[None], pha[None])

    def write_arrays(self, frame: Frame, fgr: np.ndarray, pha: np.ndarray) -> None:
        bg = self.job.background
        composition = None
        if "composition" in self.by_role or frame.index in self.keep:
            composition = rgba(fgr, pha) if bg.transparent else composite(fgr, pha, bg.frame(frame.index))
        for role, target in self.by_role.items():
            if role == "composition":
                image = composition
            elif role == "alpha":
                image = alpha_u8(pha, channels=3 if target.kind == "video" else 1)
            else:
                image = foreground_u8(fgr)
            target.sink.write(image, frame)
        if frame.index in self.keep:
            shown = composition if not bg.transparent else composite(fgr, pha, _checkerboard(self.job.info))
            self.previews.append((frame.rgb, alpha_u8(pha, channels=3), shown))


def render(job: MatteJob, backend: Backend) -> int:
    """Open the sinks, stream every frame through the pipeline on `backend`, render the preview, then
    commit all (or abort all on any error: nothing is published unless everything succeeded)."""
    from rvmkit import pipeline

    writer = _FrameWriter(job)
    if job.open_sinks is None:
        _open_sinks(job.targets, job.info, job.output_type, job.mbps, job.crf, job.overwrite)
    else:
        job.open_sinks(job.targets)
    preview_temp: Path | None = None
    try:
        with Progress(job.info.frame_count, enabled=job.progress) as bar:
            def on_frame(done: int) -> None:
                bar.update(done)
                if job.on_progress is not None:
                    job.on_progress(done, job.info.frame_count)

            frames = pipeline.run(job.source, backend, job.ratio, writer, seq_chunk=job.seq_chunk,
                                  on_frame=on_frame, start=job.start, stop=job.stop, warmup=job.warmup)
        expected = job.expected_frames
        if expected is not None and frames != expected:
            raise RvmkitError(f"{describe_path(job.info.path)}: only {frames} of {expected} frames "
                              "were matted")
        if job.preview is not None:
            preview_temp = _render_preview(writer.previews, job.preview)
        _publish(job.targets, preview_temp, job.preview, job.overwrite)
        preview_temp = None
    except BaseException:
        _abort(job.targets)
        raise
    finally:
        if preview_temp is not None and os.path.exists(preview_temp):
            os.unlink(preview_temp)
    return frames


def _publish(targets: list[Target], preview_temp: Path | None, preview: Path | None, overwrite: bool) -> None:
    """Every output of the run at once, or none (see `rvmkit.fileio.publish_all`)."""
    staged = [item for target in targets if (item := target.sink.finish()) is not None]
    if preview_temp is not None and preview is not None:
        staged.append(Staged(preview_temp, preview))
    publish_all(staged, overwrite=overwrite)
    for target in targets:
        target.sink = None


def _checkerboard(info: VideoInfo, square: int = 16) -> np.ndarray:
    """Grey checks behind a transparent composition in the preview (how editors show transparency)."""
    rows = (np.arange(info.height) // square)[:, None]
    cols = (np.arange(info.width) // square)[None, :]
    light = ((rows + cols) % 2).astype(bool)
    return np.where(light[:, :, None], np.uint8(204), np.uint8(153)).repeat(3, axis=2)


def _render_preview(previews: list[tuple[np.ndarray, ...]], path: Path) -> Path:
    """The contact sheet under a temporary name beside `path` (renamed with the outputs)."""
    from rvmkit.video.preview import contact_sheet_png

    data = contact_sheet_png(previews)
    remove_stale_temps(path)
    temp = None
    try:
        temp = temp_beside(path)
        temp.write_bytes(data)
    except BaseException as error:
        if temp is not None:
            temp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise RvmkitError(f"{describe_path(path)}: cannot write the preview "
                              f"({error.strerror or type(error).__name__})") from None
        raise
    return temp
