"""The job API against a real `rvmkit serve` (subprocess, 127.0.0.1): the contract's fields and codes,
SSE progress, Range downloads, cancel, crash isolation, refusals, token, CORS and /live headers."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import types
import urllib.parse
import zipfile
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from serve.serving import (
    RATIO,
    Server,
    decoded,
    files_under,
    finished,
    free_port,
    make_clip,
    submit,
    wait_for,
)
from serve.serving import clips as clips  # the fixture, shared
from serve.serving import events as sse

from rvmkit.video.writer import encode_png

TOKEN = "s3cret-token-of-some-length"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("serve") / "data", "--workers", "1").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """Small limits, a token, one waiting job at most, and CORS for one origin."""
    running = Server(tmp_path_factory.mktemp("strict") / "data", "--max-upload-mb", "0.1",
                     "--max-frames", "15", "--max-duration", "1", "--max-pixels", "80x60",
                     "--max-queued", "1",
                     "--cors-origin", "http://example.test", "--allow-host", "rvmkit.test",
                     token=TOKEN).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """Clips within the strict server's pixel limit (64x48), each over one other limit or none."""
    folder = tmp_path_factory.mktemp("small")
    return {"ok": make_clip(folder / "ok.mp4", 10, size=(64, 48), audio=False),
            "frames": make_clip(folder / "frames.mp4", 20, size=(64, 48), audio=False),
            "duration": make_clip(folder / "duration.mp4", 8, size=(64, 48), fps=5, audio=False),
            "pixels": make_clip(folder / "pixels.mp4", 2, size=(160, 120), audio=False),
            "span": _spread_clip(folder / "span.mkv")}


def _spread_clip(path: Path) -> Path:
    """5 real frames whose timestamps span 10 minutes, in a Matroska file whose stream claims 30 fps (a
    header that says 0.17 s)."""
    from fractions import Fraction

    from conftest import read_frames

    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, rgb in enumerate(read_frames("book", 5)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=64, height=48)
            frame.pts, frame.time_base = index * 150_000, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_sse_progress_rises_monotonically_and_ends_in_done(server, clips):
    client = server.client()
    response = submit(client, clips["short"], outputs="composition,alpha")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/jobs/{job['id']}"
    assert {"id", "state", "progress", "error", "outputs"} <= set(job)
    assert job["state"] in ("queued", "running") and job["outputs"] == {} and job["error"] is None
    assert job["progress"]["frames_total"] == 12
    seen = [data for event, data in sse(client, job["id"]) if event == "job"]
    done = [data["progress"]["frames_done"] for data in seen]
    assert done == sorted(done), f"frames_done went backwards: {done}"
    assert seen[-1]["state"] == "done" and done[-1] == 12
    assert any(data["state"] == "running" for data in seen)
    assert set(seen[-1]["outputs"]) == {"composition", "alpha"}
    assert seen[-1]["outputs"]["alpha"] == f"/api/jobs/{job['id']}/outputs/alpha"
    _check_downloads(client, seen[-1])


def _check_downloads(client: httpx.Client, job: dict) -> None:
    """Whole files, HTTP Range, the contact sheet, and 404 for an output not asked for."""
    whole = client.get(job["outputs"]["composition"])
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert 'filename="short.composition.mp4"' in whole.headers["content-disposition"]
    assert decoded(whole.content) == (12, (160, 120), True)  # every frame, the input's size, its audio
    part = client.get(job["outputs"]["composition"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.content == whole.content[100:200]
    preview = client.get(job["preview"])
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert client.get(f"/api/jobs/{job['id']}/outputs/foreground").status_code == 404


@pytest.mark.slow
def test_two_concurrent_uploads_are_both_accepted_and_run_in_order(server, clips):
    client = server.client()
    answers: list[httpx.Response] = []

    def upload() -> None:
        with server.client() as own:
            answers.append(submit(own, clips["short"], background="#0000ff"))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [answer.status_code for answer in answers] == [202, 202]
    first, second = sorted((answer.json() for answer in answers), key=lambda job: job["created_at"])
    assert first["id"] != second["id"]
    first, second = finished(client, first["id"]), finished(client, second["id"])
    assert first["state"] == second["state"] == "done"
    assert first["started_at"] <= second["started_at"]  # FIFO with one worker
    assert second["started_at"] >= first["finished_at"] - 0.5
    listed = [job["id"] for job in client.get("/api/jobs").json()["jobs"]]
    assert listed.index(second["id"]) < listed.index(first["id"])  # newest first


@pytest.mark.slow
def test_cancel_stops_the_running_job_and_deletes_its_files(server, clips):
    client = server.client()
    job = submit(client, clips["long"]).json()
    wait_for(client, job["id"], lambda j: j["progress"]["frames_done"] > 0)
    worker = server.worker_of(job["id"])
    assert worker is not None
    response = client.delete(f"/api/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert not (server.data_dir / "jobs" / job["id"]).exists()
    assert worker not in server.worker_pids()
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204  # an ended job: record removed
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404


@pytest.mark.slow
def test_a_worker_killed_mid_job_fails_that_job_alone(server, clips):
    client = server.client()
    job = submit(client, clips["long"]).json()
    wait_for(client, job["id"], lambda j: j["progress"]["frames_done"] > 0)
    os.kill(server.worker_of(job["id"]), signal.SIGKILL)  # what the kernel's out-of-memory killer does
    failed = finished(client, job["id"])
    assert failed["state"] == "failed" and "SIGKILL" in failed["error"]
    assert failed["outputs"] == {}
    assert files_under(server.data_dir / "jobs" / job["id"] / "outputs") == []  # nothing half-made stays
    assert client.get("/api/health").status_code == 200
    after = finished(client, submit(client, clips["short"]).json()["id"])
    assert after["state"] == "done"


def test_client_file_name_is_shown_but_never_used_in_a_path(server, clips):
    client = server.client()
    root = server.data_dir.parent
    before = set(root.parent.iterdir())
    with open(clips["short"], "rb") as handle:  # no downsample_ratio field: the server's default
        response = client.post("/api/jobs", files={"file": ("../../x.mp4", handle)})
    assert response.status_code == 202
    job = response.json()
    assert job["name"] == "x.mp4" and job["options"]["downsample_ratio"] == RATIO
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert set(root.parent.iterdir()) == before
    assert not [path for path in root.rglob("*x.mp4*")]


@pytest.mark.parametrize("content, detail", [(b"", "empty (0 bytes)"),
                                             (b"hello, not a video\n" * 50, "Invalid data found")])
def test_an_empty_or_non_video_upload_is_422_with_the_reason(server, content, detail):
    response = server.client().post("/api/jobs", files={"file": ("notes.mp4", content)})
    assert response.status_code == 422
    assert detail in response.json()["detail"] and "'notes.mp4'" in response.json()["detail"]
    assert str(server.data_dir) not in response.text


@pytest.mark.parametrize("fields, detail", [
    ({"outputs": "composition,bogus"}, "outputs"),
    ({"format": "avi"}, "format 'avi'"),
    ({"background": "/etc/hostname"}, "background '/etc/hostname'"),  # never a server path
    ({"downsample_ratio": "2"}, "downsample ratio"),
    ({"background": "transparent", "format": "mp4"}, "cannot carry transparency"),
])
def test_bad_options_are_422_saying_which(server, clips, fields, detail):
    response = submit(server.client(), clips["short"], **fields)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_no_file_field_is_422(server):
    response = server.client().post("/api/jobs", data={"outputs": "alpha"}, files={"other": ("a", b"x")})
    assert response.status_code == 422 and "'file'" in response.json()["detail"]


def test_unknown_job_is_404_json(server):
    response = server.client().get("/api/jobs/0123abcd")
    assert response.status_code == 404 and "no job" in response.json()["detail"]


def test_cors_is_off_by_default(server):
    client = server.client()
    response = client.get("/api/health", headers={"Origin": "http://example.test"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/api/jobs", headers={"Origin": "http://example.test",
                                                     "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_live_is_served_cross_origin_isolated(server):
    live = server.data_dir.parent / f"{server.data_dir.name}-live"
    (live / "index.html").write_text("<!doctype html><title>live</title>")
    (live / "ort.wasm").write_bytes(b"\0asm\1\0\0\0")
    client = server.client()
    assert client.get("/live").status_code in (301, 302, 307, 308)
    for path, kind in (("/live/", "text/html"), ("/live/ort.wasm", "application/wasm")):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert client.get("/live/%2e%2e/data/jobs.sqlite3").status_code == 404
    assert client.get("/live/missing.js").status_code == 404


def test_openapi_documents_the_upload_contract(server):
    client = server.client()
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/health",
            "/api/jobs/{job_id}/outputs/{name}", "/api/jobs/{job_id}/preview"} <= set(spec["paths"])
    upload = spec["paths"]["/api/jobs"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"file", "outputs", "background", "downsample_ratio", "format"} <= set(form)
    assert "202" in upload["responses"]


# --------------------------------------------------------------------------- the strict server


def test_upload_over_the_size_limit_is_413(strict):
    client = strict.client()
    body = os.urandom(300 * 1024)
    declared = client.post("/api/jobs", files={"file": ("big.mp4", body)})
    assert declared.status_code == 413 and declared.json()["limit"] == "upload_size"

    def chunks():  # no Content-Length: refused while streaming, as the limit is passed
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for start in range(0, len(body), 16384):
            yield body[start:start + 16384]
        yield b"\r\n--B--\r\n"

    streamed = client.post("/api/jobs", content=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert streamed.status_code == 413 and streamed.json()["limit"] == "upload_size"
    assert files_under(strict.data_dir / "jobs") == []


@pytest.mark.parametrize("clip, limit", [("pixels", "pixels"), ("frames", "frames"),
                                         ("duration", "duration"), ("span", "duration")])
def test_inputs_over_a_limit_are_422_naming_it(strict, small, clip, limit):
    response = submit(strict.client(), small[clip])
    assert response.status_code == 422
    assert response.json()["limit"] == limit and "limit" in response.json()["detail"]


def test_a_full_queue_is_429(strict, small):
    client = strict.client()
    first = submit(client, small["ok"]).json()
    wait_for(client, first["id"], lambda job: job["state"] != "queued")
    second = submit(client, small["ok"])
    assert second.status_code == 202
    third = submit(client, small["ok"])
    assert third.status_code == 429 and third.json()["limit"] == "queue"
    for job in (first, second.json()):
        client.delete(f"/api/jobs/{job['id']}")


def test_api_calls_need_the_token_when_one_is_set(strict, small):
    anonymous = strict.client(token="")
    anonymous.headers.pop("Authorization", None)
    for path in ("/api/health", "/api/jobs"):
        response = anonymous.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert strict.client(token="wrong").get("/api/jobs").status_code == 401
    upload = anonymous.post("/api/jobs", files={"file": ("ok.mp4", small["ok"].read_bytes())})
    assert upload.status_code == 401
    assert strict.client().get("/api/jobs").status_code == 200
    assert anonymous.get(f"/api/jobs?access_token={TOKEN}").status_code == 200  # EventSource, <video src>
    assert anonymous.get("/").status_code == 200  # the page itself asks for the token
    assert anonymous.get("/docs").status_code == 200


def test_cors_answers_the_allowed_origin_only(strict):
    client = strict.client()
    allowed = client.get("/api/health", headers={"Origin": "http://example.test"})
    assert allowed.headers["access-control-allow-origin"] == "http://example.test"
    other = client.get("/api/health", headers={"Origin": "http://elsewhere.test"})
    assert "access-control-allow-origin" not in other.headers


def test_health_reports_ready(server):
    body = server.client().get("/api/health").json()
    assert body["status"] == "ok" and body["workers"] == 1



def test_a_background_file_that_is_not_an_image_is_422(server, clips):
    with open(clips["short"], "rb") as video:
        response = server.client().post("/api/jobs", data={"downsample_ratio": RATIO}, files={
            "file": ("clip.mp4", video), "background_file": ("bg.png", b"not an image at all")})
    assert response.status_code == 422 and "background image" in response.json()["detail"]


def test_an_uploaded_background_image_goes_behind_the_subject_and_png_comes_zipped(server, clips):
    red = encode_png(np.full((30, 40, 3), (220, 20, 20), np.uint8))
    client = server.client()
    with open(clips["short"], "rb") as video:
        response = client.post("/api/jobs", data={"downsample_ratio": RATIO, "format": "png"},
                               files={"file": ("clip.mp4", video), "background_file": ("red.png", red)})
    assert response.status_code == 202, response.text
    assert response.json()["options"]["background"] == "image"
    job = finished(client, response.json()["id"])
    assert job["state"] == "done", job["error"]
    with zipfile.ZipFile(io.BytesIO(client.get(job["outputs"]["composition"]).content)) as opened:
        names = opened.namelist()
        assert len(names) == 12 and all(name.endswith(".png") for name in names)
        with av.open(io.BytesIO(opened.read(names[0]))) as image:
            first = next(image.decode(video=0)).to_ndarray(format="rgb24")
    corner = first[:8, :8].reshape(-1, 3).mean(0)  # the wall behind the subject: alpha ~0
    assert abs(corner - (220, 20, 20)).max() < 30, corner


def test_live_without_rvmkit_web_answers_404_with_the_reason(tmp_path, monkeypatch):
    from fastapi import HTTPException

    from rvmkit.serve.app import Live
    from rvmkit.serve.config import ServeConfig

    monkeypatch.setitem(sys.modules, "rvmkit.web", None)  # import fails, as without the export-web code
    live = Live(ServeConfig(data_dir=tmp_path))
    live.build()
    with pytest.raises(HTTPException) as missing:
        live.file("index.html")
    assert missing.value.status_code == 404 and "rvmkit.web" in missing.value.detail


def test_live_is_built_with_rvmkit_web_when_it_is_there(tmp_path, monkeypatch):
    from rvmkit.serve.app import Live
    from rvmkit.serve.config import ServeConfig

    def write_site(out_dir, *, overwrite=False):
        out_dir.mkdir(parents=True, exist_ok=overwrite)
        (out_dir / "index.html").write_text("<!doctype html>")
        return out_dir

    monkeypatch.setitem(sys.modules, "rvmkit.web", types.SimpleNamespace(write_site=write_site))
    live = Live(ServeConfig(data_dir=tmp_path))
    live.build()
    assert live.file("") == (tmp_path / "live" / "index.html").resolve()


# --------------------------------------------------------------------------- who may call (guard.py)


def test_a_host_name_the_server_does_not_answer_to_is_403(server):
    client = server.client()
    for host in (f"attacker.example:{server.port}", "attacker.example", f"127.0.0.1.evil.test:{server.port}"):
        for path in ("/api/jobs", "/", "/api/health", "/live/"):
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 403, (host, path, response.text)
            assert "jobs" not in response.json() and "--allow-host" in response.json()["detail"]
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "LOCALHOST."):
        assert client.get("/api/jobs", headers={"Host": host}).status_code == 200


def test_allow_host_adds_a_name(strict):
    client = strict.client()
    assert client.get("/api/jobs", headers={"Host": f"rvmkit.test:{strict.port}"}).status_code == 200
    assert client.get("/api/jobs", headers={"Host": f"other.test:{strict.port}"}).status_code == 403


def test_state_changes_from_another_origin_are_403_and_store_nothing(server, clips):
    client = server.client()
    before = files_under(server.data_dir / "jobs")
    other = f"http://127.0.0.1:{free_port()}"
    for headers in ({"Origin": other}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}, {"Origin": f"http://localhost:{server.port}"}):
        with open(clips["short"], "rb") as handle:
            response = client.post("/api/jobs", files={"file": ("a.mp4", handle)}, headers=headers)
        assert response.status_code == 403 and "--cors-origin" in response.json()["detail"], headers
    assert files_under(server.data_dir / "jobs") == before
    assert all(job["name"] != "a.mp4" for job in client.get("/api/jobs").json()["jobs"])
    same = submit(client, clips["short"], name="same.mp4")  # no Origin (curl), then the page's own origin
    assert same.status_code == 202
    job_id = same.json()["id"]
    refused = client.delete(f"/api/jobs/{job_id}", headers={"Origin": other})
    assert refused.status_code == 403 and client.get(f"/api/jobs/{job_id}").status_code == 200
    own = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    assert client.delete(f"/api/jobs/{job_id}", headers=own).status_code in (200, 204)


def test_an_origin_allowed_by_cors_origin_may_post(strict, small):
    client = strict.client()
    with open(small["ok"], "rb") as handle:  # a bad option: past the guard, refused by the job checks
        response = client.post("/api/jobs", files={"file": ("ok.mp4", handle)}, data={"format": "avi"},
                               headers={"Origin": "http://example.test"})
    assert response.status_code == 422 and "format" in response.json()["detail"]
    with open(small["ok"], "rb") as handle:
        other = client.post("/api/jobs", files={"file": ("ok.mp4", handle)},
                            headers={"Origin": "http://elsewhere.test"})
    assert other.status_code == 403


# --------------------------------------------------------------------------- one server per data folder


@pytest.mark.slow
def test_a_second_server_on_the_same_data_folder_refuses_and_touches_nothing(server, clips):
    client = server.client()
    job = submit(client, clips["long"]).json()
    running = wait_for(client, job["id"], lambda j: j["progress"]["frames_done"] > 0)
    folder = server.data_dir / "jobs" / job["id"]
    before = {path: path.stat().st_mtime_ns for path in folder.iterdir() if path.name != "worker.log"}
    second = subprocess.run([sys.executable, "-m", "rvmkit", "serve", "--port", str(free_port()),
                             "--data-dir", str(server.data_dir), "--downsample-ratio", RATIO],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and len(second.stderr.splitlines()) == 1, second.stderr
    assert "another rvmkit serve" in second.stderr and str(server.process.pid) in second.stderr
    after = client.get(f"/api/jobs/{job['id']}").json()
    assert after["state"] in ("running", "done")
    assert after["progress"]["frames_done"] >= running["progress"]["frames_done"]  # never re-queued
    assert {path: path.stat().st_mtime_ns for path in before} == before
    client.delete(f"/api/jobs/{job['id']}")


def _new_upload(jobs: Path, known: set[str]) -> Path:
    """The folder of the upload in progress, once its first bytes are on disk (bounded wait)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fresh = [path for path in jobs.iterdir() if path.name not in known]
        if fresh and (fresh[0] / "input.mp4").is_file() and (fresh[0] / "input.mp4").stat().st_size:
            assert len(fresh) == 1
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError("the upload never reached the disk")


@pytest.mark.slow
def test_a_second_server_started_during_an_upload_leaves_it_alone(server, clips):
    video, sent, go_on = clips["short"].read_bytes(), threading.Event(), threading.Event()
    answers: list[httpx.Response] = []

    def chunks():  # half the video, then wait while the second server tries to start
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n\r\n'
        yield video[: len(video) // 2]
        sent.set()
        go_on.wait(120)
        yield video[len(video) // 2:] + b"\r\n--B--\r\n"

    def upload() -> None:
        with server.client() as own:
            answers.append(own.post("/api/jobs", content=chunks(),
                                    headers={"Content-Type": "multipart/form-data; boundary=B"}))

    jobs = server.data_dir / "jobs"
    known = {job["id"] for job in server.client().get("/api/jobs").json()["jobs"]}
    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert sent.wait(60)
        partial = _new_upload(jobs, known)  # the upload's folder, no record yet
        second = subprocess.run([sys.executable, "-m", "rvmkit", "serve", "--port", str(free_port()),
                                 "--data-dir", str(server.data_dir), "--downsample-ratio", RATIO],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "another rvmkit serve" in second.stderr
        assert (partial / "input.mp4").stat().st_size > 0  # still there, still being written
    finally:
        go_on.set()
        thread.join(120)
    assert answers[0].status_code == 202, answers[0].text
    job = finished(server.client(), answers[0].json()["id"])
    assert job["state"] == "done" and job["progress"]["frames_done"] == 12


# --------------------------------------------------------------------------- the upload's shape


def test_the_upload_limit_holds_for_the_whole_request(strict, small):
    client = strict.client()
    filler = os.urandom(60 * 1024)
    with open(small["ok"], "rb") as handle:  # each part under 0.1 MB, the two over it
        response = client.post("/api/jobs", files={"file": ("ok.mp4", handle),
                                                   "background_file": ("bg.png", filler + filler)})
    assert response.status_code == 413 and response.json()["limit"] == "upload_size"
    video = small["ok"].read_bytes()

    def chunks():  # chunked (no Content-Length): the video, then three more 'file' parts
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="ok.mp4"\r\n\r\n' + video
        for index in range(3):
            yield (f'\r\n--B\r\nContent-Disposition: form-data; name="file"; filename="x{index}.bin"'
                   '\r\n\r\n').encode() + filler[:25_000]
        yield b"\r\n--B--\r\n"

    repeated = client.post("/api/jobs", content=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert repeated.status_code == 422 and "more than once" in repeated.json()["detail"]
    assert files_under(strict.data_dir / "jobs") == []


def test_a_wrongly_named_video_field_says_which_field_to_use(server, clips):
    with open(clips["short"], "rb") as handle:
        response = server.client().post("/api/jobs", files={"video": ("x.mp4", handle)})
    assert response.status_code == 422
    assert "send the video as the multipart file field 'file'" in response.json()["detail"]


# --------------------------------------------------------------------------- download names


@pytest.mark.slow
def test_a_255_character_file_name_downloads_with_curl_oj(server, clips, tmp_path):
    client = server.client()
    name = "é" * 2 + "x" * 249 + ".mp4"  # 255 characters, 257 bytes
    job = finished(client, submit(client, clips["short"], name=name).json()["id"])
    assert job["state"] == "done" and job["name"] == name
    url = server.url + job["outputs"]["composition"]
    result = subprocess.run(["curl", "-sS", "-f", "-OJ", url], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [saved] = list(tmp_path.iterdir())
    assert len(os.fsencode(saved.name)) <= 255 and saved.name.endswith(".composition.mp4")
    assert saved.name.startswith("__xxx") and decoded(saved.read_bytes())[0] == 12  # curl: the ASCII name
    header = client.get(job["outputs"]["composition"]).headers["content-disposition"]
    encoded = header.split("filename*=utf-8''")[1]
    shown = urllib.parse.unquote(encoded)  # what a browser saves
    assert shown.startswith("éé") and shown.endswith(".composition.mp4") and len(shown.encode()) <= 255


@pytest.mark.parametrize("name, shown", [
    ("..", "video.composition.mp4"), (".mp4", "mp4.composition.mp4"), ("...x.mp4", "x.composition.mp4"),
    ("clip.mp4", "clip.composition.mp4"), ("é" * 255, None)])
def test_download_names_are_never_hidden_nor_over_255_bytes(name, shown):
    from rvmkit.serve.app import _download_name
    from rvmkit.serve.jobs import Job

    job = Job(id="a", state="done", name=name, input="input.mp4", options={}, info={},
              outputs={"composition": "composition.mp4"})
    got = _download_name(job, "composition")
    assert not got.startswith(".") and len(got.encode()) <= 255 and got.endswith(".composition.mp4")
    assert shown is None or got == shown
    got.encode().decode()  # whole characters only


# --------------------------------------------------------------------------- /live


def test_live_that_cannot_be_built_says_so_without_the_servers_paths(tmp_path):
    from fastapi import HTTPException

    from rvmkit.serve.app import Live
    from rvmkit.serve.config import ServeConfig

    pytest.importorskip("rvmkit.web")
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "notes.txt").write_text("mine")  # not an earlier site: write_site refuses
    live = Live(ServeConfig(data_dir=tmp_path))
    live.build()
    with pytest.raises(HTTPException) as missing:
        live.file("index.html")
    assert missing.value.status_code == 404 and "could not be built" in missing.value.detail
    assert str(tmp_path) not in missing.value.detail and "/" not in missing.value.detail
    assert (tmp_path / "live" / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (needs root: CI runs as root; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write into `folder` until the filesystem is full (bounded: far more than the 20 MB disk)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (256 * 1024, 4096, 512, 1):
            for _ in range(1000):
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


@pytest.mark.slow
def test_deleting_an_ended_job_on_a_full_disk_frees_its_files(small_disk, clips):
    server = Server(small_disk / "data", "--min-free-mb", "0").start()
    try:
        client = server.client()
        job = finished(client, submit(client, clips["short"]).json()["id"])
        assert job["state"] == "done"
        _fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0
        response = client.delete(f"/api/jobs/{job['id']}")
        assert response.status_code == 204, response.text
        assert not (server.data_dir / "jobs" / job["id"]).exists()
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert os.statvfs(small_disk).f_bavail > 0
    finally:
        server.stop()


# --------------------------------------------------------------------------- timestamps


@pytest.mark.slow
def test_an_upload_whose_clock_restarts_keeps_every_frame(server, tmp_path):
    """Two MPEG-TS recordings joined end to end (`cat a.ts b.ts`): the second restarts the clock; FFmpeg
    decodes every frame of both, and so must the job."""
    from conftest import read_frames, write_clip

    segment = write_clip(tmp_path / "segment.ts", read_frames("book", 6), fps=30, size=(64, 48), audio=False)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(segment.read_bytes() * 2)
    with av.open(str(joined)) as container:
        expected = sum(1 for _ in container.decode(video=0))
    assert expected == 12
    client = server.client()
    response = submit(client, joined)
    assert response.status_code == 202, response.text
    job = finished(client, response.json()["id"])
    assert job["state"] == "done", job["error"]
    assert job["progress"]["frames_done"] == expected
    assert decoded(client.get(job["outputs"]["composition"]).content)[0] == expected
