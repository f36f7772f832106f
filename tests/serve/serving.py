"""A real `rvmkit serve` in a subprocess on 127.0.0.1 (a free port, a temporary data folder), and the
tiny clips the serve tests upload. Every wait is bounded."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from conftest import read_frames, write_clip

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

RATIO = "0.5"
START_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`rvmkit serve --data-dir DATA ...`; `start()` returns once /api/health answers 200."""

    def __init__(self, data_dir: Path, *args: str, token: str | None = None) -> None:
        self.data_dir, self.args, self.token = Path(data_dir), list(args), token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self) -> Server:
        live = self.data_dir.parent / f"{self.data_dir.name}-live"
        live.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "rvmkit", "serve", "--port", str(self.port), "--data-dir",
                   str(self.data_dir), "--downsample-ratio", RATIO, *self.args]
        if "--live-dir" not in self.args:  # don't build the in-browser site in every test server
            command += ["--live-dir", str(live)]
        if self.token:
            command += ["--token", self.token]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log.read_text()[-2000:]
                raise RuntimeError(f"server exited ({self.process.returncode}): {log}")
            try:
                if self.client(timeout=2).get("/api/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start in {START_TIMEOUT_S} s: {self.log.read_text()[-2000:]}")

    def client(self, timeout: float = 60, token: str | None = None) -> httpx.Client:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def worker_pids(self) -> list[int]:
        """The server's worker processes (its children: the job workers and the spare)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            text = (task / "children").read_text().split()
            pids += [int(pid) for pid in text]
        return pids

    def worker_of(self, job_id: str) -> int | None:
        """The worker process running `job_id`: the one writing that job's worker.log."""
        log = str(self.data_dir / "jobs" / job_id / "worker.log")
        for pid in self.worker_pids():
            try:
                if os.readlink(f"/proc/{pid}/fd/2") == log:
                    return pid
            except OSError:
                continue
        return None


def submit(client: httpx.Client, clip: Path, name: str | None = None, **fields: str) -> httpx.Response:
    with open(clip, "rb") as handle:
        return client.post("/api/jobs", files={"file": (name or clip.name, handle, "video/mp4")},
                           data={"downsample_ratio": RATIO, **fields})


def wait_for(client: httpx.Client, job_id: str, predicate: Any, timeout: float = JOB_TIMEOUT_S) -> dict:
    """Poll the job until predicate(job) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {job}")


def finished(client: httpx.Client, job_id: str) -> dict:
    return wait_for(client, job_id, lambda job: job["state"] not in ("queued", "running"))


def events(client: httpx.Client, job_id: str) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of the job's Server-Sent Events stream, until the server ends it."""
    with client.stream("GET", f"/api/jobs/{job_id}/events", timeout=JOB_TIMEOUT_S) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = "message", []
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield event, json.loads("\n".join(data))
                event, data = "message", []


def make_clip(path: Path, count: int, size: tuple[int, int] = (160, 120), fps: int = 30,
              audio: bool = True) -> Path:
    """An H.264 .mp4 of `count` real frames (book.mkv played forward and back) at `size`, with a tone
    track when `audio`."""
    frames = read_frames("book", min(count, 109))
    cycle = frames + frames[-2:0:-1]
    return write_clip(path, [cycle[i % len(cycle)] for i in range(count)], fps=fps, size=size, audio=audio)


def decoded(data: bytes) -> tuple[int, tuple[int, int], bool]:
    """Frame count, size and audio presence of a downloaded video."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, (stream.width, stream.height), bool(container.streams.audio)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve-clips")
    return {"short": make_clip(folder / "short.mp4", 12),
            "long": make_clip(folder / "long.mp4", 400)}

