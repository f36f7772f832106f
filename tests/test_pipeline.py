"""The streaming core (rvmkit.pipeline), with a tiny fake backend: order, state, chunks, errors, segments,
the newest-frame policy and a halt."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest

from rvmkit import pipeline
from rvmkit.errors import RvmkitError
from rvmkit.policy import NewestFrame
from rvmkit.runtime.base import Backend
from rvmkit.video.reader import Frame

SIZE = (6, 8)  # tiny frames: these tests check ordering and control flow, not matting


class CountingBackend(Backend):
    """pha = the frame's own marker pixel; the state counts frames seen, so order/state bugs show."""

    name = "fake"

    def __init__(self, fail_at: int | None = None, error: BaseException | None = None) -> None:
        self.calls: list[int] = []
        self.fail_at, self.error = fail_at, error

    def step(self, src, state, downsample_ratio):
        seen = 0 if state is None else state
        marker = int(round(float(src[0, 0, 0, 0]) * 255))
        if self.fail_at is not None and marker == self.fail_at:
            raise self.error
        self.calls.append(src.shape[0])
        pha = np.full((1, 1, *src.shape[2:]), seen / 255, np.float32)
        return src.copy(), pha, seen + 1


class ChunkBackend(CountingBackend):
    """Batches time: `infer` takes the whole chunk in one call."""

    def infer(self, inputs, state, downsample_ratio):
        seen = 0 if state is None else state
        self.calls.append(len(inputs))
        raws = [(src.copy(), np.full((1, 1, *src.shape[2:]), (seen + t) / 255, np.float32))
                for t, src in enumerate(inputs)]
        return raws, seen + len(inputs)


def frames(count: int, fail_at: int | None = None):
    """Frames whose first pixel encodes their index; optionally the source fails at `fail_at`."""
    for index in range(count):
        if index == fail_at:
            raise RvmkitError(f"'clip.mp4': frame {index} could not be decoded")
        rgb = np.zeros((*SIZE, 3), np.uint8)
        rgb[0, 0, 0] = index
        yield Frame(index=index, rgb=rgb, pts=index, time_base=Fraction(1, 30))


def markers(result) -> tuple[int, int]:
    """(state count carried in pha, the frame's marker passed through in fgr) of one result."""
    fgr, pha = result.arrays()
    return int(round(pha[0, 0, 0] * 255)), int(round(fgr[0, 0, 0] * 255))


def collect(**kwargs):
    got = []
    backend = kwargs.pop("backend", None) or CountingBackend()
    count = pipeline.run(kwargs.pop("source", None) or frames(kwargs.pop("n", 20)), backend, 0.5,
                         lambda frame, result: got.append((frame.index, *markers(result))), **kwargs)
    return count, got, backend


def test_every_frame_comes_out_in_order_with_the_state_carried():
    count, got, _ = collect(n=20)
    assert count == 20
    assert [index for index, _, _ in got] == list(range(20))
    assert all(seen == index and marker == index for index, seen, marker in got)


def test_frame_range_infers_warmup_frames_but_does_not_write_them():
    count, got, backend = collect(n=20, start=8, stop=12, warmup=3)
    assert count == 4
    assert [index for index, _, _ in got] == [8, 9, 10, 11]
    assert [seen for _, seen, _ in got] == [3, 4, 5, 6]  # state started fresh at frame 5
    assert len(backend.calls) == 7


def test_seq_chunk_batches_time_on_backends_that_can():
    count, got, backend = collect(n=10, seq_chunk=4, backend=ChunkBackend())
    assert count == 10
    assert backend.calls == [4, 4, 2]
    assert [seen for _, seen, _ in got] == list(range(10))


def test_seq_chunk_runs_single_steps_on_a_plain_backend():
    _, got, backend = collect(n=5, seq_chunk=3)
    assert backend.calls == [1] * 5
    assert [seen for _, seen, _ in got] == list(range(5))


class AlphaPerChannelBackend(CountingBackend):
    """Runs like RVM but gives a 3-channel 1x1 'alpha': a model with RVM's names and another graph."""

    model_label = "other.onnx"

    def step(self, src, state, downsample_ratio):
        fgr, _, state = super().step(src, state, downsample_ratio)
        return fgr, src.mean(axis=(2, 3), keepdims=True), state


def test_outputs_of_another_graph_are_named_at_the_first_frame():
    backend = AlphaPerChannelBackend()
    with pytest.raises(RvmkitError, match=r"^'other\.onnx': not an RVM matting model: a 1x3x6x8 frame gave "
                                          r"fgr 1x3x6x8 and pha 1x3x1x1, expected 1x3x6x8 and 1x1x6x8$"):
        collect(n=20, backend=backend)
    assert backend.calls == [1]


def test_decode_error_mid_stream_stops_the_run_and_is_raised():
    with pytest.raises(RvmkitError, match="frame 4 could not be decoded"):
        collect(source=frames(20, fail_at=4))


def test_inference_interrupt_propagates_and_stops_the_other_stages():
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        collect(n=50, backend=CountingBackend(fail_at=5, error=KeyboardInterrupt()))
    assert threading.active_count() == before


def test_writer_error_propagates():
    def consume(frame, result):
        if frame.index == 3:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        pipeline.run(frames(30), CountingBackend(), 0.5, consume)


def test_decoding_runs_ahead_only_a_bounded_number_of_frames():
    decoded = []

    def source():
        for frame in frames(200):
            decoded.append(frame.index)
            yield frame

    lags = []

    def consume(frame, result):
        lags.append(len(decoded) - frame.index)

    pipeline.run(source(), CountingBackend(), 0.5, consume, queue_size=4)
    assert len(lags) == 200
    assert max(lags) <= 4 + 4 + 4  # two bounded queues plus the frames held by each stage


class SegmentFrame(Frame):
    """A frame of a source that restarts (a live source reopened): its segment is given."""

    def __init__(self, index: int, rgb: np.ndarray, part: int) -> None:
        super().__init__(index, rgb, index, Fraction(1, 30))
        self.part = part

    @property
    def segment(self) -> int:
        return self.part


def test_a_new_segment_or_size_restarts_the_state_with_the_ratio_of_its_size():
    """Frames 0-3 one segment, 4-5 another, 6-8 a new size: three streams, each from state 0, each run at
    its size's ratio; a chunk never spans two streams."""
    small = np.zeros((4, 6, 3), np.uint8)
    source = [SegmentFrame(index, np.full((*SIZE, 3), index, np.uint8) if index < 6 else small + index,
                           index // 4) for index in range(9)]
    source[6].part = source[7].part = source[8].part = 1  # same segment as 4-5: only the size changes
    ratios: list[tuple[int, int]] = []
    restarts: list[tuple[int, int]] = []

    class RatioBackend(ChunkBackend):
        def infer(self, inputs, state, downsample_ratio):
            ratios.append(downsample_ratio)
            return super().infer(inputs, state, downsample_ratio)

    got = []
    backend = RatioBackend()
    pipeline.run(source, backend, lambda width, height: width / 100, lambda f, r: got.append(markers(r)[0]),
                 seq_chunk=3, on_restart=lambda last, frame: restarts.append((last.index, frame.index)))
    assert got == [0, 1, 2, 3, 0, 1, 0, 1, 2]
    assert restarts == [(3, 4), (5, 6)] and backend.calls == [3, 1, 2, 3]
    assert ratios == [0.08, 0.08, 0.08, 0.06]


def test_newest_frame_drops_what_a_slow_engine_misses_and_a_halt_ends_the_run():
    """A source faster than the engine: frames are replaced and reported, never queued; halting ends the
    source and writes what was matted; every frame is either written or reported dropped."""
    halt = threading.Event()
    dropped, written, yielded = [], [], []

    class Slow(CountingBackend):
        def step(self, src, state, downsample_ratio):
            threading.Event().wait(0.02)
            return super().step(src, state, downsample_ratio)

    def source():
        for frame in frames(250):
            yielded.append(frame.index)
            if frame.index == 200:
                halt.set()
            threading.Event().wait(0.002)
            yield frame

    count = pipeline.run(source(), Slow(), 0.5, lambda frame, result: written.append(frame.index),
                         policy=NewestFrame(on_drop=lambda frame: dropped.append(frame.index)), halt=halt,
                         queue_size=1)
    assert count == len(written) and written == sorted(written) and yielded == list(range(201))
    assert sorted(written + dropped) == yielded and written and dropped


# --- a two-stage backend (the CPU fast path split, rvmkit.graph.split) on a real clip -------------------

REAL_RATIO = 0.5
SECOND_STAGE = "rvmkit-infer2"


@pytest.fixture(scope="module")
def split_backends(official_onnx):
    """The CPU fast path as two stages (the second in its own thread) and whole."""
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    split, whole = (FastOnnxRuntimeBackend(official_onnx, split=flag) for flag in (True, False))
    assert split.two_stage and not whole.two_stage
    return split, whole


@pytest.fixture(scope="module")
def real_frames() -> list[np.ndarray]:
    """Ten real frames (book) at 160x96."""
    import av

    from conftest import read_frames

    return [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(160, 96, format="rgb24").to_ndarray()
            for rgb in read_frames("book", 10)]


def restarting_source(rgbs: list[np.ndarray]) -> list[Frame]:
    """Frames 0-3 one segment, 4-7 another (a source reopened), 8-9 the second segment at a new size."""
    source = [SegmentFrame(index, rgb, 0 if index < 4 else 1) for index, rgb in enumerate(rgbs)]
    for frame in source[8:]:
        frame.rgb = np.ascontiguousarray(frame.rgb[:64, :128])
    return source


@pytest.fixture
def staged(monkeypatch) -> None:
    """Files on the stages where nothing is measured (the suite forces the fast path: RVMKIT_FAST=1)."""
    monkeypatch.setenv("RVMKIT_SPLIT", "1")


def alphas_of(backend, source, **kwargs) -> tuple[list[tuple[int, np.ndarray]], set[str]]:
    """(frame index, alpha) of each frame the pipeline gave, and the names of the threads seen meanwhile."""
    got, names = [], set()

    def consume(frame, result):
        names.update(thread.name for thread in threading.enumerate())
        got.append((frame.index, result.arrays()[1].copy()))

    # a short output queue: the second stage cannot have matted every frame before the first is written
    count = pipeline.run(source, backend, REAL_RATIO, consume, queue_size=1, **kwargs)
    assert count == len(got)
    return got, names


def stepped(backend, rgbs: list[np.ndarray]) -> list[np.ndarray]:
    """Alphas of frames run in turn with the state carried, from a fresh state."""
    state, alphas = None, []
    for rgb in rgbs:
        _, pha, state = backend.step(rgb, state, REAL_RATIO)
        alphas.append(pha[0])
    return alphas


@pytest.mark.parametrize("chunking", [{}, {"seq_chunk": 3, "start": 2, "warmup": 1}],
                         ids=["frames", "chunks"])
def test_a_two_stage_backend_gives_the_whole_ones_frames_and_restarts_both_stages(
        split_backends, real_frames, chunking, staged, monkeypatch):
    """Every frame, in order, with the alphas of the whole graph; at each new segment and size both
    stages start again: those frames are what a fresh stream's first frame gives."""
    split, whole = split_backends
    handed = []
    first_stage = split.infer_first

    def spy(inputs, state, ratio):
        middles, state = first_stage(inputs, state, ratio)
        handed.extend(type(middle).__name__ for middle in middles)
        return middles, state

    monkeypatch.setattr(split, "infer_first", spy)
    ours, threads = alphas_of(split, restarting_source(real_frames), **chunking)
    # each of the three streams' first frame runs whole, every other frame through the first stage
    assert handed.count("_Done") == 3 and handed.count("_Handed") == len(handed) - 3 > 0
    theirs, whole_threads = alphas_of(whole, restarting_source(real_frames), **chunking)
    assert SECOND_STAGE in threads and SECOND_STAGE not in whole_threads
    first = chunking.get("start", 0)
    assert [index for index, _ in ours] == [index for index, _ in theirs] == list(range(first, 10))
    for (_, a), (_, b) in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5
    got = dict(ours)
    source = restarting_source(real_frames)
    settled = first - chunking.get("warmup", 0)  # the first frame inferred: the state starts there
    expected = {}
    for stream in (source[settled:4], source[4:8], source[8:]):
        expected.update(zip([f.index for f in stream], stepped(whole, [f.rgb for f in stream]), strict=True))
    for index in range(first, 10):
        assert np.abs(got[index] - expected[index]).max() <= 1e-5, index
    # the restarts are visible: frame 4 with frames 0-3's state carried differs from frame 4 fresh
    carried = stepped(whole, [f.rgb for f in source[:5]])[4]
    assert np.abs(carried - expected[4]).max() > 1e-3
    assert not any(thread.name == SECOND_STAGE for thread in threading.enumerate())


def test_a_halt_ends_a_two_stage_run_and_its_second_stage(split_backends, real_frames, staged):
    """Halted at frame 2's write: the frames matted by then are written, in order (at most one each in the
    output queue, the second stage, the queue between the stages and the first), and no thread is left."""
    split, _ = split_backends
    halt = threading.Event()
    written = []

    def consume(frame, result):
        written.append(frame.index)
        if frame.index == 2:
            halt.set()

    source = [SegmentFrame(index, rgb, 0) for index, rgb in enumerate(real_frames)]
    count = pipeline.run(source, split, REAL_RATIO, consume, halt=halt, queue_size=1)
    assert count == len(written) and written == list(range(count)) and 3 <= count <= 7
    assert not any(thread.name == SECOND_STAGE for thread in threading.enumerate())


def test_a_live_run_keeps_one_frame_in_flight_on_a_two_stage_backend(split_backends, real_frames, staged):
    """`rvmkit live`'s way (the newest frame, a one-frame output queue, a halt) runs `infer`, not the stages
    (the shortest time per frame): no second-stage thread; every frame the source gave is written or
    reported dropped."""
    split, _ = split_backends
    halt = threading.Event()
    written, dropped, yielded, names = [], [], [], set()

    def consume(frame, result):
        names.update(thread.name for thread in threading.enumerate())
        written.append(frame.index)
        if len(written) == 3:  # (the source may end first on a busy machine: then no halt is needed)
            halt.set()

    def source():
        for index in range(40):
            yielded.append(index)
            threading.Event().wait(0.002)  # a camera's own pace, faster than the engine
            yield SegmentFrame(index, real_frames[index % len(real_frames)], 0)

    count = pipeline.run(source(), split, REAL_RATIO, consume, halt=halt, queue_size=1,
                         policy=NewestFrame(on_drop=lambda frame: dropped.append(frame.index)))
    assert count == len(written) and written == sorted(written)
    assert sorted(written + dropped) == yielded
    assert written and SECOND_STAGE not in names


def test_an_error_in_consume_stops_a_two_stage_run_and_its_second_stage(split_backends, real_frames, staged):
    split, _ = split_backends

    def consume(frame, result):
        if frame.index == 2:
            raise OSError(28, "No space left on device")

    source = [SegmentFrame(index, rgb, 0) for index, rgb in enumerate(real_frames)]
    with pytest.raises(OSError, match="No space left"):
        pipeline.run(source, split, REAL_RATIO, consume, queue_size=1)
    assert not any(thread.name == SECOND_STAGE for thread in threading.enumerate())


def test_an_error_in_the_second_stage_is_raised_and_stops_the_run(official_onnx, real_frames, staged):
    """The second stage's thread failing (here: at its third frame) fails the run like any stage."""
    from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend

    class FailingSecond(FastOnnxRuntimeBackend):
        calls = 0

        def infer_second(self, middles, state, downsample_ratio):
            self.calls += 1
            if self.calls == 3:
                raise RvmkitError("second stage failed")
            return super().infer_second(middles, state, downsample_ratio)

    backend = FailingSecond(official_onnx, split=True)
    written = []
    source = [SegmentFrame(index, rgb, 0) for index, rgb in enumerate(real_frames)]
    with pytest.raises(RvmkitError, match="second stage failed"):
        pipeline.run(source, backend, REAL_RATIO, lambda frame, result: written.append(frame.index))
    assert backend.calls == 3 and written == [0, 1][:len(written)]  # the frames before it, if written in time
    assert not any(thread.name == SECOND_STAGE for thread in threading.enumerate())
