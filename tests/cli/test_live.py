"""`rvmkit live` errors: one line, a nonzero exit, no socket left open, no file left behind.

The engine is a test double (these checks are about sources and sinks, not matting)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from live.streaming import free_port, write_stream_file
from PIL import Image

from conftest import read_frames
from rvmkit.cli import main
from rvmkit.live import loop
from rvmkit.live.capture import ffmpeg_protocols
from rvmkit.runtime.base import Backend


class Passthrough(Backend):
    name = "double"

    def step(self, src, state, downsample_ratio):  # type: ignore[no-untyped-def]
        return src, src[:, :1], state


@pytest.fixture(autouse=True)
def engine_double(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "_load_engine", lambda config: Passthrough())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stream_file(tmp_path_factory.mktemp("cli-live") / "clip.ts", read_frames("book", 6), fps=10,
                             size=(64, 48))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(["live", *args])
    except SystemExit as exit_:  # argparse
        code = exit_.code if isinstance(exit_.code, int) else 2
    return code, capsys.readouterr().err


def _closed_tcp_port() -> int:
    return free_port(socket.SOCK_STREAM)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(("rvmkit: error:", "rvmkit live: error:"))]
    assert len(lines) == 1, err
    return lines[0]


def test_help_says_a_stopped_run_keeps_its_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Ctrl-C or SIGTERM is the normal way to end a live run" in text
    assert "Unlike `rvmkit matte` (all or nothing" in text
    assert "every recording is finalized and playable" in text


@pytest.mark.parametrize(("args", "message"), [
    (["/dev/video99", "--output", "udp://127.0.0.1:9"], "'/dev/video99': no such device"),
    (["foo://camera", "--output", "udp://127.0.0.1:9"], "this FFmpeg cannot read foo:// URLs"),
    (["udp://127.0.0.1:9"], "no output: give --output URL"),
    (["udp://127.0.0.1:9", "--output", "udp://127.0.0.1:9", "--background", "transparent"],
     "streams cannot carry transparency"),
    (["udp://127.0.0.1:9", "--output", "udp://127.0.0.1:9", "--seq-chunk", "4"], "one frame at a time"),
    (["udp://127.0.0.1:9", "--output", "udp://127.0.0.1:9", "--input-resize", "0", "10"],
     "input resize 0x10"),
])
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str],
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(args, capsys)
    assert code == 2 and message in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_srt_without_libsrt_is_refused_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    if "srt" in (ffmpeg_protocols(output=False) or set()):
        pytest.skip("this FFmpeg reads srt://")
    code, err = _run(["srt://127.0.0.1:9000", "--output", "udp://127.0.0.1:9"], capsys)
    assert code == 2 and "this FFmpeg cannot read srt:// URLs" in _one_error_line(err)


def test_unreachable_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    port = _closed_tcp_port()
    code, err = _run([f"tcp://127.0.0.1:{port}", "--record", str(tmp_path / "out.mkv")], capsys)
    assert code == 1
    assert _one_error_line(err) == \
        f"rvmkit: error: 'tcp://127.0.0.1:{port}': connection refused (nothing is serving there)"
    assert list(tmp_path.iterdir()) == []


def test_silent_source_times_out_and_frees_its_port(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    code, err = _run([f"udp://127.0.0.1:{port}", "--timeout", "0.5", "--record", str(tmp_path / "o.mkv")],
                     capsys)
    assert code == 1 and time.monotonic() - started < 10
    assert _one_error_line(err).endswith("no data within 0.5 s (--timeout); is the sender running?")
    assert list(tmp_path.iterdir()) == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the source's socket is closed


@pytest.mark.parametrize("scheme", ["tcp", "rtmp"])
def test_sink_refusing_the_connection(scheme: str, clip: Path, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    url = f"{scheme}://127.0.0.1:{_closed_tcp_port()}" + ("/live/matted" if scheme == "rtmp" else "")
    code, err = _run([str(clip), "--realtime", "--output", url, "--record", str(tmp_path / "out.mkv"),
                      "--stats", str(tmp_path / "stats.json")], capsys)
    assert code == 1
    assert _one_error_line(err) == f"rvmkit: error: '{url}': cannot open the stream: connection refused " \
                                   "(is the receiver or media server running?)"
    assert [path.name for path in tmp_path.iterdir()] == ["stats.json"]  # no recording: no frame was matted


def test_help_says_what_auto_means_here_and_offers_only_what_this_ffmpeg_writes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "auto (default): the network sees a long side of 320 px" in text
    assert "long side 320 px, as live tools do" in text and "512" not in text
    examples = text[text.index("examples:"):]
    if "srt" not in (ffmpeg_protocols(output=True) or set()):
        assert "srt://" not in examples


@pytest.mark.parametrize(("args", "message"), [
    (["--record", "y.mp4", "--stats", "y.mp4"], "'y.mp4': written by both --record and --stats"),
    (["--record", "y.mkv", "--record-alpha", "./y.mkv"], "'y.mkv': recorded twice"),
    (["--record", "frames", "--stats", "frames/stats.json"],
     "'frames/stats.json' (--stats): is inside 'frames' (--record)"),
    (["--record", "frames/composition.mp4", "--record-alpha", "frames"],
     "'frames/composition.mp4' (--record): is inside 'frames' (--record-alpha)"),
    (["--record", "out.mkv", "--stats", "CLIP", "--overwrite"], "(--stats): is the input"),
    (["--record", "CLIP", "--overwrite"], "output is the input"),
    (["--record", "out.mkv", "--stats", "bg.png", "--background", "bg.png", "--overwrite"],
     "'bg.png' (--stats): is the input"),
])
def test_outputs_that_collide_are_refused_before_anything_starts(
        args: list[str], message: str, clip: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 §6: `--record y.mp4 --stats y.mp4` exited 0 and left the stats JSON at y.mp4."""
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "clip.mkv"  # MPEG-TS inside: FFmpeg reads it by its content
    local.write_bytes(clip.read_bytes())
    Image.fromarray(read_frames("book", 1)[0]).save(tmp_path / "bg.png")
    before = sorted(path.name for path in tmp_path.iterdir())
    args = [str(local) if arg == "CLIP" else arg for arg in args]
    code, err = _run([str(local), "--realtime", *args], capsys)
    assert code == 2 and message in _one_error_line(err)
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written, nothing replaced
    assert local.read_bytes() == clip.read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "1e300"], "--timeout 1e+300: must be a number from 0.1 to 3600"),
    (["--timeout", "0.001"], "--timeout 0.001: must be a number from 0.1 to 3600"),
    (["--max-fps", "0.01"], "--max-fps 0.01: must be a number from 1 to 1000"),
    (["--max-fps", "1e9"], "--max-fps 1000000000.0: must be a number from 1 to 1000"),
    (["--max-fps", "nan"], "--max-fps nan: must be a number from 1 to 1000"),
    (["--max-fps", "x"], "argument --max-fps: 'x' is not a number"),
    (["--source-fps", "5000"], "--source-fps 5000.0: must be a number from 0.1 to 1000"),
    (["--source-size", "100000x100000"], "--source-size 100000x100000: width and height must be from 1"),
    (["--input-resize", "100000", "10"], "input resize 100000x10"),
    (["--output-video-mbps", "1e12"], "must be a number from 0.01 to 1000"),
    (["--crf", "-1"], "crf -1: must be a whole number from 0 to 63"),
    (["--downsample-ratio", "7"], "downsample ratio"),
])
def test_every_number_has_a_range_checked_up_front(args: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(["/dev/video99", "--record", "out.mkv", *args], capsys)
    assert code == 2 and message in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_no_thread_is_left_behind() -> None:
    time.sleep(0.2)
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("rvmkit-")]
