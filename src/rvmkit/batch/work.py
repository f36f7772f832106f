"""What one worker does, with a model it loaded once: a whole video, one segment, or one stitch.

These functions hold no Ray code, so they are tested and debugged as plain Python; `ray_runner`
wraps them in actors. Frames never leave the worker: it reads its input and writes its outputs (or
segment parts) on the filesystem itself and returns only counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rvmkit import api
from rvmkit.batch import segments as seg
from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import Staged, publish_all, release_lock
from rvmkit.options import MatteOptions
from rvmkit.runtime import load_backend, resolve_model, resolve_ratio
from rvmkit.runtime.base import Backend
from rvmkit.video.composite import parse_background
from rvmkit.video.reader import VideoInfo, open_source
from rvmkit.video.writer import open_sink, recheck_frame_folder


def worker_options(matte_options: dict[str, Any]) -> MatteOptions:
    """`rvmkit.options.MatteOptions` from a batch call's keywords, checked (one-line errors before any
    work starts), with absolute paths for workers elsewhere; a bad .pth is loaded once here, since it
    would fail every worker alike."""
    model = matte_options.get("model")
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise RvmkitError("model: batch and --segments workers load the model from a file; save an "
                          "in-memory one first: torch.save(model.state_dict(), 'model.pth')")
    options = MatteOptions(**matte_options).checked()
    spec = resolve_model(options.model, options.backend)
    if spec.kind == "checkpoint" and spec.path is not None:
        from rvmkit.weights import load_model

        load_model(spec.path, options.variant)
    return options.for_workers()


def fingerprint(options: MatteOptions, input_path: str | os.PathLike) -> str:
    """Identifies options + input file version, so stale segment parts are never reused."""
    stat = os.stat(input_path)
    text = json.dumps([asdict(options), os.fspath(input_path), stat.st_size, stat.st_mtime_ns], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _version(path: str | os.PathLike | None) -> list[int] | None:
    """[size, mtime] of a file or folder, None when absent: a file edited in place changes it."""
    try:
        stat = os.stat(path) if path is not None else None
    except OSError:
        return None
    return None if stat is None else [stat.st_size, stat.st_mtime_ns]


def output_fingerprint(options: MatteOptions, input_path: str | os.PathLike, segments: int = 1,
                       warmup: int = seg.DEFAULT_WARMUP) -> str:
    """What an item's outputs were made from: every matte option (with the versions of the model and
    background files), the segment plan and the input's size + mtime. Stored in the manifest, so a
    re-run with anything changed redoes the item instead of skipping stale outputs."""
    background = options.background
    files = {"input": _version(input_path),
             "model": _version(options.model),
             "background": _version(background) if background and Path(background).is_absolute() else None}
    chosen = asdict(options)
    if chosen["precision"] == "fp32":  # the default: manifests written before the option still match
        del chosen["precision"]
    text = json.dumps([chosen, files, [segments, warmup] if segments > 1 else None], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_worker_backend(options: MatteOptions, threads: int | None = None) -> Backend:
    """The worker's one model. `threads` caps intra-op threads so workers sharing a machine don't fight."""
    return load_backend(options.backend, options.model, device=options.device, variant=options.variant,
                        precision=options.precision, threads=threads,
                        **({"fp16": True} if options.fp16 else {}))


def _ratio(options: MatteOptions, info: VideoInfo, backend: Backend) -> float:
    return resolve_ratio(options.downsample_ratio, info.width, info.height, backend.baked_ratio,
                         options.model or "pretrained model", info.path)


def _targets(outputs: dict[str, str], info: VideoInfo, options: MatteOptions, transparent: bool,
             overwrite: bool) -> list[Any]:
    requested = {role: outputs.get(role) for role in api.ROLES}
    return api.plan_targets(requested, info, options.output_type, transparent, overwrite,
                            options.output_video_mbps, options.crf,
                            api.read_paths(options.background, options.model))


def matte_video(backend: Backend, input_path: str, outputs: dict[str, str], options: MatteOptions,
                overwrite: bool) -> int:
    """The whole video, exactly as `rvmkit matte` does it (its own code path), with a loaded model."""
    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
        ratio = _ratio(options, info, backend)
        with parse_background(options.background, info.width, info.height) as bg:
            targets = _targets(outputs, info, options, bg.transparent, overwrite)
            job = api.MatteJob(source, info, targets, bg, ratio, output_type=options.output_type,
                               mbps=options.output_video_mbps, crf=options.crf, overwrite=overwrite,
                               seq_chunk=options.seq_chunk)
            return api.render(job, backend)


def probe(input_path: str, options: MatteOptions) -> int:
    """Exact frame count of the input (packets are counted, nothing is decoded)."""
    with open_source(input_path, resize=options.input_resize) as source:
        if source.info.frame_count is None:
            raise RvmkitError(f"{describe_path(input_path)}: frame count unknown; cannot split into segments")
        return source.info.frame_count


def run_segment(backend: Backend, input_path: str, outputs: dict[str, str], options: MatteOptions,
                segment: seg.Segment, work_dir: str, key: str) -> int:
    """Matte one segment into lossless parts in `work_dir` (skipped if an earlier run finished it).

    Frames are rendered by `rvmkit matte`'s own code (api.render), only the sinks differ, so every
    frame of a segment is exactly what a sequential run with the same recurrent state would write."""
    work = Path(work_dir)
    roles = [role for role in api.ROLES if role in outputs]
    if seg.segment_done(work, segment, roles, key):
        return segment.stop - segment.start
    work.mkdir(parents=True, exist_ok=True)
    times = seg.TimesRecorder(seg.times_path(work, segment.index))

    def open_sinks(targets: list[Any]) -> None:
        for number, target in enumerate(targets):
            target.sink = seg.LosslessSink(seg.part_path(work, segment.index, target.role),
                                           times if number == 0 else None)

    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
        ratio = _ratio(options, info, backend)
        with parse_background(options.background, info.width, info.height) as bg:
            targets = _targets(outputs, info, options, bg.transparent, overwrite=True)
            job = api.MatteJob(source, info, targets, bg, ratio, output_type=options.output_type,
                               overwrite=True, seq_chunk=options.seq_chunk, start=segment.start,
                               stop=segment.stop, warmup=segment.warmup, open_sinks=open_sinks)
            frames = api.render(job, backend)
    times.save(segment, key)
    return frames


def stitch_output(input_path: str, role: str, outputs: dict[str, str], options: MatteOptions,
                  segments: list[seg.Segment], work_dir: str, overwrite: bool) -> tuple[int, str | None]:
    """Encode `role`'s final output once from the segments' parts, with the input's timestamps and audio.

    Returns (frames, its temporary path): the driver publishes an item's outputs together, once all are
    stitched (`publish_stitched`), so a failure leaves none of them."""
    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
    with parse_background(options.background, info.width, info.height) as bg:
        transparent = bg.transparent
    target = _targets({role: outputs[role]}, info, options, transparent, overwrite)[0]
    audio = info.path if info.has_audio and not info.is_image_sequence and target.kind == "video" else None
    sink = open_sink(target.path, info, alpha=target.alpha, output_type=target.kind,
                     mbps=options.output_video_mbps, crf=options.crf, overwrite=overwrite, audio_from=audio,
                     matte=role == "alpha")
    frames, staged = seg.stitch(Path(work_dir), segments, role, sink, info.frame_count)
    if staged is None:
        return frames, None
    release_lock(staged.lock)  # the temporary now waits for the driver, in another process
    return frames, str(staged.temp)


def publish_stitched(staged: dict[str, str], outputs: dict[str, str], overwrite: bool) -> None:
    """Publish an item's stitched outputs (role -> temporary path) all together, or none of them."""
    items = []
    for role, temp in staged.items():
        folder = Path(temp).is_dir()
        items.append(Staged(Path(temp), Path(outputs[role]), into_empty_folder=folder,
                            recheck=recheck_frame_folder if folder else None))
    try:
        publish_all(items, overwrite=overwrite)
    except BaseException:
        discard_staged(staged)
        raise
    staged.clear()


def discard_staged(staged: dict[str, str]) -> None:
    """Remove stitched outputs that will not be published (their item failed or was interrupted)."""
    for temp in staged.values():
        path = Path(temp)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    staged.clear()


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    return function(*args, **kwargs), time.monotonic() - started
