"""Jobs survive the server: a restart keeps finished jobs and runs interrupted ones again; old jobs are
swept; a full disk fails the job cleanly while the server stays up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from serve.serving import Server, decoded, files_under, finished, make_clip, submit, wait_for
from serve.serving import clips as clips  # the fixture, shared

from rvmkit.serve.config import ServeConfig
from rvmkit.serve.jobs import Job, JobStore, new_job_id
from rvmkit.serve.scheduler import Scheduler, died


@pytest.mark.slow
def test_restart_keeps_finished_jobs_and_requeues_the_interrupted_one(tmp_path, clips):
    data = tmp_path / "data"
    clip = make_clip(tmp_path / "ninety.mp4", 90)
    first = Server(data, "--workers", "1").start()
    client = first.client()
    done = finished(client, submit(client, clips["short"]).json()["id"])
    assert done["state"] == "done"
    interrupted = submit(client, clip, outputs="alpha").json()
    wait_for(client, interrupted["id"], lambda job: job["progress"]["frames_done"] > 0)
    worker = first.worker_of(interrupted["id"])
    first.stop(kill=True)  # a crash: no chance to clean up
    deadline = time.monotonic() + 30  # the orphaned worker ends at its next report (broken pipe)
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split()[2] == "Z"

    second = Server(data, "--workers", "1").start()
    try:
        client = second.client()
        kept = client.get(f"/api/jobs/{done['id']}").json()
        assert kept["state"] == "done" and kept["outputs"] == done["outputs"]
        assert client.get(kept["outputs"]["composition"]).status_code == 200
        resumed = client.get(f"/api/jobs/{interrupted['id']}").json()
        assert resumed["state"] in ("queued", "running")
        resumed = finished(client, interrupted["id"])
        assert resumed["state"] == "done", resumed["error"]
        alpha = client.get(resumed["outputs"]["alpha"]).content
        assert decoded(alpha) == (90, (160, 120), True)
    finally:
        second.stop()


def _ended_job(store: JobStore, state: str, age_s: float) -> str:
    job_id = new_job_id()
    store.job_dir(job_id).mkdir()
    (store.job_dir(job_id) / "input.mp4").write_bytes(b"x")
    store.add(Job(id=job_id, state="queued", name="a.mp4", input="input.mp4", options={}, info={},
                  created_at=time.time() - age_s))
    if state != "queued":
        store.start(job_id)
        store.finish(job_id, state) if state in ("done", "failed") else store.cancel(job_id)
        with store._lock:
            store._db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (time.time() - age_s, job_id))
    return job_id


def test_retention_removes_ended_jobs_older_than_it_and_nothing_else(tmp_path):
    store = JobStore(tmp_path)
    old = [_ended_job(store, state, 7200) for state in ("done", "failed", "cancelled")]
    recent = _ended_job(store, "done", 60)
    waiting = _ended_job(store, "queued", 7200)  # old, but not ended: never swept
    scheduler = Scheduler(store, ServeConfig(data_dir=tmp_path, retention_s=3600), lambda: None)
    assert sorted(scheduler.sweep()) == sorted(old)
    assert {job.id for job in store.list()} == {recent, waiting}
    assert sorted(p.name for p in store.jobs_dir.iterdir()) == sorted([recent, waiting])


def test_a_dead_worker_is_reported_by_its_signal():
    assert "SIGKILL" in died(-9) and "out of memory" in died(-9)
    assert "status 3" in died(3)


def _mount_tmpfs(folder, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_fails_the_job_cleanly_and_the_server_stays_up(tmp_path):
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    try:
        clip = make_clip(tmp_path / "clip.mp4", 30, size=(320, 240))
        server = Server(disk / "data", "--min-free-mb", "0").start()
        try:
            client = server.client()
            filler = disk / "filler"
            free = shutil.disk_usage(disk).free
            filler.write_bytes(b"\0" * (free - clip.stat().st_size - 400 * 1024))  # room for the upload only
            job = submit(client, clip, outputs="composition,alpha,foreground", format="mov").json()
            failed = finished(client, job["id"])
            assert failed["state"] == "failed"
            assert "No space left on device" in failed["error"], failed["error"]
            assert files_under(server.data_dir / "jobs" / job["id"] / "outputs") == []
            assert client.get("/api/health").status_code == 200
            filler.unlink()  # space again: the next job goes through
            small = make_clip(tmp_path / "small.mp4", 6, audio=False)
            assert finished(client, submit(client, small).json()["id"])["state"] == "done"
        finally:
            server.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_spare_worker_preloads_the_servers_backend_and_exits_on_eof(tmp_path):
    import sys

    from rvmkit.serve.worker import _backend_args

    plain = Scheduler(JobStore(tmp_path / "plain"), ServeConfig(data_dir=tmp_path / "plain"), lambda: None)
    assert _backend_args(plain.worker_args()) == (None, "cpu")
    from rvmkit.options import MatteOptions

    config = ServeConfig(data_dir=tmp_path / "torch", matte=MatteOptions(backend="torch", device="cpu"))
    scheduler = Scheduler(JobStore(tmp_path / "torch"), config, lambda: None)
    assert _backend_args(scheduler.worker_args()) == ("torch", "cpu")
    spare = subprocess.run([sys.executable, "-m", "rvmkit.serve.worker", *scheduler.worker_args()], input="",
                           capture_output=True, text=True, env=scheduler.worker_env(), timeout=120)
    assert spare.returncode == 0, spare.stderr
    assert spare.stdout == ""  # a spare let go reports nothing
