"""Starting or joining Ray never hangs: a dead address fails in one line within seconds, a stale
`ray_current_cluster` record is ignored (a new local cluster starts), and every ray.init is bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import read_frames, write_clip

pytest.importorskip("ray")

from rvmkit.batch import connect  # noqa: E402
from rvmkit.errors import RvmkitError  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A private Ray temp folder (RAY_TMPDIR, which Ray honours) holding a stale `ray_current_cluster`
    record, so no real user's /tmp/ray is read or written. Short: Ray's socket paths must fit 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="rvr", dir="/tmp"))
    (folder / "ray").mkdir()
    (folder / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{dead_port()}")
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def rvmkit(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "rvmkit", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_wrong_address_fails_in_one_line_within_seconds_and_creates_nothing(tmp_path, official_onnx):
    clip = write_clip(tmp_path / "clip.mp4", read_frames("milk", 2), size=(64, 48))
    started = time.monotonic()
    result = rvmkit(["batch", str(clip), "--output-dir", str(tmp_path / "out"), "--address", "127.0.0.1:1",
                     "--quiet"], timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot join the Ray cluster at 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_stale_current_cluster_record_does_not_stop_a_plain_batch(tmp_path, ray_tmpdir, official_onnx):
    """Ray's ray.init() would join the dead cluster the record names and retry it for many minutes."""
    clip = write_clip(tmp_path / "clip.mp4", read_frames("milk", 2), size=(64, 48))
    out = tmp_path / "out"
    result = rvmkit(["batch", str(clip), "--output-dir", str(out), "--num-workers", "1", "--quiet"],
                    timeout=400)
    assert (result.returncode, result.stderr) == (0, "")
    assert sorted(path.name for path in out.iterdir()) == ["clip.composition.mp4", "manifest.json"]
    assert any(ray_tmpdir.glob("ray/session_*")), "the local cluster did not use RAY_TMPDIR"


def test_dead_ray_address_variable_is_one_line_naming_it(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{dead_port()}")
    expected = r"cluster at 127\.0\.0\.1:\d+ \(from RAY_ADDRESS\): nothing answers at .*refused"
    with pytest.raises(RvmkitError, match=expected):
        connect.start_or_join(ray, None, quiet=True)


@pytest.mark.parametrize("address, expected", [("ray://head.example:10002", ("head.example", 10002)),
                                               ("ray://head.example", ("head.example", 10001)),
                                               ("10.1.2.3:6379", ("10.1.2.3", 6379))])
def test_endpoint_is_what_ray_dials(address, expected):
    assert connect.endpoint(address) == expected


@pytest.mark.parametrize("address", ["no-port-here", "10.1.2.3:http", "ray://:10001"])
def test_malformed_address_is_one_line(address):
    with pytest.raises(RvmkitError, match="expected host:port"):
        connect.endpoint(address)


class FakeRay:
    """ray.init that blocks until released, or raises what it is given."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.release = threading.Event()
        self.error = error
        self.calls: list[dict] = []

    def init(self, **kwargs) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        self.release.wait(30)


def test_join_that_never_answers_stops_at_its_time_limit(monkeypatch):
    """A port that accepts connections but is no Ray cluster: the TCP check passes, ray.init hangs."""
    fake = FakeRay()
    monkeypatch.setattr(connect, "probe", lambda target, origin="": None)
    monkeypatch.setattr(connect, "JOIN_TIMEOUT_S", 0.5)
    monkeypatch.setattr(connect, "_state", {})
    started = time.monotonic()
    try:
        with pytest.raises(RvmkitError, match=r"cannot join the Ray cluster at 10\.9\.9\.9:6379: Ray did not "
                                              r"connect within 0 s"):
            connect.start_or_join(fake, "10.9.9.9:6379", quiet=True)
        assert time.monotonic() - started < 5
        with pytest.raises(RvmkitError, match="still hanging"):  # never two ray.init at once
            connect.start_or_join(fake, "10.9.9.9:6379", quiet=True)
    finally:
        fake.release.set()
    assert fake.calls[0]["address"] == "10.9.9.9:6379"


def test_failed_join_is_one_line_with_the_token_hint(monkeypatch):
    cause = RuntimeError("Failed to connect to GCS. Last connection error: Traceback ...\n"
                         "RpcError: Unauthenticated: RPC error: InvalidAuthToken: token is missing")
    error = ConnectionError("Failed to connect to Ray cluster at 10.9.9.9:6379")
    error.__cause__ = cause
    monkeypatch.setattr(connect, "probe", lambda target, origin="": None)
    monkeypatch.setattr(connect, "_state", {})
    with pytest.raises(RvmkitError) as info:
        connect.start_or_join(FakeRay(error), "10.9.9.9:6379", quiet=True)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("cannot join the Ray cluster at 10.9.9.9:6379: Failed to connect")
    assert "RAY_AUTH_MODE=token" in str(info.value)


def test_local_start_is_bounded_and_ignores_the_recorded_cluster(monkeypatch, ray_tmpdir):
    class SlowRay(FakeRay):
        def init(self, **kwargs) -> None:
            self.calls.append(kwargs)
            time.sleep(30)  # Python-level waits, as Ray's start-up does: the alarm lands here

    slow = SlowRay()
    monkeypatch.setattr(connect, "START_TIMEOUT_S", 0.3)
    started = time.monotonic()
    with pytest.raises(RvmkitError, match=r"cannot start a local Ray cluster: not up within 0 s"):
        connect.start_or_join(slow, None, quiet=True, num_cpus=2)
    assert time.monotonic() - started < 5
    assert slow.calls == [{"address": "local", "num_cpus": 2}]


def test_quiet_connect_silences_what_ray_writes_to_file_descriptor_2(capfd):
    with connect.native_stderr_silenced(True):
        os.write(2, b"[W gcs_client.cc] Failed to get cluster ID\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
