"""Live outputs: H.264 streams a receiver can join at any time, lossless alpha, checks up front,
recordings finalized (and none left empty)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from live.streaming import REPO, Datagrams

from conftest import read_frames
from rvmkit.errors import RvmkitError
from rvmkit.live import outputs
from rvmkit.live.capture import ffmpeg_protocols
from rvmkit.live.outputs import OutputPlan, RecordingSink, StreamSink, fit, placeholder_info, plan_outputs
from rvmkit.video.reader import Frame

TB = Fraction(1, 90000)


def _frame(seq: int, pts: int, rgb: np.ndarray) -> Frame:
    return Frame(index=seq, rgb=rgb, pts=pts, time_base=TB)


def _nal_types(payload: bytes) -> list[int]:
    """NAL unit types of an Annex B H.264 packet."""
    return [payload[i + 3] & 0x1F for i in range(len(payload) - 3) if payload[i:i + 3] == b"\0\0\1"]


@pytest.fixture(scope="module")
def sent_stream() -> tuple[bytes, list[int]]:
    """3 s of a real clip at 10 fps, about a third of the frames dropped (as live does), sent by a
    StreamSink over UDP on 127.0.0.1; the bytes received and the pts sent."""
    frames = [np.ascontiguousarray(frame[::4, ::4]) for frame in read_frames("book", 30)]
    kept = [index for index in range(30) if index % 3 != 1]
    receiver = Datagrams()
    height, width = frames[0].shape[:2]
    sink = StreamSink(f"udp://127.0.0.1:{receiver.port}", "composition", width, height, Fraction(10),
                      mbps=None, crf=None, timeout=2)
    sink.start(TB)
    for index in kept:
        sink.write(frames[index], _frame(index, index * 9000, frames[index]))
    sink.commit()
    return receiver.join(5), [index * 9000 for index in kept]


def test_stream_has_a_keyframe_with_headers_every_second(sent_stream: tuple[bytes, list[int]]) -> None:
    data, sent = sent_stream
    with av.open(io.BytesIO(data), format="mpegts") as container:
        packets = [(packet.pts, packet.is_keyframe, bytes(packet)) for packet in container.demux(video=0)
                   if packet.size]
    assert [pts for pts, _, _ in packets] == sent  # every frame, with its own timestamp
    keys = [pts for pts, key, _ in packets if key]
    assert keys[0] == 0 and max(np.diff(keys + [sent[-1]])) <= 90000  # at most 1 s apart in stream time
    for _, key, payload in packets:
        if key:
            assert {7, 8, 5} <= set(_nal_types(payload))  # SPS and PPS repeated before the IDR slice


def test_a_receiver_joining_late_gets_pictures_within_a_second(sent_stream: tuple[bytes, list[int]]) -> None:
    data, sent = sent_stream
    middle = (len(data) // 2) // 188 * 188  # join at a TS packet boundary half-way through
    with av.open(io.BytesIO(data[middle:]), format="mpegts") as container:
        decoded = [frame.pts for frame in container.decode(video=0)]
    first_sent_after_join = next(pts for pts in sent if pts >= decoded[0] - 90000)
    assert decoded and decoded[0] - first_sent_after_join <= 90000 and decoded == sorted(decoded)


def test_alpha_stream_is_lossless_with_crf_0() -> None:
    alpha = [np.ascontiguousarray(frame[::4, ::4].mean(axis=2).astype(np.uint8))
             for frame in read_frames("book", 5)]
    receiver = Datagrams()
    sink = StreamSink(f"udp://127.0.0.1:{receiver.port}", "alpha", 160, 120, Fraction(10), mbps=None, crf=0,
                      timeout=2)
    sink.start(TB)
    for index, image in enumerate(alpha):
        sink.write(image, _frame(index, index * 9000, image))
    sink.commit()
    with av.open(io.BytesIO(receiver.join(5)), format="mpegts") as container:
        decoded = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert len(decoded) == 5
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(alpha, decoded)) <= 1  # limited-range rounding


def _plan(tmp_path: Path, **changes: object) -> list[OutputPlan]:
    options: dict = {"streams": [], "alpha_streams": [], "records": [], "alpha_records": [],
                     "virtual_camera": None, "transparent": False, "source_label": "udp://127.0.0.1:1",
                     "overwrite": False, "mbps": None, "crf": None}
    options.update(changes)
    return plan_outputs(**options)


def test_plans_are_checked_up_front(tmp_path: Path) -> None:
    (tmp_path / "taken.mkv").write_bytes(b"x")
    cases = [
        ({"streams": ["udp://127.0.0.1:5000"], "transparent": True}, "streams cannot carry transparency"),
        ({"streams": [str(tmp_path / "out.ts")]}, "take a stream URL"),
        ({"streams": ["http://127.0.0.1:5000/x"]}, "cannot stream over http://"),
        ({"records": [str(tmp_path / "a.mp4")], "transparent": True}, "mp4 cannot carry transparency"),
        ({"records": [str(tmp_path / "taken.mkv")]}, "already exists; use --overwrite"),
        ({"records": [str(tmp_path / "a.mkv")], "alpha_records": [str(tmp_path / "a.mkv")]},
         "recorded twice"),
        ({"records": [str(tmp_path / "a.mkv")], "crf": 60}, "beyond H.264's 0 to 51"),
        ({"virtual_camera": "", "transparent": True}, "opaque picture"),
    ]
    if "srt" not in (ffmpeg_protocols(output=True) or {"srt"}):
        cases.append(({"streams": ["srt://127.0.0.1:9000"]}, "this FFmpeg cannot write srt:// URLs"))
    for changes, message in cases:
        with pytest.raises(RvmkitError, match=message):
            _plan(tmp_path, **changes)
    plans = _plan(tmp_path, streams=["udp://127.0.0.1:5000"], alpha_records=[str(tmp_path / "alpha")],
                  records=[str(tmp_path / "t.webm")], transparent=False)
    (folder,) = _plan(tmp_path, records=[f"{tmp_path}/frames.v2/"])  # a trailing slash: a folder of PNGs
    assert folder.target.endswith("frames.v2/")
    kinds = [(plan.role, plan.kind) for plan in plans]
    assert kinds == [("composition", "stream"), ("composition", "recording"), ("alpha", "recording")]
    assert list(tmp_path.iterdir()) == [tmp_path / "taken.mkv"]


def test_virtual_camera_needs_pyvirtualcam_and_v4l2loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # not installed
    with pytest.raises(RvmkitError, match=r"pip install 'rvmkit\[live\]'"):
        outputs.check_virtual_camera()
    monkeypatch.setitem(sys.modules, "pyvirtualcam", type(sys)("pyvirtualcam"))
    monkeypatch.setattr(outputs.sys, "platform", "linux")
    monkeypatch.setattr(outputs, "V4L2LOOPBACK", Path("/nonexistent/v4l2loopback"))
    with pytest.raises(RvmkitError, match="v4l2loopback kernel module is not loaded") as caught:
        outputs.check_virtual_camera()
    assert "\n" not in str(caught.value)


def test_recordings_are_finalized_and_empty_ones_removed(tmp_path: Path) -> None:
    info = placeholder_info("src", 64, 48, Fraction(30), TB)
    empty = RecordingSink(OutputPlan("composition", "recording", str(tmp_path / "empty.mkv")), info,
                          mbps=None, crf=None, overwrite=False)
    full = RecordingSink(OutputPlan("alpha", "recording", str(tmp_path / "alpha.mkv")), info, mbps=None,
                         crf=None, overwrite=False)
    for index in range(3):
        full.write(np.full((48, 64), 40 * index, np.uint8), _frame(index, 9000 + 6000 * index,
                                                                  np.zeros((48, 64, 3), np.uint8)))
    assert empty.commit() is None and full.commit() == tmp_path / "alpha.mkv"
    assert [path.name for path in tmp_path.iterdir()] == ["alpha.mkv"]
    with av.open(str(tmp_path / "alpha.mkv")) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
    assert times == pytest.approx([0.0, 1 / 15, 2 / 15], abs=1e-3)  # from 0, the source's spacing kept


def test_fit_scales_only_other_sizes() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    assert fit(image, 64, 48) is image
    assert fit(image, 32, 24).shape == (24, 32, 3) and fit(image[:, :, 0], 32, 24).shape == (24, 32)


_KILLED_RUN = """
import os, sys
from fractions import Fraction
import numpy as np
from rvmkit.live.outputs import OutputPlan, RecordingSink, placeholder_info
from rvmkit.video.reader import Frame
frames = np.load(sys.argv[2])
height, width = frames.shape[1:3]
info = placeholder_info("src", width, height, Fraction(30), Fraction(1, 90000))
sink = RecordingSink(OutputPlan("composition", "recording", sys.argv[1]), info, mbps=None, crf=None,
                     overwrite=False)
for index, image in enumerate(frames):
    sink.write(image, Frame(index=index, rgb=image, pts=9000 + 3000 * index, time_base=Fraction(1, 90000)))
os.kill(os.getpid(), 9)
"""


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm"])
def test_a_killed_run_leaves_a_recording_playable_to_its_last_written_frame(suffix: str,
                                                                            tmp_path: Path) -> None:
    """Issue 20 §6: after kill -9 the hidden temporary recording could not be played, and stayed."""
    frames = np.stack([np.ascontiguousarray(frame[::4, ::4]) for frame in read_frames("book", 40)])
    np.save(tmp_path / "frames.npy", frames)
    target = tmp_path / f"out{suffix}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(target), str(tmp_path / "frames.npy")],
                            env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = [path for path in tmp_path.iterdir() if path.name.startswith(".")]
    assert left.name.startswith(f".out{suffix}.") and left.name.endswith(f".rvmkit-tmp{suffix}")
    assert not target.exists()
    with av.open(str(left)) as container:
        decoded = [(float(frame.pts * frame.time_base), frame.to_ndarray(format="rgb24"))
                   for frame in container.decode(video=0)]
    # every frame the encoder had handed on: all but under a second (30 frames) it still held (x264's
    # lookahead and B-frames, VP9's alt-ref lag, ProRes' frame threads)
    assert 40 - 30 <= len(decoded) <= 40
    for index, (seconds, image) in enumerate(decoded):
        assert seconds == pytest.approx(index / 30, abs=1e-3)
        assert np.abs(image.astype(int) - frames[index]).mean() < 6, f"frame {index}"
    again = RecordingSink(OutputPlan("composition", "recording", str(target)),
                          placeholder_info("src", frames.shape[2], frames.shape[1], Fraction(30), TB),
                          mbps=None, crf=None, overwrite=False)
    assert not left.exists()  # the next run for the same path removes what the dead one left
    again.write(frames[0], _frame(0, 0, frames[0]))
    assert again.commit() == target
    assert sorted(path.name for path in tmp_path.iterdir()) == ["frames.npy", f"out{suffix}"]
