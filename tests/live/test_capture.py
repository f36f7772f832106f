"""Live sources: naming, up-front checks, the capture as an iterable source, timestamps, error lines."""

from __future__ import annotations

import errno
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from live.streaming import free_port, send, write_stream_file

from conftest import read_frames
from rvmkit.errors import RvmkitError
from rvmkit.live.capture import (
    TS_OPTIONS,
    Capture,
    CapturedFrame,
    SourceSpec,
    _Timeline,
    ffmpeg_protocols,
    name_os_thread,
    parse_source,
    source_problem,
)
from rvmkit.video.reader import Frame


def test_a_captured_frame_is_a_frame_converted_only_when_used() -> None:
    """Live capture yields `Frame`s as the file reader does; a dropped frame's pixels are never made."""
    made: list[int] = []
    frame = CapturedFrame(4, lambda: made.append(1) or np.zeros((2, 2, 3), np.uint8), 12, Fraction(1, 30),
                          (2, 2), 0, 0.0)
    assert isinstance(frame, Frame) and (frame.index, frame.pts, frame.time_base) == (4, 12, Fraction(1, 30))
    assert made == []
    assert frame.rgb.shape == (2, 2, 3) and frame.rgb.shape == (2, 2, 3) and made == [1]


def test_timeline_keeps_timestamps_and_makes_restarts_follow_on() -> None:
    timeline = _Timeline()
    tb = Fraction(1, 90000)
    assert [timeline.place(pts, tb, 0.0) for pts in (3000, 6000, 9000)] == [3000, 6000, 9000]
    assert timeline.place(0, tb, 0.0) == 12000  # a restarted sender: one frame interval after the last
    assert timeline.place(3000, tb, 0.0) == 15000  # and the new segment keeps its own spacing
    assert timeline.place(200, Fraction(1, 1000), 0.0) == 18000 + 12000  # other time bases are converted


def test_sources_are_named_as_ffmpeg_names_them(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not checked here")
    assert parse_source("udp://127.0.0.1:5000").options == TS_OPTIONS
    rtsp = parse_source("rtsp://127.0.0.1/cam", options={"rtsp_transport": "tcp"})
    assert (rtsp.kind, rtsp.options["rtsp_transport"]) == ("network", "tcp")
    lavfi = parse_source("lavfi:testsrc=size=64x48", size=None)
    assert (lavfi.kind, lavfi.format, lavfi.url) == ("device", "lavfi", "testsrc=size=64x48")
    assert parse_source(str(clip), realtime=True, loop=True) == SourceSpec(str(clip), str(clip), None, "file",
                                                                          {}, True, True)


@pytest.mark.parametrize(("source", "options", "message"), [
    ("/dev/video99", {}, "'/dev/video99': no such device"),
    ("v4l2:/dev/video98", {"size": (640, 480)}, "'/dev/video98': no such device"),
    ("avfoundation:0", {}, "this FFmpeg has no 'avfoundation' input"),
    ("foo://camera", {}, "this FFmpeg cannot read foo:// URLs"),
    ("udp://127.0.0.1:5000", {"size": (640, 480)}, "--source-size and --source-fps are for camera devices"),
    ("udp://127.0.0.1:5000", {"realtime": True}, "--realtime and --loop apply to files"),
    ("talk.mp4", {}, "no such file, device or URL"),
])
def test_bad_sources_are_one_line(source: str, options: dict, message: str) -> None:
    if source.startswith("avfoundation") and "avfoundation" in str(av.formats_available):
        pytest.skip("this FFmpeg has avfoundation")
    with pytest.raises(RvmkitError, match=message.replace("(", r"\(").replace("?", r"\?")) as caught:
        parse_source(source, **options)
    assert "\n" not in str(caught.value)


def test_a_file_needs_realtime(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    with pytest.raises(RvmkitError, match="is a file: add --realtime"):
        parse_source(str(clip))


def test_protocols_come_from_ffmpeg() -> None:
    readable, writable = ffmpeg_protocols(output=False), ffmpeg_protocols(output=True)
    assert readable is not None and writable is not None
    assert {"udp", "tcp", "rtmp", "file"} <= readable and {"udp", "tcp", "rtmp"} <= writable


@pytest.mark.parametrize(("error", "kind", "reason"), [
    (OSError(errno.EBUSY, "Device or resource busy"), "device", "device is busy"),
    (OSError(errno.ENOENT, "No such file"), "device", "no such device"),
    (OSError(errno.EACCES, "Permission denied"), "device", "permission denied (is this user in the 'video'"),
    (OSError(errno.ECONNREFUSED, "Connection refused"), "network", "connection refused"),
    (av.ExitError(1414092869, "Immediate exit requested"), "network", "no data within 3 s (--timeout)"),
])
def test_source_errors_by_errno(error: BaseException, kind: str, reason: str) -> None:
    spec = SourceSpec("src", "src", None, kind)
    assert source_problem(error, spec, 3.0, started=False).startswith(reason)


@pytest.mark.slow
def test_a_stalled_capture_skips_to_the_next_keyframe(tmp_path: Path) -> None:
    """When decoding falls over a second behind a live source (here: the capture thread stalls for 1.5 s),
    the queued packets are skipped, counted as dropped, up to the next keyframe on time."""
    stream = write_stream_file(tmp_path / "s.ts", read_frames("book", 24) * 3, fps=24, size=(64, 48))
    port = free_port()
    counted: list[bool] = []

    def on_frame(dropped: bool) -> None:
        counted.append(dropped)
        if len(counted) == 6:
            time.sleep(1.5)

    notes: list[str] = []
    stop = threading.Event()
    capture = Capture(parse_source(f"udp://127.0.0.1:{port}"), resize=None, timeout=5, reconnect=False,
                      on_frame=on_frame, note=notes.append, stop=stop)
    published: list[int] = []
    reader = threading.Thread(target=lambda: published.extend(frame.pts for frame in capture))
    reader.start()
    time.sleep(0.3)
    send(stream, f"udp://127.0.0.1:{port}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(counted) < 71:
        time.sleep(0.05)
    stop.set()
    reader.join(10)
    assert capture.catch_ups == 1 and "skipping to the next keyframe" in notes[0]
    assert len(counted) >= 71  # every frame counted, the skipped ones too (as dropped)
    step = 3750  # 1/24 s
    skipped = sorted(set(range(0, published[-1], step)) - set(published))
    assert len(skipped) == len(counted) - len(published) >= 10
    resumed = next(pts for pts in published if pts > skipped[0])
    assert resumed > skipped[-1] and resumed % 90000 == 0  # decoding resumed at a keyframe (one a second)


def test_backlog_grows_only_when_packets_come_faster_than_their_timestamps() -> None:
    from rvmkit.live.capture import _Backlog

    backlog = _Backlog()
    for index in range(30):  # in step with the source: nothing queued
        backlog.update(index / 30, 100 + index / 30 + 0.004 * (index % 2))
    assert backlog.seconds < 0.01 and backlog.fresh
    backlog.update(31 / 30, 103.0)  # the sender paused 2 s: late, not queued
    assert backlog.seconds == 0.0
    for index in range(32, 62):  # a second of packets read back to back: they were queued
        backlog.update(index / 30, 103.0 + 0.001 * (index - 31))
    assert 0.9 < backlog.seconds < 1.0 and not backlog.fresh
    backlog.update(500.0, 104.0)  # a timestamp jump (a new segment) starts over
    assert backlog.seconds == 0.0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from Linux's /proc")
def test_threads_are_named_in_the_os_so_profilers_can_tell_them_apart() -> None:
    names: list[str] = []

    def named() -> None:
        name_os_thread("rvmkit-capture-and-more")  # the OS keeps 15 bytes
        names.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    thread = threading.Thread(target=named)
    thread.start()
    thread.join(5)
    assert names == ["rvmkit-capture-"]


def test_timeline_takes_a_clock_jump_as_a_discontinuity_but_keeps_a_real_pause() -> None:
    timeline = _Timeline()
    tb = Fraction(1, 90000)
    assert [timeline.place(pts, tb, 0.1 * i) for i, pts in enumerate((0, 9000, 18000))] == [0, 9000, 18000]
    assert timeline.place(18000 + 3600 * 90000, tb, 0.3) == 27000  # a jump of an hour: follows on
    assert timeline.place(18000 + 3600 * 90000 + 9000, tb, 0.4) == 36000  # the segment keeps its spacing
    paused = 18000 + 3600 * 90000 + 9000 + 20 * 90000
    assert timeline.place(paused, tb, 20.4) == 36000 + 20 * 90000  # 20 s that really passed: kept


def test_timestamps_that_restart_jump_or_step_back_keep_every_frame_and_time_running(tmp_path: Path) -> None:
    """As FFmpeg does with such input: every frame, in order, timestamps increasing with no gap for a
    discontinuity (a file played with --realtime would otherwise wait an hour at the jump)."""
    fps, size, frames = 24, (64, 48), read_frames("book", 32)
    starts = [0, 0, 3600 * fps, 3600 * fps + 8 - fps // 2]  # the clock restarts, jumps 1 h, steps back 0.5 s
    segments = [write_stream_file(tmp_path / f"{index}.ts", frames[8 * index:8 * index + 8], fps, size,
                                  first_pts=start) for index, start in enumerate(starts)]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(segment.read_bytes() for segment in segments))
    expected = []
    for segment in segments:
        with av.open(str(segment)) as container:
            expected += [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    capture = Capture(parse_source(str(joined), realtime=True), resize=None, timeout=5, reconnect=False,
                      on_frame=lambda dropped: None, note=lambda text: None)
    published: list[CapturedFrame] = list(capture)  # the file ends: so does the capture (1.3 s)
    assert capture.error is None
    assert len(published) == len(expected) == 32
    seconds = [float(frame.pts * frame.time_base) for frame in published]
    assert all(later > earlier for earlier, later in zip(seconds, seconds[1:]))
    assert seconds[-1] - seconds[0] == pytest.approx(31 / fps, abs=1e-3)  # every step one frame interval
    assert all(np.array_equal(frame.rgb, image) for frame, image in zip(published, expected))
