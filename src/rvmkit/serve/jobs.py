"""The job store: one SQLite database (WAL) plus one folder per job, in a layout the service owns.

    <data-dir>/serve.lock                     held (flock) by the one server using the folder
    <data-dir>/jobs.sqlite3
    <data-dir>/jobs/<id>/input<.ext>          the upload (the client's name is stored, never used in a path)
    <data-dir>/jobs/<id>/background<.ext>     an uploaded background image, if any
    <data-dir>/jobs/<id>/outputs/<role>.<ext> the outputs (composition, alpha, foreground; PNGs as a .zip)
    <data-dir>/jobs/<id>/outputs/preview.png  the contact sheet
    <data-dir>/jobs/<id>/worker.log           the worker process's stderr

Only the server process writes the database; worker processes report to it over a pipe. A job row is
inserted only once its upload is complete and checked, so a folder without a row is debris of an
interrupted upload and is removed at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError

try:
    import fcntl
except ImportError:  # not POSIX: no lock (the service is POSIX-only in practice)
    fcntl = None  # type: ignore[assignment]

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
DB_NAME = "jobs.sqlite3"
LOCK_NAME = "serve.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    state TEXT NOT NULL,
    name TEXT NOT NULL,
    input TEXT NOT NULL,
    options TEXT NOT NULL,
    info TEXT NOT NULL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    fps REAL,
    eta REAL,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
)
"""


@dataclass
class Job:
    """One job's record. `outputs` maps a name (composition, alpha, foreground, preview) to a file name
    inside the job's outputs folder; `options` are the matte options the client chose."""

    id: str
    state: str
    name: str
    input: str
    options: dict[str, Any]
    info: dict[str, Any]
    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None
    eta: float | None = None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


class DataLock:
    """An exclusive lock on the data folder for the server's life: a second server on the same folder
    would re-queue and run the first one's jobs and delete its uploads in progress, so it is refused
    before it touches anything. The kernel drops the lock when the process ends, however it ends."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RvmkitError(f"'{self.path}': cannot open the data folder's lock "
                              f"({exc.strerror or exc})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                who = f" (pid {owner})" if owner.isdigit() else ""
                raise RvmkitError(f"'{self.path.parent}': another rvmkit serve{who} is using this data "
                                  "folder; stop it or give this one another --data-dir") from None
        try:  # who holds it, for the refusal above (best effort: the lock is what counts)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class JobStore:
    """Thread-safe access to the jobs table and the job folders under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.jobs_dir = self.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data_dir / DB_NAME, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    # -- layout --------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():  # ids are uuid4 hex; anything else never reaches the filesystem
            raise ValueError(f"bad job id {job_id!r}")
        return self.jobs_dir / job_id

    def outputs_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "outputs"

    # -- queries -------------------------------------------------------------------------------
    def _rows(self, sql: str, *params: Any) -> list[Job]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_job(row) for row in rows]

    def get(self, job_id: str) -> Job | None:
        found = self._rows("SELECT * FROM jobs WHERE id = ?", job_id)
        return found[0] if found else None

    def list(self, limit: int = 200) -> list[Job]:
        """Newest first."""
        return self._rows("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", limit)

    def count(self, state: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]

    def next_queued(self) -> Job | None:
        """The oldest queued job (FIFO)."""
        found = self._rows("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1")
        return found[0] if found else None

    def finished_before(self, cutoff: float) -> list[Job]:
        return self._rows("SELECT * FROM jobs WHERE state NOT IN ('queued', 'running') "
                          "AND COALESCE(finished_at, created_at) < ?", cutoff)

    # -- changes -------------------------------------------------------------------------------
    def _execute(self, sql: str, *params: Any) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def add(self, job: Job, max_queued: int | None = None) -> bool:
        """Insert a queued job; False (nothing inserted) when `max_queued` jobs are already waiting."""
        with self._lock:
            if max_queued is not None:
                waiting = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
                if waiting >= max_queued:
                    return False
            self._db.execute(
                "INSERT INTO jobs (id, state, name, input, options, info, frames_total, created_at) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job.id, job.name, job.input, json.dumps(job.options), json.dumps(job.info), job.frames_total,
                 job.created_at or time.time()))
        return True

    def start(self, job_id: str) -> bool:
        """queued -> running; False if the job is no longer queued (cancelled meanwhile)."""
        return self._execute("UPDATE jobs SET state = 'running', started_at = ?, frames_done = 0, "
                             "fps = NULL, eta = NULL, error = NULL, attempts = attempts + 1 "
                             "WHERE id = ? AND state = 'queued'", time.time(), job_id) == 1

    def progress(self, job_id: str, done: int, total: int | None, fps: float | None,
                 eta: float | None) -> None:
        self._execute("UPDATE jobs SET frames_done = ?, frames_total = COALESCE(?, frames_total), fps = ?, "
                      "eta = ? WHERE id = ? AND state = 'running'", done, total, fps, eta, job_id)

    def finish(self, job_id: str, state: str, *, error: str | None = None,
               outputs: dict[str, str] | None = None, frames: int | None = None) -> bool:
        """running -> done / failed; False if the job was cancelled or requeued meanwhile."""
        assert state in ("done", "failed")
        done = "COALESCE(?, frames_done)"
        return self._execute(f"UPDATE jobs SET state = ?, error = ?, outputs = ?, frames_done = {done}, "
                             "eta = CASE WHEN ? = 'done' THEN 0 ELSE NULL END, finished_at = ? "
                             "WHERE id = ? AND state = 'running'",
                             state, error, json.dumps(outputs or {}), frames, state, time.time(), job_id) == 1

    def cancel(self, job_id: str) -> bool:
        """queued/running -> cancelled; False if the job had already ended."""
        return self._execute("UPDATE jobs SET state = 'cancelled', eta = NULL, finished_at = ? "
                             "WHERE id = ? AND state IN ('queued', 'running')", time.time(), job_id) == 1

    def requeue(self, job_id: str) -> None:
        """running -> queued (the server is stopping, or restarting after a crash)."""
        self._execute("UPDATE jobs SET state = 'queued', frames_done = 0, fps = NULL, eta = NULL "
                      "WHERE id = ? AND state = 'running'", job_id)

    def remove(self, job_id: str) -> None:
        """Delete every file of the job, then its record: files first, as deleting a record needs free
        space (SQLite's journal) and on a full disk this is what frees it."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self._execute("DELETE FROM jobs WHERE id = ?", job_id)

    def recover(self) -> list[str]:
        """At start-up: re-queue the jobs a previous server left running (their partial outputs go),
        and remove job folders that have no record (uploads that never completed). Returns the ids
        re-queued, oldest first."""
        running = self._rows("SELECT * FROM jobs WHERE state = 'running' ORDER BY seq")
        interrupted = [job.id for job in running]
        for job_id in interrupted:
            shutil.rmtree(self.outputs_dir(job_id), ignore_errors=True)
            self.requeue(job_id)
        known = {job.id for job in self._rows("SELECT * FROM jobs")}
        for folder in self.jobs_dir.iterdir():
            if folder.name not in known:
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
        return interrupted

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values.pop("seq")
    for key in ("options", "info", "outputs"):
        values[key] = json.loads(values[key])
    return Job(**values)
