"""Scale out on Ray: many videos over a pool of model-holding actors, and one video split in segments.

- One model per worker: each actor loads the backend once and keeps it for every job it runs.
- A video (or a segment) runs in order on one worker, because the recurrent state flows frame to frame.
- No frames travel through Ray's object store: workers read inputs and write outputs on the
  filesystem themselves (use absolute paths on a shared filesystem for a multi-machine cluster) and
  return only counts, so driver memory is flat and each worker holds one bounded pipeline.
- Failures are per item: an input that fails (or kills its worker) is recorded and the rest go on.

A local Ray cluster is started when no address is given (or RAY_ADDRESS is unset); `address` joins an
existing one, e.g. a KubeRay cluster, whose workers must have rvmkit installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvmkit import api
from rvmkit.batch import FORMATS, work
from rvmkit.batch import segments as seg
from rvmkit.batch.manifest import MANIFEST_NAME, Item, Manifest
from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.fileio import require_writable_output
from rvmkit.video.composite import is_transparent
from rvmkit.video.reader import VideoInfo, open_source
from rvmkit.video.reader import notes as input_notes
from rvmkit.video.writer import OUTPUT_TYPES, VIDEO_SUFFIXES, check_quality

_CANCEL_WAIT_S = 10.0
_session: dict[str, bool] = {}
Log = Callable[[str], None]


@dataclass
class Job:
    """A unit of work for one actor: 'video' (whole), 'plan' (count frames), 'segment' or 'stitch'."""

    kind: str
    item: int
    segment: seg.Segment | None = None
    role: str | None = None


@dataclass
class _ItemRun:
    """Driver-side progress of one input."""

    input: str
    outputs: dict[str, str]
    started: float = 0.0
    plan: list[seg.Segment] = field(default_factory=list)
    remaining: int = 0
    frames: int = 0
    failed: bool = False


@dataclass(frozen=True)
class RunOptions:
    """How a run uses Ray: which cluster (`address`; None: a local one), how many workers of how many
    CPUs, and how each video is cut (`segments` in time, each starting `warmup` frames early)."""

    address: str | None = None
    num_workers: int | None = None
    cpus_per_worker: int = 1
    segments: int = 1
    warmup: int = seg.DEFAULT_WARMUP

    def checked(self) -> RunOptions:
        """One-line errors for bad numbers, before anything is created or Ray starts."""
        check_cluster_numbers(self.num_workers, self.cpus_per_worker)
        seg.plan_segments(1, self.segments, self.warmup)  # validates the numbers
        return self

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> RunOptions:
        """The RunOptions fields among keyword `options` (removed from it), e.g. run_batch(segments=8)."""
        return cls(**{name: options.pop(name) for name in RUN_FIELDS if name in options})


RUN_FIELDS = ("address", "num_workers", "cpus_per_worker", "segments", "warmup")


class Worker:
    """Ray actor body: holds one loaded model and runs jobs with it. Returns small dicts, never frames."""

    def __init__(self, options: work.MatteOptions, threads: int | None) -> None:
        self.options = options
        self.backend = work.load_worker_backend(options, threads)

    def ready(self) -> bool:
        return True

    def run(self, job: Job, item: _ItemRun, run: RunOptions, overwrite: bool) -> dict[str, Any]:
        try:
            return {"ok": True, **self._run(job, item, run, overwrite)}
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest; the batch goes on
            message = str(exc) if isinstance(exc, RvmkitError) else f"{type(exc).__name__}: {exc}"
            return {"ok": False, "error": message}

    def _run(self, job: Job, item: _ItemRun, run: RunOptions, overwrite: bool) -> dict[str, Any]:
        options = self.options
        if job.kind == "video":
            return {"frames": work.matte_video(self.backend, item.input, item.outputs, options, overwrite)}
        if job.kind == "plan":
            return {"plan": seg.plan_segments(work.probe(item.input, options), run.segments, run.warmup)}
        work_dir = str(_work_dir(item))
        if job.kind == "segment":
            key = options.fingerprint(item.input)
            return {"frames": work.run_segment(self.backend, item.input, item.outputs, options, job.segment,
                                               work_dir, key)}
        return {"frames": work.stitch_output(item.input, job.role, item.outputs, options, item.plan, work_dir,
                                             overwrite)}


def _work_dir(item: _ItemRun) -> Path:
    first = next(path for role, path in item.outputs.items() if role in api.ROLES)
    return seg.work_dir_for(Path(first))


# ---------------------------------------------------------------------------------------------
# Ray session and actor pool


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> bool:
    """Connect to `address`, or start a local cluster; reuse a session already open. True if started here.

    `quiet` keeps Ray's own driver-side warnings (e.g. its token-authentication notice) off stderr:
    ray.init's documented `logging_level` for the "ray" logger, set to ERROR."""
    try:
        import ray
    except ImportError:
        raise RvmkitError("Ray is not installed: pip install 'rvmkit[batch]'") from None

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                              "logging_level": logging.ERROR if quiet else logging.WARNING}
    if address:
        kwargs["address"] = address
    elif num_cpus:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
        # a cluster started here (not joined) is this machine only: its size is fixed
        _session["local"] = not address and not os.environ.get("RAY_ADDRESS") and len(ray.nodes()) == 1
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"Ray cluster at {address}" if address else "a local Ray cluster"
        raise RvmkitError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return True


def check_cluster_numbers(num_workers: int | None, cpus_per_worker: int) -> None:
    """One-line errors for worker counts, checked before anything is created or Ray starts."""
    if num_workers is not None and (int(num_workers) != num_workers or num_workers < 1):
        raise RvmkitError(f"num workers {num_workers}: must be a whole number >= 1")
    if int(cpus_per_worker) != cpus_per_worker or cpus_per_worker < 1:
        raise RvmkitError(f"cpus per worker {cpus_per_worker}: must be a whole number >= 1")


def _pool_size(num_workers: int | None, cpus_per_worker: int, gpus_per_worker: float, jobs: int) -> int:
    """Workers to start: as asked, else as many as the cluster holds now (at most one per job).

    Asking for more than a local cluster holds is refused: the extra actors would never be placed.
    A remote cluster may autoscale, so there the number asked is used as is."""
    import ray

    resources = ray.cluster_resources()
    if gpus_per_worker:
        capacity = int(resources.get("GPU", 0) / gpus_per_worker)
        unit = "GPU"
    else:
        capacity = int(resources.get("CPU", 1) // cpus_per_worker)
        unit = f"{cpus_per_worker} CPU"
    local = _session.get("local", False)
    if num_workers is None:
        num_workers = max(1, min(capacity, jobs))
    if local and num_workers > capacity:
        raise RvmkitError(f"num workers {num_workers}: this Ray cluster holds {capacity} worker(s) of {unit} "
                          "each; lower --num-workers (or --cpus-per-worker)")
    return num_workers


class _Pool:
    """Actors created on demand; one that dies is replaced."""

    def __init__(self, options: work.MatteOptions, size: int, cpus_per_worker: int,
                 gpus_per_worker: float) -> None:
        import ray

        self._cls = ray.remote(Worker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                               max_restarts=0, max_concurrency=1)
        self.options, self.threads = options, cpus_per_worker
        self.idle = [self._new() for _ in range(size)]

    def _new(self) -> Any:
        return self._cls.remote(self.options, self.threads)

    def replace(self, dead: Any) -> None:
        import ray

        ray.kill(dead, no_restart=True)
        self.idle.append(self._new())


# ---------------------------------------------------------------------------------------------
# The scheduler


def run_items(items: list[_ItemRun], options: work.MatteOptions, run: RunOptions, *, overwrite: bool = True,
              on_item: Callable[[_ItemRun, Item], None] | None = None, log: Log | None = None) -> list[Item]:
    """Run every item on the current Ray session; `on_item` is called as each one finishes and `log`
    gets a line per finished segment (segments take long: that is the progress of a segmented run)."""
    return _Scheduler(items, options, run, overwrite, on_item, log).run()


class _Scheduler:
    """Jobs to actors, results to follow-up jobs: a video is one job, or with segments a plan, one job
    per segment, then one stitch per output. An item's first failure finishes it; its other jobs are
    dropped."""

    def __init__(self, items: list[_ItemRun], options: work.MatteOptions, run: RunOptions, overwrite: bool,
                 on_item: Callable[[_ItemRun, Item], None] | None, log: Log | None) -> None:
        self.items, self.options, self.run_options, self.overwrite = items, options, run, overwrite
        self.on_item, self.log = on_item, log
        first = "video" if run.segments <= 1 else "plan"
        self.pending: deque[Job] = deque(Job(first, i) for i in range(len(items)))
        self.in_flight: dict[Any, tuple[Job, Any]] = {}
        self.results: dict[int, Item] = {}

    def run(self) -> list[Item]:
        import ray

        run = self.run_options
        gpus = 1.0 if self.options.device == "cuda" else 0.0
        size = _pool_size(run.num_workers, run.cpus_per_worker, gpus, len(self.items) * max(1, run.segments))
        self.pool = _Pool(self.options, size, run.cpus_per_worker, gpus)
        try:
            while self.pending or self.in_flight:
                self._submit()
                if self.in_flight:
                    ready, _ = ray.wait(list(self.in_flight), num_returns=1)
                    self._collect(ready[0])
        finally:
            self._stop()
        return [self.results[i] for i in range(len(self.items))]

    def _submit(self) -> None:
        """Hand pending jobs to idle actors."""
        while self.pending and self.pool.idle:
            job = self.pending.popleft()
            if job.item in self.results:  # the item already failed: drop its other jobs
                continue
            actor = self.pool.idle.pop()
            item = self.items[job.item]
            if not item.started:
                item.started = time.monotonic()
            ref = actor.run.remote(job, item, self.run_options, self.overwrite)
            self.in_flight[ref] = (job, actor)

    def _collect(self, ref: Any) -> None:
        """One finished job: its actor back to the pool (or replaced if it died), its item moved on."""
        import ray

        job, actor = self.in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker died (crash, out of memory, model load)
            self.pool.replace(actor)
            self._fail(job, f"worker failed: {_first_line(exc)}")
            return
        self.pool.idle.append(actor)
        if not result["ok"]:
            self._fail(job, result["error"])
        elif job.item not in self.results:
            follow_up = {"video": self._after_video, "plan": self._after_plan, "segment": self._after_segment,
                         "stitch": self._after_stitch}
            follow_up[job.kind](job, result)

    def _fail(self, job: Job, error: str) -> None:
        self.items[job.item].remaining = sum(1 for j, _ in self.in_flight.values() if j.item == job.item)
        self._finish(job.item, error)

    def _finish(self, index: int, error: str | None) -> None:
        run = self.items[index]
        if index in self.results:
            return
        run.failed = error is not None
        item = Item(run.input, "failed" if error else "done", dict(run.outputs), error,
                    None if error else run.frames, round(time.monotonic() - run.started, 3))
        if self.run_options.segments > 1 and (error is None or not run.remaining):
            seg.remove_work_dir(_work_dir(run))
        self.results[index] = item
        if self.on_item is not None:
            self.on_item(run, item)

    def _after_video(self, job: Job, result: dict[str, Any]) -> None:
        self.items[job.item].frames = result["frames"]
        self._finish(job.item, None)

    def _after_plan(self, job: Job, result: dict[str, Any]) -> None:
        run = self.items[job.item]
        if len(result["plan"]) == 1:  # one frame: nothing to split or stitch
            self.pending.appendleft(Job("video", job.item))
            return
        run.plan = result["plan"]
        run.remaining = len(run.plan)
        self.pending.extendleft(reversed([Job("segment", job.item, segment=s) for s in run.plan]))

    def _after_segment(self, job: Job, result: dict[str, Any]) -> None:
        run = self.items[job.item]
        run.remaining -= 1
        if self.log is not None:
            done = len(run.plan) - run.remaining
            self.log(f"segment {job.segment.index + 1} of {Path(run.input).name} done: frames "
                     f"{job.segment.start}-{job.segment.stop - 1} ({done}/{len(run.plan)} segments)")
        if run.remaining == 0:
            roles = [role for role in api.ROLES if role in run.outputs]
            run.remaining = len(roles)
            self.pending.extendleft(reversed([Job("stitch", job.item, role=role) for role in roles]))

    def _after_stitch(self, job: Job, result: dict[str, Any]) -> None:
        run = self.items[job.item]
        run.frames = result["frames"]
        run.remaining -= 1
        if run.remaining == 0:
            self._finish(job.item, None)

    def _stop(self) -> None:
        """Interrupted: let running jobs abort their sinks (no temp files left), then kill every actor."""
        import ray

        if self.in_flight:
            for ref in self.in_flight:
                ray.cancel(ref)
            ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=_CANCEL_WAIT_S)
        for actor in self.pool.idle + [actor for _, actor in self.in_flight.values()]:
            ray.kill(actor, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith("Traceback"):
            return line.strip()
    return type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Public entry points


def output_paths(input_path: Path, output_dir: Path, roles: Sequence[str], fmt: str) -> dict[str, str]:
    """`<stem>.<role>.<fmt>` in output_dir (a `<stem>.<role>` folder of PNGs for fmt png)."""
    stem = input_path.stem if input_path.is_file() else input_path.name
    suffix = "" if fmt == "png" else f".{fmt}"
    return {role: str(output_dir / f"{stem}.{role}{suffix}") for role in roles}


def _remove_leftovers(outputs: Any) -> None:
    """Hidden temporary outputs of a run that was killed (the writers' `.<name>.<pid>.rvmkit-tmp*`)."""
    import shutil

    for output in outputs:
        output = Path(output)
        for leftover in output.parent.glob(f".{output.name}.*.rvmkit-tmp*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _check_roles(roles: Sequence[str]) -> list[str]:
    roles = list(dict.fromkeys(role.strip() for role in roles if role.strip()))
    unknown = [role for role in roles if role not in api.ROLES]
    if unknown or not roles:
        raise RvmkitError(f"outputs {','.join(unknown) or '(none)'}: choose from {','.join(api.ROLES)}")
    return roles


def _check_format(fmt: str, output_type: str | None, options: work.MatteOptions, roles: list[str]) -> str:
    if output_type is not None and output_type not in OUTPUT_TYPES:
        raise RvmkitError(f"output type {output_type!r}: expected one of {', '.join(OUTPUT_TYPES)}")
    fmt = "png" if output_type == "png_sequence" else fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise RvmkitError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if is_transparent(options.background) and "composition" in roles and fmt in ("mp4", "mkv"):
        raise RvmkitError(f"format {fmt}: cannot carry a transparent composition; use webm, mov or png")
    check_quality(["png" if fmt == "png" else VIDEO_SUFFIXES[f".{fmt}"][0]], options.output_video_mbps,
                  options.crf)
    return fmt


def _make_dir(folder: Path) -> list[Path]:
    """mkdir -p in one-line errors; return the folders it created, deepest first."""
    created = []
    parent = folder
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RvmkitError(f"{describe_path(folder)}: cannot create the output folder: "
                          f"{first_line(exc)}") from None
    return created


def run_batch(inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
              outputs: Sequence[str] = ("composition",), fmt: str = "mp4", run: RunOptions | None = None,
              log: Log | None = None, on_failure: Log | None = None, **options: Any) -> list[Item]:
    """Matte every input into `output_dir`, resuming a previous run; return this run's manifest items.

    `options` are `convert_video`'s matte options (model, backend, background, downsample_ratio, ...),
    and may hold `RunOptions`' fields (address, num_workers, cpus_per_worker, segments, warmup) instead
    of `run`. Inputs already done (manifest says so, the files exist and their fingerprint, of the
    options and the input's size + mtime, still matches) are recorded as skipped; failed, partial or
    stale ones are redone, replacing their outputs. `output_dir/manifest.json` holds the same records
    (and earlier runs' ones). Every argument is checked (one-line RvmkitError) before anything is
    created or Ray starts. `log` gets a progress line per input (and segment); `on_failure`, when given,
    gets the line of each failed input instead of `log`, so a run without progress still reports its
    failures. Ray's own warnings are kept quiet when `log` is None.
    """
    roles = _check_roles(outputs)
    run = _run_options(run, options)
    output_type = options.get("output_type")
    matte = work.MatteOptions(**options).checked()
    fmt = _check_format(fmt, output_type, matte, roles)
    if fmt == "png":
        matte = work.MatteOptions(**{**matte.__dict__, "output_type": "png_sequence"})
    run.checked()
    if not inputs:
        raise RvmkitError("no inputs given")
    out_dir = Path(output_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise RvmkitError(f"{describe_path(out_dir)}: is not a folder")
    require_writable_output(out_dir / MANIFEST_NAME)
    paths = list(dict.fromkeys(Path(raw).expanduser().absolute() for raw in inputs))
    planned = _plan_outputs(paths, out_dir, roles, fmt)
    manifest = Manifest.load(out_dir / MANIFEST_NAME)
    created = _make_dir(out_dir)
    quiet = log is None
    log = log or (lambda message: None)
    fingerprints = {str(path): work.output_fingerprint(matte, path, run.segments, run.warmup)
                    for path in paths}
    todo = _todo(paths, planned, fingerprints, manifest, log)
    if todo:
        try:
            started = init_ray(run.address, quiet=quiet)
        except RvmkitError:  # e.g. a wrong --address: leave no empty output folder behind
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        try:
            _prefetch_weights(matte)
            run_items(todo, matte, run, overwrite=True, log=log,
                      on_item=_recorder(manifest, fingerprints, log, on_failure or log))
        finally:
            if started:
                _shutdown()
    return [manifest.get(str(path)) for path in paths]


def _recorder(manifest: Manifest, fingerprints: dict[str, str], log: Log,
              on_failure: Log) -> Callable[[_ItemRun, Item], None]:
    """on_item for run_items: each finished item into the manifest (with its fingerprint), and a line."""
    def on_item(item_run: _ItemRun, item: Item) -> None:
        item.fingerprint = fingerprints[item_run.input]
        manifest.record(item)
        if item.error is not None:
            on_failure(f"failed {item_run.input}: {first_line(item.error)}")
        else:
            log(f"{item.status} {item_run.input} ({item.frames} frames, {item.seconds:.1f} s)")

    return on_item


def _run_options(run: RunOptions | None, options: dict[str, Any]) -> RunOptions:
    """`run`, or the RunOptions fields given as keywords among `options` (taken out of it)."""
    if run is None:
        return RunOptions.pop_from(options)
    given = [name for name in RUN_FIELDS if name in options]
    if given:
        raise TypeError(f"run_batch(): {', '.join(given)} given both in run= and as keywords")
    return run


def _plan_outputs(paths: list[Path], out_dir: Path, roles: list[str], fmt: str) -> dict[Path, dict[str, str]]:
    """Each input's output paths; two inputs that would write the same file are refused."""
    planned: dict[Path, dict[str, str]] = {}
    claimed: dict[str, str] = {}
    for path in paths:
        planned[path] = output_paths(path, out_dir, roles, fmt)
        for target in planned[path].values():
            if target in claimed and claimed[target] != str(path):
                raise RvmkitError(f"{describe_path(path)}: same output name as "
                                  f"{describe_path(claimed[target])} ({Path(target).name}); rename one")
            claimed[target] = str(path)
    return planned


def _todo(paths: list[Path], planned: dict[Path, dict[str, str]], fingerprints: dict[str, str],
          manifest: Manifest, log: Log) -> list[_ItemRun]:
    """The inputs to (re)do; those done earlier with the same fingerprint are recorded as skipped."""
    todo: list[_ItemRun] = []
    for path in paths:
        outputs_for = planned[path]
        fingerprint = fingerprints[str(path)]
        previous = manifest.get(str(path))
        if previous is not None and previous.outputs == outputs_for and previous.finished():
            if previous.fingerprint == fingerprint:
                manifest.record(Item(str(path), "skipped", outputs_for, None, previous.frames,
                                     previous.seconds, fingerprint))
                log(f"skipped {path} (already done)")
                continue
            log(f"redoing {path} (options or input changed since it was done)")
        _remove_leftovers(outputs_for.values())
        todo.append(_ItemRun(str(path), outputs_for))
    return todo


def convert_segmented(input_source: str | os.PathLike, output_composition: str | os.PathLike | None = None,
                      output_alpha: str | os.PathLike | None = None,
                      output_foreground: str | os.PathLike | None = None, *, segments: int = 2,
                      warmup: int = seg.DEFAULT_WARMUP, address: str | None = None,
                      num_workers: int | None = None, cpus_per_worker: int = 1, overwrite: bool = False,
                      progress: bool = True, **matte_options: Any) -> api.MatteResult:
    """`convert_video` for one long video split into `segments` parts matted in parallel on Ray.

    Each part starts `warmup` frames early; the outputs have the input's exact frame count,
    timestamps and audio. Everything is checked before the cluster starts. `progress` prints a line
    to stderr as each segment finishes (and lets Ray's own warnings through). An input of one frame
    (an image) has nothing to split: it runs sequentially here, without Ray.
    """
    started_at = time.monotonic()
    options = work.MatteOptions(**matte_options).checked()
    run = RunOptions(address, num_workers, cpus_per_worker, segments, warmup).checked()
    input_path = Path(input_source).expanduser().absolute()
    requested = {"composition": output_composition, "alpha": output_alpha, "foreground": output_foreground}
    outputs, info = _check_outputs(input_path, requested, options, overwrite)
    if info.frame_count is not None and info.frame_count <= 1:
        return api.convert_video(input_source, output_composition, output_alpha, output_foreground,
                                 progress=progress, overwrite=overwrite, **matte_options)
    started = init_ray(address, quiet=not progress)
    try:
        _prefetch_weights(options)
        [item] = run_items([_ItemRun(str(input_path), outputs)], options, run, overwrite=overwrite,
                           log=stderr_log if progress else None)
    finally:
        if started:
            _shutdown()
    if item.status == "failed":
        raise RvmkitError(item.error or f"{describe_path(input_path)}: failed")
    return api.MatteResult(frames=item.frames or 0, seconds=time.monotonic() - started_at,
                           outputs={role: Path(path) for role, path in outputs.items()},
                           downsample_ratio=_ratio_for(input_path, options), backend=options.backend or "",
                           notes=tuple(input_notes(info)))


def segmented_converter(segments: int, warmup: int = seg.DEFAULT_WARMUP,
                        address: str | None = None) -> Callable[..., api.MatteResult]:
    """A drop-in for `convert_video` (same arguments) running `convert_segmented`, for `matte --segments`."""

    def convert(input_source: str | os.PathLike, output_composition: str | os.PathLike | None = None,
                output_alpha: str | os.PathLike | None = None,
                output_foreground: str | os.PathLike | None = None, *, progress: bool = True,
                preview: str | os.PathLike | None = None,
                **options: Any) -> api.MatteResult:
        if preview is not None:
            raise RvmkitError(f"{describe_path(preview)}: --preview cannot be used with --segments, whose "
                              "segments run on separate workers so none sees the whole video to sample; "
                              "run without --segments for a preview")
        return convert_segmented(input_source, output_composition, output_alpha, output_foreground,
                                 segments=segments, warmup=warmup, address=address, progress=progress,
                                 **options)

    return convert


def _check_outputs(input_path: Path, requested: dict[str, Any], options: work.MatteOptions,
                   overwrite: bool) -> tuple[dict[str, str], VideoInfo]:
    """The same up-front checks as `convert_video` (paths, types, transparency, existing files);
    return the absolute output paths and what the input is (frame count, notes)."""
    from rvmkit.video.composite import parse_background

    if all(path is None for path in requested.values()):
        raise RvmkitError("no output requested: give --output-composition, --output-alpha and/or "
                          "--output-foreground")
    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
    with parse_background(options.background, info.width, info.height) as bg:
        targets = api.plan_targets(requested, info, options.output_type, bg.transparent, overwrite,
                                   options.output_video_mbps, options.crf)
    return {t.role: str(t.path.expanduser().absolute()) for t in targets}, info


def _ratio_for(input_path: Path, options: work.MatteOptions) -> float:
    from rvmkit.runtime import resolve_model, resolve_ratio

    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
    spec = resolve_model(options.model, options.backend)
    return resolve_ratio(options.downsample_ratio, info.width, info.height, spec.baked_ratio, spec.label,
                         info.path)


def _prefetch_weights(options: work.MatteOptions) -> None:
    """Fetch the default weights once here, not in every local worker at the same time."""
    if options.model is None:
        from rvmkit import weights

        if options.backend == "torch":
            weights.default_checkpoint_path()
        else:
            weights.official_onnx_path()


def _shutdown() -> None:
    import ray

    ray.shutdown()


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
