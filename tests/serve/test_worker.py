"""The job process: its report protocol, PNG outputs as one zip, and jobs sent to a Ray cluster through
`rvmkit batch`'s code (`rvmkit serve --address`)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from serve.serving import Server, decoded, finished, make_clip, submit

from rvmkit.errors import RvmkitError
from rvmkit.serve.worker import ROLES, Channel, bounded, output_paths, zip_folder


def test_progress_reports_are_throttled_but_the_last_always_goes():
    stream = io.StringIO()
    channel = Channel(stream)
    for done in range(1, 101):
        channel.progress(done, 100)
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) < 10
    assert lines[-1] == '{"done": 100, "total": 100}'


def test_png_outputs_become_one_stored_zip(tmp_path):
    folder = tmp_path / "composition"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index:06d}.png").write_bytes(b"\x89PNG" + bytes([index]))
    archive = zip_folder(folder)
    assert archive == tmp_path / "composition.zip" and not folder.exists()
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == [f"composition/{i:06d}.png" for i in range(3)]
        assert {info.compress_type for info in opened.infolist()} == {zipfile.ZIP_STORED}
    assert [p.name for p in tmp_path.iterdir()] == ["composition.zip"]


def test_output_paths_are_named_by_the_service():
    paths = output_paths(Path("/d"), ["composition", "alpha"], "webm")
    assert {k: str(v) for k, v in paths.items()} == {"composition": "/d/composition.webm",
                                                    "alpha": "/d/alpha.webm"}
    assert output_paths(Path("/d"), ["alpha"], "png")["alpha"] == Path("/d/alpha")  # a folder, zipped later


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov", "png"])
def test_no_two_files_of_a_job_share_a_path(fmt):
    """Every output, its zip, its temporaries, the contact sheet and the upload: all different paths."""
    job = Path("/d/jobs/abc")
    outputs = output_paths(job / "outputs", list(ROLES), fmt)
    written = [job / "input.mp4", job / "background.png", job / "job.json", job / "worker.log",
               job / "outputs" / "preview.png"]
    for path in outputs.values():
        written += [path] if fmt != "png" else [path, path.with_name(path.name + ".zip"),
                                                path.with_name(f".{path.name}.zip.part")]
    assert len(set(written)) == len(written)
    assert all(job / "outputs" in path.parents for path in outputs.values())


def test_a_worker_that_decodes_past_the_frame_limit_stops_the_job():
    seen = []
    report = bounded(lambda done, total: seen.append(done), 3)
    for done in (1, 2, 3):
        report(done, 1)  # the header claimed 1 frame: the real count is what counts
    with pytest.raises(RvmkitError, match="more than 3 frames"):
        report(4, 1)
    assert seen == [1, 2, 3]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster (2 CPUs) the server's jobs join by address, as they would a remote one; the
    session's one (test_batch's fixture reuses a cluster already started, and vice versa)."""
    ray = pytest.importorskip("ray")
    from rvmkit.batch.ray_runner import init_ray

    started = init_ray(num_cpus=2, quiet=True)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_jobs_run_on_a_ray_cluster_with_address(tmp_path, ray_cluster):
    clip = make_clip(tmp_path / "clip.mp4", 10, size=(160, 120), audio=True)
    server = Server(tmp_path / "data", "--address", ray_cluster).start()
    try:
        client = server.client()
        job = finished(client, submit(client, clip, outputs="composition,alpha").json()["id"])
        assert job["state"] == "done", job["error"]
        assert job["progress"]["frames_done"] == 10 and job["preview"] is None  # batch makes no sheet
        assert decoded(client.get(job["outputs"]["composition"]).content) == (10, (160, 120), True)
        assert sorted(p.name for p in (server.data_dir / "jobs" / job["id"] / "outputs").iterdir()) == [
            "alpha.mp4", "composition.mp4"]
    finally:
        server.stop()
