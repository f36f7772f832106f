"""Scale out on Ray: many videos over a pool of model-holding actors, and one video split in segments.

- One model per worker: each actor loads the backend once and keeps it for every job it runs.
- A video (or a segment) runs in order on one worker, because the recurrent state flows frame to frame.
- No frames travel through Ray's object store: workers read inputs and write outputs on the
  filesystem themselves (use absolute paths on a shared filesystem for a multi-machine cluster) and
  return only counts, so driver memory is flat and each worker holds one bounded pipeline.
- Failures are per item: an input that fails (or kills its worker) is recorded and the rest go on.

A new local Ray cluster is started when no address is given (nor RAY_ADDRESS set); `address` joins an
existing one, e.g. a KubeRay cluster, whose workers must have rvmkit installed. See `connect`: no wait
on Ray is unbounded.
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
from rvmkit.batch import connect, work
from rvmkit.batch import segments as seg
from rvmkit.batch.manifest import MANIFEST_NAME, Item, Manifest
from rvmkit.contract import check_limit
from rvmkit.errors import RvmkitError, describe_path, first_line
from rvmkit.fileio import remove_stale_temps, require_distinct_outputs, require_writable_output
from rvmkit.options import FORMATS, ROLES, MatteOptions
from rvmkit.options import output_paths as named_outputs
from rvmkit.video.composite import is_transparent
from rvmkit.video.reader import VideoInfo, open_source
from rvmkit.video.reader import notes as input_notes
from rvmkit.video.writer import OUTPUT_TYPES, VIDEO_SUFFIXES, check_quality

_CANCEL_WAIT_S = 10.0
_WORKER_START_TIMEOUT_S = 600.0  # room for an autoscaler to add a node and for the model to load
_TICK_S = 2.0  # how often the scheduler looks up from ray.wait to check that work still moves
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
    overwrite: bool = False  # its outputs may replace existing files (--overwrite, or the batch's own)
    staged: dict[str, str] = field(default_factory=dict)  # role -> stitched output awaiting publication


class Worker:
    """Ray actor body: holds one loaded model and runs jobs with it. Returns small dicts, never frames."""

    def __init__(self, options: MatteOptions, threads: int | None) -> None:
        self.options = options
        self.backend = work.load_worker_backend(options, threads)

    def ready(self) -> bool:
        return True

    def run(self, job: Job, item: _ItemRun, segments: int, warmup: int, overwrite: bool) -> dict[str, Any]:
        try:
            return {"ok": True, **self._run(job, item, segments, warmup, overwrite)}
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest; the batch goes on
            message = str(exc) if isinstance(exc, RvmkitError) else f"{type(exc).__name__}: {exc}"
            return {"ok": False, "error": message}

    def _run(self, job: Job, item: _ItemRun, segments: int, warmup: int, overwrite: bool) -> dict[str, Any]:
        options = self.options
        overwrite = overwrite or item.overwrite
        if job.kind == "video":
            return {"frames": work.matte_video(self.backend, item.input, item.outputs, options, overwrite)}
        if job.kind == "plan":
            return {"plan": seg.plan_segments(work.probe(item.input, options), segments, warmup)}
        work_dir = str(_work_dir(item))
        if job.kind == "segment":
            key = work.fingerprint(options, item.input)
            return {"frames": work.run_segment(self.backend, item.input, item.outputs, options, job.segment,
                                               work_dir, key)}
        frames, staged = work.stitch_output(item.input, job.role, item.outputs, options, item.plan, work_dir,
                                            overwrite)
        return {"frames": frames, "staged": staged}


def _work_dir(item: _ItemRun) -> Path:
    first = next(path for role, path in item.outputs.items() if role in ROLES)
    return seg.work_dir_for(Path(first))


# ---------------------------------------------------------------------------------------------
# Ray session and actor pool


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> bool:
    """Join `address` (else RAY_ADDRESS), or start a new local cluster; reuse a session already open.
    True if started or joined here. Bounded: see `connect` (one-line error, never a hang).

    `quiet` keeps Ray's own warnings off stderr: ray.init's documented `logging_level` for the "ray"
    logger (ERROR), and the C++ core's connection warnings while connecting."""
    try:
        import ray
    except ImportError:
        raise RvmkitError("Ray is not installed: pip install 'rvmkit[batch]'") from None

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                              "logging_level": logging.ERROR if quiet else logging.WARNING}
    target = connect.start_or_join(ray, address, quiet, num_cpus=num_cpus, **kwargs)
    # a cluster started here (not joined) is this machine only: its size is fixed
    _session["local"] = target == "local"
    return True


def check_cluster_numbers(num_workers: int | None, cpus_per_worker: int) -> None:
    """One-line errors for worker counts, checked before anything is created or Ray starts."""
    if num_workers is not None:
        check_limit("num_workers", num_workers)
    check_limit("cpus_per_worker", cpus_per_worker)


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
    """Actors created on demand; one that dies is replaced. A new actor gets jobs only once it is up
    (placed and its model loaded), so no job waits on an actor the cluster cannot place; and when no
    actor comes up within _WORKER_START_TIMEOUT_S while work waits, the run stops with one line."""

    def __init__(self, options: MatteOptions, size: int, cpus_per_worker: int,
                 gpus_per_worker: float) -> None:
        import ray

        self._cls = ray.remote(Worker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                               max_restarts=0, max_concurrency=1)
        self.options, self.threads, self.gpus = options, cpus_per_worker, gpus_per_worker
        self.idle: list[Any] = []
        self.starting: dict[Any, Any] = {}  # the actor's ready() reference -> the actor
        self.last_progress = time.monotonic()
        for _ in range(size):
            self.add()

    def add(self) -> None:
        actor = self._cls.remote(self.options, self.threads)
        self.starting[actor.ready.remote()] = actor

    def replace(self, dead: Any) -> None:
        import ray

        ray.kill(dead, no_restart=True)
        self.add()

    def came_up(self, ref: Any) -> str | None:
        """Move a started actor to idle; the error's first line if it died starting (model load, memory)."""
        import ray

        actor = self.starting.pop(ref)
        self.last_progress = time.monotonic()
        try:
            ray.get(ref, timeout=_CANCEL_WAIT_S)  # already resolved: ray.wait returned it
        except ray.exceptions.RayError as exc:
            ray.kill(actor, no_restart=True)
            return _first_line(exc)
        self.idle.append(actor)
        return None

    def check_stalled(self, busy: bool) -> None:
        """One line when work waits on actors and none has come up for _WORKER_START_TIMEOUT_S."""
        import ray

        if busy or self.idle or not self.starting:
            self.last_progress = time.monotonic()
            return
        if time.monotonic() - self.last_progress > _WORKER_START_TIMEOUT_S:
            unit = "1 GPU" if self.gpus else f"{self.threads} CPU"
            have = {key: value for key, value in ray.cluster_resources().items() if key in ("CPU", "GPU")}
            raise RvmkitError(f"no Ray worker ({unit} each) came up within {_WORKER_START_TIMEOUT_S:.0f} s; "
                              f"the cluster has {have or 'no resources'}: lower --cpus-per-worker, or add "
                              "nodes")

    def all_actors(self) -> list[Any]:
        return self.idle + list(self.starting.values())


# ---------------------------------------------------------------------------------------------
# The scheduler


def run_items(items: list[_ItemRun], options: MatteOptions, *, segments: int = 1,
              warmup: int = seg.DEFAULT_WARMUP, overwrite: bool = False, num_workers: int | None = None,
              cpus_per_worker: int = 1, on_item: Callable[[_ItemRun, Item], None] | None = None,
              log: Log | None = None) -> list[Item]:
    """Run every item on the current Ray session; `on_item` is called as each one finishes and `log`
    gets a line per finished segment (segments take long: that is the progress of a segmented run)."""
    gpus = 1.0 if options.device == "cuda" else 0.0
    size = _pool_size(num_workers, cpus_per_worker, gpus, len(items) * max(1, segments))
    pool = _Pool(options, size, cpus_per_worker, gpus)
    return _Scheduler(items, pool, segments=segments, warmup=warmup, overwrite=overwrite, on_item=on_item,
                      log=log).run()


class _Scheduler:
    """Hands the items' jobs to the pool's idle actors; each finished job queues its item's next ones
    (plan -> segments -> stitches, see the `_after_<kind>` methods). An item that fails drops its other
    jobs; its staged outputs are discarded, so an item publishes all its outputs or none."""

    def __init__(self, items: list[_ItemRun], pool: _Pool, *, segments: int, warmup: int, overwrite: bool,
                 on_item: Callable[[_ItemRun, Item], None] | None, log: Log | None) -> None:
        self.items, self.pool = items, pool
        self.segments, self.warmup, self.overwrite = segments, warmup, overwrite
        self.on_item, self.log = on_item, log
        first = "video" if segments <= 1 else "plan"
        self.pending: deque[Job] = deque(Job(first, i) for i in range(len(items)))
        self.in_flight: dict[Any, tuple[Job, Any]] = {}  # the job's result reference -> (job, actor)
        self.results: dict[int, Item] = {}
        self.after: dict[str, Callable[[Job, dict[str, Any]], None]] = {
            "video": self._after_video, "plan": self._after_plan, "segment": self._after_segment,
            "stitch": self._after_stitch}

    def run(self) -> list[Item]:
        """Every item's manifest record, in order; on any way out, no job or actor is left running."""
        try:
            while self.pending or self.in_flight:
                self._submit()
                if not self.pending and not self.in_flight:
                    break
                ref = self._wait()
                if ref is None:
                    continue
                if ref in self.pool.starting:
                    self._came_up(ref)
                else:
                    self._collect(ref)
        finally:
            self._stop()
        return [self.results[i] for i in range(len(self.items))]

    def _submit(self) -> None:
        """Give waiting jobs to idle actors."""
        while self.pending and self.pool.idle:
            job = self.pending.popleft()
            if job.item in self.results:  # the item already failed: drop its other jobs
                continue
            actor = self.pool.idle.pop()
            run = self.items[job.item]
            if not run.started:
                run.started = time.monotonic()
            ref = actor.run.remote(job, run, self.segments, self.warmup, self.overwrite)
            self.in_flight[ref] = (job, actor)

    def _wait(self) -> Any | None:
        """The next job or starting actor that resolved; None after a tick with none (bounded wait)."""
        import ray

        if not self.in_flight and not self.pool.starting:  # every actor died starting: start another
            self.pool.add()
        ready, _ = ray.wait(list(self.in_flight) + list(self.pool.starting), num_returns=1, timeout=_TICK_S)
        if not ready:
            self.pool.check_stalled(busy=bool(self.in_flight))
            return None
        return ready[0]

    def _came_up(self, ref: Any) -> None:
        error = self.pool.came_up(ref)
        if error is not None:
            self._fail_next(error)
            if self.pending:
                self.pool.add()

    def _fail_next(self, error: str) -> None:
        """An actor died starting: the next waiting job's item fails with its error (as a job would)."""
        while self.pending:
            job = self.pending.popleft()
            if job.item not in self.results:
                self._fail(job.item, f"worker failed: {error}")
                return

    def _collect(self, ref: Any) -> None:
        """Take a finished job's result: its actor back to idle (or replaced if it died), then the
        item's next step."""
        import ray

        job, actor = self.in_flight.pop(ref)
        try:
            result = ray.get(ref, timeout=_CANCEL_WAIT_S)  # resolved: ray.wait returned it
        except ray.exceptions.RayError as exc:  # the worker died (crash, out of memory, model load)
            self.pool.replace(actor)
            self._fail(job.item, f"worker failed: {_first_line(exc)}")
            return
        self.pool.idle.append(actor)
        if not result["ok"]:
            self._fail(job.item, result["error"])
        elif job.item not in self.results:
            self.after[job.kind](job, result)
        elif result.get("staged"):  # a stitch that finished after its item failed
            work.discard_staged({job.role or "": result["staged"]})

    def _fail(self, index: int, error: str) -> None:
        """Fail an item; its work folder stays while its other jobs still run (they write there)."""
        self.items[index].remaining = sum(1 for job, _ in self.in_flight.values() if job.item == index)
        self._finish(index, error)

    def _finish(self, index: int, error: str | None) -> None:
        run = self.items[index]
        if index in self.results:
            return
        run.failed = error is not None
        if error is not None:
            work.discard_staged(run.staged)
        item = Item(run.input, "failed" if error else "done", dict(run.outputs), error,
                    None if error else run.frames, round(time.monotonic() - run.started, 3))
        if self.segments > 1 and (error is None or not run.remaining):
            seg.remove_work_dir(_work_dir(run))
        self.results[index] = item
        if self.on_item is not None:
            self.on_item(run, item)

    def _after_video(self, job: Job, result: dict[str, Any]) -> None:
        self.items[job.item].frames = result["frames"]
        self._finish(job.item, None)

    def _after_plan(self, job: Job, result: dict[str, Any]) -> None:
        if len(result["plan"]) == 1:  # one frame: nothing to split or stitch
            self.pending.appendleft(Job("video", job.item))
            return
        run = self.items[job.item]
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
            roles = [role for role in ROLES if role in run.outputs]
            run.remaining = len(roles)
            self.pending.extendleft(reversed([Job("stitch", job.item, role=role) for role in roles]))

    def _after_stitch(self, job: Job, result: dict[str, Any]) -> None:
        run = self.items[job.item]
        run.frames = result["frames"]
        if result.get("staged"):
            run.staged[job.role] = result["staged"]
        run.remaining -= 1
        if run.remaining == 0:  # every output stitched: publish them together, or none
            try:
                work.publish_stitched(run.staged, run.outputs, self.overwrite or run.overwrite)
            except RvmkitError as exc:
                self._finish(job.item, str(exc))
                return
            self._finish(job.item, None)

    def _stop(self) -> None:
        """Interrupted (or done): let running jobs abort their sinks (no temp files left), kill every
        actor, and discard stitched outputs not yet published."""
        import ray

        if self.in_flight:
            for ref in self.in_flight:
                ray.cancel(ref)
            ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=_CANCEL_WAIT_S)
        for actor in self.pool.all_actors() + [actor for _, actor in self.in_flight.values()]:
            ray.kill(actor, no_restart=True)
        for run in self.items:
            work.discard_staged(run.staged)


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
    return {role: str(path) for role, path in named_outputs(output_dir, roles, fmt, stem).items()}


def _remove_leftovers(outputs: Any) -> None:
    """Hidden temporary outputs of runs that were killed (see `rvmkit.fileio.remove_stale_temps`:
    a live run's, here or on another machine, are left alone)."""
    for output in outputs:
        remove_stale_temps(Path(output))


def _check_existing_outputs(planned: dict[Path, dict[str, str]], manifest: Manifest,
                            overwrite: bool) -> set[Path]:
    """The inputs whose existing outputs may be replaced: the batch's own (the manifest records them for
    that input) or all with `overwrite`. Any other existing file at an output name is refused here,
    before any work; a file that appears at a free name during the run is never replaced."""
    replaceable = set()
    for path, outputs in planned.items():
        existing = [target for target in outputs.values() if os.path.lexists(target)]
        previous = manifest.get(str(path))
        if existing and not overwrite and (previous is None or previous.outputs != outputs):
            raise RvmkitError(f"{describe_path(existing[0])}: already exists and is not an output of an "
                              f"earlier batch run here ({MANIFEST_NAME}); use --overwrite to replace it")
        if existing:
            replaceable.add(path)
    return replaceable


def _check_outputs_spare_inputs(planned: dict[Path, dict[str, str]]) -> None:
    """No item's output may be, hold or lie inside any item's input. Each worker checks its own input
    only, so this is checked across the whole batch, before any work."""
    inputs = {path.resolve(): path for path in planned}
    by_inode = {}
    for path in planned:
        with contextlib.suppress(OSError):
            info = path.stat()
            by_inode[info.st_dev, info.st_ino] = path
    folders = {resolved for resolved in inputs if resolved.is_dir()}
    outputs = {Path(target).resolve(): (target, source) for source, targets in planned.items()
               for target in targets.values()}
    for resolved, (target, source) in outputs.items():
        same = inputs.get(resolved)
        with contextlib.suppress(OSError):
            info = os.stat(target)
            same = same or by_inode.get((info.st_dev, info.st_ino))
        if same is not None:
            raise RvmkitError(f"{describe_path(target)}: the output of {describe_path(source)} is the input "
                              f"{describe_path(same)}; refusing to overwrite it (rename one)")
        folder = next((parent for parent in resolved.parents if parent in folders), None)
        if folder is not None:
            raise RvmkitError(f"{describe_path(target)}: the output of {describe_path(source)} is inside the "
                              f"input folder {describe_path(inputs[folder])}; choose another --output-dir")
    for resolved, path in inputs.items():
        holder = next((outputs[parent] for parent in resolved.parents if parent in outputs), None)
        if holder is not None:
            raise RvmkitError(f"{describe_path(holder[0])}: the output of {describe_path(holder[1])} holds "
                              f"the input {describe_path(path)}; choose another --output-dir")


def _check_run_paths(planned: dict[Path, dict[str, str]], manifest: Path, options: MatteOptions) -> None:
    """Each item's outputs and the manifest: never the same file as, inside, or holding one another, the
    item's input, the background or the model (any spelling, symlink or hard link)."""
    reads = list(api.read_paths(options.background, options.model).items())
    for source, targets in planned.items():
        writes = [(f"{role} output of {describe_path(source)}", path) for role, path in targets.items()]
        require_distinct_outputs([*writes, ("manifest", manifest)], [source, *reads])


def _check_roles(roles: Sequence[str]) -> list[str]:
    roles = list(dict.fromkeys(role.strip() for role in roles if role.strip()))
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise RvmkitError(f"outputs {','.join(unknown) or '(none)'}: choose from {','.join(ROLES)}")
    return roles


def _check_format(fmt: str, output_type: str | None, options: MatteOptions, roles: list[str]) -> str:
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


def _silent(message: str) -> None:
    """The log of a run without progress lines."""


def _split_done(manifest: Manifest, paths: list[Path], planned: dict[Path, dict[str, str]],
                fingerprints: dict[str, str], replaceable: set[Path]
                ) -> tuple[list[Item], list[_ItemRun], set[str]]:
    """(items still done, to record as skipped; items to run; inputs among those redone because their
    options or input changed). Decides only: nothing is written before Ray is up."""
    skipped: list[Item] = []
    todo: list[_ItemRun] = []
    redone: set[str] = set()
    for path in paths:
        outputs_for, fingerprint = planned[path], fingerprints[str(path)]
        previous = manifest.get(str(path))
        if previous is not None and previous.outputs == outputs_for and previous.finished():
            if previous.fingerprint == fingerprint:
                skipped.append(Item(str(path), "skipped", outputs_for, None, previous.frames,
                                    previous.seconds, fingerprint))
                continue
            redone.add(str(path))
        todo.append(_ItemRun(str(path), outputs_for, overwrite=path in replaceable))
    return skipped, todo, redone


@dataclass(frozen=True)
class RunOptions:
    """How a run uses Ray: which cluster (`address`; None: a local one), how many workers of how many
    CPUs, and how each video is cut (`segments` in time, each starting `warmup` frames early)."""

    address: str | None = None
    num_workers: int | None = None
    cpus_per_worker: int = 1
    segments: int = 1
    warmup: int = seg.DEFAULT_WARMUP


def _run_options(run: RunOptions | None, options: dict[str, Any]) -> RunOptions:
    """`run`, or RunOptions from the keywords of the same names (taken out of `options`); not both."""
    given = {name: options.pop(name) for name in RunOptions.__dataclass_fields__ if name in options}
    if run is None:
        return RunOptions(**given)
    if given:
        raise TypeError(f"run_batch(): {', '.join(given)} given both in run= and as keywords")
    return run


def run_batch(inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
              outputs: Sequence[str] = ("composition",), fmt: str = "mp4", run: RunOptions | None = None,
              log: Log | None = None, on_failure: Log | None = None, overwrite: bool = False,
              **matte_options: Any) -> list[Item]:
    """Matte every input into `output_dir`, resuming a previous run; return this run's manifest items.

    `matte_options` are `convert_video`'s (model, backend, background, downsample_ratio, ...); `run` says
    how Ray is used (or its fields are given as keywords of the same names).
    Inputs already done (manifest says so, the files exist and their fingerprint, of the options and
    the input's size + mtime, still matches) are recorded as skipped; failed, partial or stale ones are
    redone, replacing their outputs. Any other existing file at an output name is replaced only with
    `overwrite`, else refused before any work. `output_dir/manifest.json` holds the same records (and earlier
    runs' ones). Every argument is checked (one-line RvmkitError) before anything is created or Ray
    starts. `log` gets a progress line per input (and segment); `on_failure`, when given, gets the line
    of each failed input instead of `log`, so a run without progress still reports its failures.
    Ray's own warnings are kept quiet when `log` is None.
    """
    run = _run_options(run, matte_options)
    roles, options, fmt = _checked_options(outputs, fmt, run, matte_options)
    if not inputs:
        raise RvmkitError("no inputs given")
    out_dir = _checked_output_dir(output_dir)
    paths = list(dict.fromkeys(Path(raw).expanduser().absolute() for raw in inputs))
    planned = _plan_outputs(paths, out_dir, roles, fmt)
    _check_outputs_spare_inputs(planned)
    _check_run_paths(planned, out_dir / MANIFEST_NAME, options)
    manifest = Manifest.load(out_dir / MANIFEST_NAME)
    replaceable = _check_existing_outputs(planned, manifest, overwrite)
    log = log or _silent
    fingerprints = {str(path): work.output_fingerprint(options, path, run.segments, run.warmup)
                    for path in paths}
    skipped, todo, redone = _split_done(manifest, paths, planned, fingerprints, replaceable)
    started = init_ray(run.address, quiet=log is _silent) if todo else False  # nothing made before Ray is up
    try:
        _prepare_output_dir(out_dir, manifest, skipped, todo, redone, log)
        if todo:
            _prefetch_weights(options)
            run_items(todo, options, segments=run.segments, warmup=run.warmup, overwrite=False,
                      num_workers=run.num_workers, cpus_per_worker=run.cpus_per_worker,
                      on_item=_recorder(manifest, fingerprints, log, on_failure), log=log)
    finally:
        if started:
            _shutdown()
    return [manifest.get(str(path)) for path in paths]


def _checked_options(outputs: Sequence[str], fmt: str, run: RunOptions,
                     matte_options: dict[str, Any]) -> tuple[list[str], MatteOptions, str]:
    """(roles, the workers' options, format) once outputs, format, options and Ray numbers are checked."""
    roles = _check_roles(outputs)
    output_type = matte_options.get("output_type")
    options = work.worker_options(matte_options)
    fmt = _check_format(fmt, output_type, options, roles)
    if fmt == "png":
        options = MatteOptions(**{**options.__dict__, "output_type": "png_sequence"})
    check_cluster_numbers(run.num_workers, run.cpus_per_worker)
    seg.plan_segments(1, run.segments, run.warmup)  # validates the numbers
    return roles, options, fmt


def _checked_output_dir(output_dir: str | os.PathLike) -> Path:
    """The output folder, absolute, once it is known to be a folder (or none yet) the manifest can go in."""
    out_dir = Path(output_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise RvmkitError(f"{describe_path(out_dir)}: is not a folder")
    require_writable_output(out_dir / MANIFEST_NAME)
    return out_dir


def _plan_outputs(paths: list[Path], out_dir: Path, roles: Sequence[str], fmt: str
                  ) -> dict[Path, dict[str, str]]:
    """Each input's output paths by role; two inputs that would write the same file are refused."""
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


def _prepare_output_dir(out_dir: Path, manifest: Manifest, skipped: list[Item], todo: list[_ItemRun],
                        redone: set[str], log: Log) -> None:
    """Once Ray is up: create the folder, record the skipped inputs, clear killed runs' leftovers."""
    _make_dir(out_dir)
    for item in skipped:
        manifest.record(item)
        log(f"skipped {item.input} (already done)")
    for run in todo:
        if run.input in redone:
            log(f"redoing {run.input} (options or input changed since it was done)")
        _remove_leftovers(run.outputs.values())


def _recorder(manifest: Manifest, fingerprints: dict[str, str], log: Log,
              on_failure: Log | None) -> Callable[[_ItemRun, Item], None]:
    """`run_items`'s on_item: record each finished input in the manifest and say how it went."""

    def on_item(run: _ItemRun, item: Item) -> None:
        item.fingerprint = fingerprints[run.input]
        manifest.record(item)
        if item.error is not None:
            (on_failure or log)(f"failed {run.input}: {first_line(item.error)}")
        else:
            log(f"{item.status} {run.input} ({item.frames} frames, {item.seconds:.1f} s)")

    return on_item


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
    if "output_video_mbps" in matte_options:  # as convert_video: no bitrate for PNGs (RVM passes one)
        matte_options["output_video_mbps"] = api.ignored_png_mbps(
            matte_options.get("output_type"), matte_options["output_video_mbps"], progress)
    options = work.worker_options(matte_options)
    check_cluster_numbers(num_workers, cpus_per_worker)
    seg.plan_segments(1, segments, warmup)  # validates the numbers
    input_path = Path(input_source).expanduser().absolute()
    requested = {"composition": output_composition, "alpha": output_alpha, "foreground": output_foreground}
    outputs, info = _check_outputs(input_path, requested, options, overwrite)
    if info.frame_count is not None and info.frame_count <= 1:
        return api.convert_video(input_source, output_composition, output_alpha, output_foreground,
                                 progress=progress, overwrite=overwrite, **matte_options)
    started = init_ray(address, quiet=not progress)
    try:
        _prefetch_weights(options)
        [item] = run_items([_ItemRun(str(input_path), outputs)], options, segments=segments, warmup=warmup,
                           overwrite=overwrite, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
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


def _check_outputs(input_path: Path, requested: dict[str, Any], options: MatteOptions,
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
                                   options.output_video_mbps, options.crf,
                                   api.read_paths(options.background, options.model))
    return {t.role: str(t.path.expanduser().absolute()) for t in targets}, info


def _ratio_for(input_path: Path, options: MatteOptions) -> float:
    from rvmkit.runtime import resolve_model, resolve_ratio

    with open_source(input_path, resize=options.input_resize) as source:
        info = source.info
    spec = resolve_model(options.model, options.backend)
    return resolve_ratio(options.downsample_ratio, info.width, info.height, spec.baked_ratio, spec.label,
                         info.path)


def _prefetch_weights(options: MatteOptions) -> None:
    """Fetch the default weights once here, not in every local worker at the same time."""
    if options.model is None:
        from rvmkit.runtime import resolve_model
        from rvmkit.weights import fetch_pretrained

        fetch_pretrained(resolve_model(None, options.backend).kind)


def _shutdown() -> None:
    import ray

    ray.shutdown()


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
