"""The live loop in-process, on a backend test double: newest frame only, drops, state, size changes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from live.streaming import write_stream_file
from PIL import Image

from conftest import read_frames
from rvmkit.live.loop import LiveConfig, live_ratio, run_live
from rvmkit.runtime.base import Backend, State


class CountingBackend(Backend):
    """A test double: alpha is the frame's brightness, fgr the frame; the state counts the frames since
    the stream (re)started; `delay` makes every frame that slow. Records each stream start's frame size."""

    name = "double"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.starts: list[tuple[int, int]] = []
        self.states: list[int] = []

    def step(self, src: np.ndarray, state: State, downsample_ratio: float
             ) -> tuple[np.ndarray, np.ndarray, State]:
        if self.delay:
            time.sleep(self.delay)
        if state is None:
            self.starts.append((src.shape[3], src.shape[2]))
        state = (state or 0) + 1
        self.states.append(state)
        return src, src.mean(axis=1, keepdims=True), state


def _recorded(folder: Path) -> list[int]:
    """The source frame numbers (seq) of a PNG-folder recording, in order."""
    return sorted(int(path.stem) for path in folder.glob("*.png"))


@pytest.fixture(scope="module")
def clip_30fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s at 30 fps, 160x120."""
    return write_stream_file(tmp_path_factory.mktemp("loop") / "clip.ts", read_frames("book", 45), fps=30,
                             size=(160, 120))


@pytest.mark.slow
def test_a_slow_engine_drops_frames_and_latency_stays_bounded(clip_30fps: Path, tmp_path: Path) -> None:
    delay = 0.12  # about 8 fps against a 30 fps source: a queue would be ~4 s behind by the end
    engine = CountingBackend(delay)
    report = run_live(LiveConfig(str(clip_30fps), realtime=True, records=[str(tmp_path / "out")],
                                 stats=str(tmp_path / "stats.json"), quiet=True), backend=engine)
    totals = report.totals
    assert totals["frames_in"] == 45 and totals["frames_in"] == totals["frames_out"] + totals["dropped"]
    assert totals["dropped"] >= 15 and totals["frames_out"] >= 3
    assert totals["latency_max_ms"] < 1000 * (2 * delay + 0.3), totals  # bounded: no frame waits in a queue
    recorded = _recorded(tmp_path / "out")  # PNGs are named by source frame number
    assert len(recorded) == totals["frames_out"] and max(np.diff(recorded)) > 1
    # one stream: the state carried across every dropped frame (a start per warm-up and one for the run)
    assert len(engine.starts) == 2 and engine.states[-1] == totals["frames_out"]


def test_recordings_hold_the_source_frames_they_are_named_after(clip_30fps: Path, tmp_path: Path) -> None:
    config = LiveConfig(str(clip_30fps), realtime=True, records=[str(tmp_path / "out")],
                        alpha_records=[str(tmp_path / "alpha")], quiet=True)
    report = run_live(config, backend=CountingBackend())
    assert report.totals["frames_out"] + report.totals["dropped"] == 45
    recorded = _recorded(tmp_path / "out")
    assert recorded == _recorded(tmp_path / "alpha") and len(recorded) == report.totals["frames_out"]
    frames = read_frames("book", 45)
    first = np.asarray(Image.open(tmp_path / "alpha" / f"{recorded[0]:06d}.png"))
    # the double's alpha is the frame's brightness: the recorded alpha belongs to that very frame
    source = np.asarray(Image.fromarray(frames[recorded[0]]).resize((160, 120), Image.BOX)).mean(axis=2)
    assert np.abs(first.astype(float) - source).mean() < 8


@pytest.mark.slow
def test_max_fps_caps_the_output_rate(clip_30fps: Path, tmp_path: Path) -> None:
    report = run_live(LiveConfig(str(clip_30fps), realtime=True, max_fps=5, records=[str(tmp_path / "out")],
                                 quiet=True), backend=CountingBackend())
    assert 4 <= report.totals["frames_out"] <= 9  # 1.5 s at 5 fps, plus the first frame
    assert report.totals["frames_out"] + report.totals["dropped"] == 45


def test_a_size_change_restarts_the_state_and_outputs_keep_their_size(tmp_path: Path) -> None:
    frames = read_frames("book", 24)
    first = write_stream_file(tmp_path / "a.ts", frames[:12], fps=12, size=(160, 120))
    second = write_stream_file(tmp_path / "b.ts", frames[12:], fps=12, size=(128, 96))
    joined = tmp_path / "joined.ts"  # one stream whose resolution changes, as a camera switching mode
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    engine = CountingBackend()
    report = run_live(LiveConfig(str(joined), realtime=True, records=[str(tmp_path / "out")], quiet=True),
                      backend=engine)
    assert report.totals["state_resets"] == 1 and engine.starts[-2:] == [(160, 120), (128, 96)]
    assert any("size changed 160x120 -> 128x96; recurrent state restarted; outputs stay 160x120 (scaled)"
               in note for note in report.notes), report.notes
    sizes = {Image.open(path).size for path in (tmp_path / "out").glob("*.png")}
    assert sizes == {(160, 120)} and report.totals["frames_out"] + report.totals["dropped"] == 24


def test_stop_event_ends_a_looping_run_cleanly(clip_30fps: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    report = run_live(LiveConfig(str(clip_30fps), realtime=True, loop=True, records=[str(tmp_path / "o.mkv")],
                                 quiet=True), stop=stop, backend=CountingBackend())
    timer.join()
    assert report.recordings == [tmp_path / "o.mkv"] and report.totals["frames_out"] > 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o.mkv"]


def test_no_thread_outlives_a_run() -> None:
    time.sleep(0.2)
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("rvmkit-")]


@pytest.mark.slow
def test_transparent_recordings_carry_alpha(clip_30fps: Path, tmp_path: Path) -> None:
    import av

    config = LiveConfig(str(clip_30fps), realtime=True, background="transparent", max_fps=10,
                        records=[str(tmp_path / "t.webm"), str(tmp_path / "rgba")], quiet=True)
    report = run_live(config, backend=CountingBackend())
    decoder = av.CodecContext.create("libvpx-vp9", "r")  # FFmpeg's native VP9 decoder drops alpha
    with av.open(str(tmp_path / "t.webm")) as container:
        frames = [frame for packet in container.demux(video=0) for frame in decoder.decode(packet)]
    assert len(frames) == report.totals["frames_out"] and frames[0].format.name == "yuva420p"
    png = np.asarray(Image.open(next((tmp_path / "rgba").glob("*.png"))))
    assert png.shape == (120, 160, 4) and png[..., 3].std() > 1  # the double's alpha: brightness


@pytest.mark.slow
def test_virtual_camera_gets_rgb_frames(clip_30fps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    sent: list[np.ndarray] = []

    class Camera:  # pyvirtualcam's interface, as a stand-in (no v4l2loopback here)
        def __init__(self, width: int, height: int, fps: float, fmt: object = None, device: object = None):
            self.device = "/dev/video42"
            assert (width, height, fps) == (160, 120, 30.0)

        def send(self, frame: np.ndarray) -> None:
            sent.append(frame)

        def close(self) -> None:
            sent.append(None)  # type: ignore[arg-type]

    fake = types.ModuleType("pyvirtualcam")
    fake.Camera, fake.PixelFormat = Camera, types.SimpleNamespace(RGB="RGB")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake)
    monkeypatch.setattr("rvmkit.live.outputs.V4L2LOOPBACK", clip_30fps.parent)  # as if the module were loaded
    report = run_live(LiveConfig(str(clip_30fps), realtime=True, virtual_camera="", max_fps=10, quiet=True),
                      backend=CountingBackend())
    assert len(sent) == report.totals["frames_out"] + 1 and sent[-1] is None
    assert all(frame.shape == (120, 160, 3) and frame.dtype == np.uint8 for frame in sent[:-1])


@pytest.mark.slow
def test_an_ffmpeg_device_input_by_name(tmp_path: Path) -> None:
    """FORMAT:NAME sources go to FFmpeg's device inputs (lavfi's test pattern here: no camera needed)."""
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    report = run_live(LiveConfig("lavfi:testsrc=size=96x64:rate=20", records=[str(tmp_path / "out")],
                                 quiet=True), stop=stop, backend=CountingBackend())
    timer.join()
    assert 20 <= report.totals["frames_in"] <= 40 and report.totals["frames_out"] >= 10
    assert {Image.open(path).size for path in (tmp_path / "out").glob("*.png")} == {(96, 64)}


@pytest.mark.parametrize(("size", "request_", "ratio"), [((640, 480), None, 0.5), ((1280, 720), None, 0.25),
                                                         ((200, 100), None, 1.0), ((1280, 720), 0.4, 0.4)])
def test_auto_ratio_gives_the_network_a_fixed_size(size: tuple[int, int], request_: float | None,
                                                   ratio: float) -> None:
    """auto: long side 320 px whatever the source (ratio 0.5 at 640x480); an explicit ratio is kept."""
    assert live_ratio(request_, *size, CountingBackend(), "src") == pytest.approx(ratio)


def test_a_baked_ratio_wins_over_live_auto() -> None:
    engine = CountingBackend()
    engine.baked_ratio = 0.375
    assert live_ratio(None, 1280, 720, engine, "src") == 0.375


def test_a_source_whose_size_keeps_changing_holds_bounded_backgrounds_and_notes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each new size opens a background (here a video's decoder) and writes a note; a source that keeps
    changing size must not pile up open decoders or notes for as long as it runs."""
    from conftest import CLIPS
    from rvmkit.live import loop
    from rvmkit.progress import Console

    sizes = [(160, 120), (128, 96), (96, 72)] * 2
    frames = read_frames("book", 3 * len(sizes))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(
        write_stream_file(tmp_path / f"{k}.ts", frames[3 * k:3 * k + 3], fps=12, size=size).read_bytes()
        for k, size in enumerate(sizes)))
    open_now, most = [0], [0]
    real_parse = loop.parse_background

    def counted(*args, **kwargs):
        background = real_parse(*args, **kwargs)
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        close = background.close

        def closed() -> None:
            open_now[0] -= 1
            close()

        background.close = closed
        return background

    monkeypatch.setattr(loop, "parse_background", counted)
    monkeypatch.setattr(Console, "MAX_NOTES", 3)
    report = run_live(LiveConfig(str(joined), realtime=True, records=[str(tmp_path / "out")],
                                 background=str(CLIPS["milk"]), quiet=True), backend=CountingBackend())
    assert report.totals["state_resets"] == len(sizes) - 1, report.totals
    assert most[0] == loop.BACKGROUND_SIZES and open_now[0] == 0
    size_notes = [note for note in report.notes if "size changed" in note]
    assert len(report.notes) == 4 and len(size_notes) <= 3, report.notes
    assert report.notes[-1].endswith("more notes not kept")
