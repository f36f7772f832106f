"""The job store: FIFO order, state transitions that cannot clobber each other, the queue bound, and
recovery after a crash (interrupted jobs queued again, debris of unfinished uploads removed)."""

from __future__ import annotations

import os
import time

import pytest

from rvmkit.serve.jobs import Job, JobStore, new_job_id


def queued(store: JobStore, name: str = "a.mp4") -> str:
    job_id = new_job_id()
    store.job_dir(job_id).mkdir()
    assert store.add(Job(id=job_id, state="queued", name=name, input="input.mp4", options={"format": "mp4"},
                         info={"frames": 3}, frames_total=3, created_at=time.time()))
    return job_id


def test_next_queued_is_the_oldest(tmp_path):
    store = JobStore(tmp_path)
    first, second = queued(store), queued(store)
    assert store.next_queued().id == first
    assert store.start(first)
    assert store.next_queued().id == second
    assert [job.id for job in store.list()] == [second, first]  # newest first


def test_a_cancelled_job_cannot_be_started_or_finished(tmp_path):
    store = JobStore(tmp_path)
    job_id = queued(store)
    assert store.cancel(job_id)
    assert not store.start(job_id)
    assert not store.finish(job_id, "done", outputs={"composition": "composition.mp4"})
    assert store.get(job_id).state == "cancelled" and not store.cancel(job_id)


def test_finish_records_outputs_and_frames(tmp_path):
    store = JobStore(tmp_path)
    job_id = queued(store)
    store.start(job_id)
    store.progress(job_id, 2, 3, 10.0, 0.1)
    assert store.get(job_id).frames_done == 2
    assert store.finish(job_id, "done", outputs={"alpha": "alpha.mp4"}, frames=3)
    job = store.get(job_id)
    assert (job.state, job.frames_done, job.outputs, job.attempts) == ("done", 3, {"alpha": "alpha.mp4"}, 1)
    store.progress(job_id, 1, 3, None, None)  # a late report changes nothing once it ended
    assert store.get(job_id).frames_done == 3


def test_the_queue_bound_refuses_new_jobs(tmp_path):
    store = JobStore(tmp_path)
    queued(store)
    job = Job(id=new_job_id(), state="queued", name="b.mp4", input="input.mp4", options={}, info={})
    assert not store.add(job, max_queued=1)
    assert store.get(job.id) is None


def test_recover_requeues_running_jobs_and_removes_unrecorded_folders(tmp_path):
    store = JobStore(tmp_path)
    running, waiting = queued(store), queued(store)
    store.start(running)
    (store.outputs_dir(running)).mkdir()
    (store.outputs_dir(running) / ".composition.mp4.123.rvmkit-tmp").write_bytes(b"partial")
    debris = store.jobs_dir / new_job_id()
    debris.mkdir()
    (debris / "input.mp4").write_bytes(b"half an upload")
    store.close()

    again = JobStore(tmp_path)  # the next server
    assert again.recover() == [running]
    assert again.get(running).state == "queued" and again.get(waiting).state == "queued"
    assert not debris.exists() and not again.outputs_dir(running).exists()
    assert again.next_queued().id == running  # it keeps its place in the queue


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x.y"])
def test_job_folders_come_only_from_ids(tmp_path, bad):
    with pytest.raises(ValueError):
        JobStore(tmp_path).job_dir(bad)


def test_the_data_folder_lock_admits_one_server(tmp_path):
    from rvmkit.errors import RvmkitError
    from rvmkit.serve.jobs import DataLock

    first = DataLock(tmp_path).acquire()
    with pytest.raises(RvmkitError, match=f"another rvmkit serve \\(pid {os.getpid()}\\)"):
        DataLock(tmp_path).acquire()
    first.release()
    DataLock(tmp_path).acquire().release()  # free again once the first lets go


def test_remove_deletes_the_files_before_the_record(tmp_path):
    store = JobStore(tmp_path)
    job_id = queued(store)
    (store.job_dir(job_id) / "input.mp4").write_bytes(b"x" * 1000)
    store.close()  # the record cannot be deleted now: the files must go all the same
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.ProgrammingError on a closed database
        store.remove(job_id)
    assert not store.job_dir(job_id).exists()
