"""Runs queued jobs in worker processes, `workers` at a time, oldest first, and sweeps old jobs away.

Each job is one `python -m rvmkit.serve.worker` process (see worker.py), started ahead as a spare so
its imports are done when the job comes; a thread per running job reads its progress lines and
records them. The server only ever waits on pipes, so a job that crashes, is
killed by the kernel for memory, or fills the disk ends as `failed` with a reason, and the server and
the other jobs go on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rvmkit.options import output_paths
from rvmkit.serve.config import ServeConfig
from rvmkit.serve.jobs import Job, JobStore

log = logging.getLogger("rvmkit.serve")
STOP_WAIT_S = 5.0  # a worker gets this long after SIGTERM to abort its outputs, then it is killed
SWEEP_EVERY_S = 60.0


def scrub(message: str, job_dir: Path, name: str, input_path: Path) -> str:
    """An error as the client may see it: the upload's own name for the input, paths relative to the
    job (the server's folders are none of the client's business)."""
    return message.replace(str(input_path), name).replace(str(job_dir) + os.sep, "")


def died(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed, e.g. by the kernel when out of memory)" if name == "SIGKILL" else ""
        return f"the worker process died: {name}{hint}"
    return f"the worker process exited with status {returncode} without a result"


class Rate:
    """Frames per second and ETA from the progress reports, measured from the first one (so the model's
    load time does not count as slow frames)."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def update(self, done: int, total: int | None) -> tuple[float | None, float | None]:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
            return None, None
        elapsed, frames = now - self.first[0], done - self.first[1]
        if elapsed < 0.3 or frames <= 0:
            return None, None
        fps = frames / elapsed
        return round(fps, 2), (round((total - done) / fps, 1) if total else None)


class JobRun:
    """One running job: its process, and the thread that follows it."""

    def __init__(self, scheduler: Scheduler, job: Job) -> None:
        self.scheduler, self.job = scheduler, job
        self.process: subprocess.Popen | None = None
        self.stopping = False  # cancelled or server stopping: the outcome is no longer this run's to record
        self.thread = threading.Thread(target=self._follow, name=f"rvmkit-job-{job.id[:8]}", daemon=True)

    def spec(self) -> dict[str, Any]:
        store, job, config = self.scheduler.store, self.job, self.scheduler.config
        job_dir, outputs_dir = store.job_dir(job.id), store.outputs_dir(job.id)
        options = job.options
        background = options.get("background")
        if options.get("background_file"):
            background = str(job_dir / options["background_file"])
        matte = replace(config.matte, downsample_ratio=options["downsample_ratio"], background=background,
                        output_type="png_sequence" if options["format"] == "png" else "video").as_dict()
        address = config.address
        preview = None if address else str(outputs_dir / "preview.png")
        paths = output_paths(outputs_dir, options["outputs"], options["format"])
        return {"input": str(job_dir / job.input), "outputs": {role: str(p) for role, p in paths.items()},
                "outputs_dir": str(outputs_dir), "format": options["format"], "preview": preview,
                "matte": matte, "address": address, "max_frames": config.max_frames}

    def start(self) -> None:
        store = self.scheduler.store
        job_dir, outputs_dir = store.job_dir(self.job.id), store.outputs_dir(self.job.id)
        shutil.rmtree(outputs_dir, ignore_errors=True)  # debris of an earlier, interrupted attempt
        outputs_dir.mkdir(parents=True)
        spec_path = job_dir / "job.json"
        spec_path.write_text(json.dumps(self.spec()))
        self.process = self.scheduler.take_spare()
        try:
            self.process.stdin.write(f"{spec_path}\n".encode())
            self.process.stdin.close()
        except OSError:  # the spare died meanwhile: the job's thread reports how
            pass
        self.thread.start()

    def _follow(self) -> None:
        """Record the reports; the job ends with its result line (its outputs are complete then; the
        process may take a moment more to exit), or with the process when it dies without one."""
        rate = Rate()
        ended = False
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "done" in message:
                fps, eta = rate.update(message["done"], message.get("total"))
                self.scheduler.record(lambda s, m=message, f=fps, e=eta:
                                      s.progress(self.job.id, m["done"], m.get("total"), f, e))
            elif not self.stopping and not ended:
                ended = True
                self._finish(message, 0)
        returncode = self.process.wait()
        self.process.stdout.close()
        if not self.stopping and not ended:
            self._finish(None, returncode)
        self.scheduler.ended(self)

    def _finish(self, result: dict[str, Any] | None, returncode: int) -> None:
        store, job = self.scheduler.store, self.job
        if result is not None and result.get("ok"):
            outputs = dict(result["outputs"])
            if (store.outputs_dir(job.id) / "preview.png").is_file():
                outputs["preview"] = "preview.png"
            frames = result["frames"]
            self.scheduler.record(lambda s: s.finish(job.id, "done", outputs=outputs, frames=frames))
            return
        error = result.get("error") if result is not None else died(returncode)
        job_dir = store.job_dir(job.id)
        error = scrub(error or "failed", job_dir, job.name, job_dir / job.input)
        shutil.rmtree(store.outputs_dir(job.id), ignore_errors=True)  # nothing half-made stays
        self.scheduler.record(lambda s: s.finish(job.id, "failed", error=error))

    def stop(self, wait: bool = True) -> None:
        """SIGTERM (the worker aborts its outputs), then SIGKILL if it lingers."""
        self.stopping = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if wait and self.thread is not threading.current_thread():
            self.thread.join(STOP_WAIT_S)


class Scheduler:
    """FIFO over the store's queued jobs, at most `config.workers` running; `notify` is called after
    every change a client could see (the SSE streams wait on it)."""

    def __init__(self, store: JobStore, config: ServeConfig, notify: Callable[[], None]) -> None:
        self.store, self.config, self.notify = store, config, notify
        self.running: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rvmkit-scheduler", daemon=True)
        self._swept = 0.0
        self._spare: subprocess.Popen | None = None

    def take_spare(self) -> subprocess.Popen:
        """The waiting worker process (a new one if it is gone); another is started to wait."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            spare = self._new_worker()
        if not self._stopped.is_set():
            self._spare = self._new_worker()
        return spare

    def _new_worker(self) -> subprocess.Popen:
        with open(Path(self.store.data_dir) / "workers.log", "ab") as log_file:  # until it has a job
            return subprocess.Popen([sys.executable, "-m", "rvmkit.serve.worker", *self.worker_args()],
                                    stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log_file, env=self.worker_env())

    def worker_args(self) -> list[str]:
        """The server's backend and device, so a spare worker preloads that backend's runtime."""
        args = ["--device", str(self.config.matte.device or "cpu")]
        backend = self.config.matte.backend
        return [*args, "--backend", str(backend)] if backend else args

    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the worker imports the same rvmkit as this server, whatever the working directory
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        return env

    def start(self) -> list[str]:
        requeued = self.store.recover()
        if requeued:
            log.warning("re-queued %d interrupted job(s): %s", len(requeued), ", ".join(requeued))
        with self._lock:
            self._spare = self._new_worker()
        self._thread.start()
        return requeued

    def wake(self) -> None:
        self._wake.set()

    def record(self, change: Callable[[JobStore], Any]) -> None:
        """Apply one change to the store and tell the listeners; a database that cannot be written (a
        full disk) is logged, and the server goes on."""
        try:
            change(self.store)
        except sqlite3.Error as exc:
            log.error("cannot record a job change: %s", exc)
        self.notify()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self._start_queued()
                if self.config.retention_s and time.monotonic() - self._swept > SWEEP_EVERY_S:
                    self.sweep()
            except Exception:  # noqa: BLE001 - the scheduler must outlive any one job's trouble
                log.exception("scheduler error")
            self._wake.wait(1.0)
            self._wake.clear()

    def _start_queued(self) -> None:
        with self._lock:
            while len(self.running) < self.config.workers and not self._stopped.is_set():
                job = self.store.next_queued()
                if job is None or not self.store.start(job.id):
                    return
                run = JobRun(self, job)
                self.running[job.id] = run
                try:
                    run.start()
                except OSError as exc:  # e.g. the disk is full: the job fails, the server goes on
                    del self.running[job.id]
                    self.store.finish(job.id, "failed", error=f"cannot start the job: {exc.strerror or exc}")
                self.notify()

    def ended(self, run: JobRun) -> None:
        with self._lock:
            self.running.pop(run.job.id, None)
        self.notify()
        self.wake()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (its process is stopped); False if it had already ended."""
        with self._lock:
            cancelled = self.store.cancel(job_id)
            run = self.running.get(job_id)
        if run is not None:
            run.stop()
        self.notify()
        return cancelled

    def sweep(self) -> list[str]:
        """Remove the jobs that ended more than `retention_s` ago (records and files)."""
        self._swept = time.monotonic()
        if not self.config.retention_s:
            return []
        old = self.store.finished_before(time.time() - self.config.retention_s)
        for job in old:
            self.store.remove(job.id)
        if old:
            self.notify()
        return [job.id for job in old]

    def stop(self) -> None:
        """Stop taking jobs; running ones are stopped and queued again, to finish after a restart."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            runs = list(self.running.values())
        for run in runs:
            run.stop(wait=False)
            self.record(lambda s, r=run: s.requeue(r.job.id))
        for run in runs:
            run.thread.join(STOP_WAIT_S)
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.stdin.close()  # EOF: the spare exits
            try:
                spare.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                spare.kill()
            spare.stdout.close()
