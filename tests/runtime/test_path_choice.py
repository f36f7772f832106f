"""The per-size choice between the CPU fast path and a plain ONNX Runtime session: measured at a size's
first frame, cached beside the fast graph, reused without measuring, outputs unchanged. The clock is
injected (`path_choice.time_call`): no test here times anything, the runs themselves are real."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import read_frames
from rvmkit.runtime import load_backend, path_choice
from rvmkit.runtime.base import ArrayResult, FrameMatter
from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend, LowResResult

FP32_TOLERANCE = 1e-4
RATIO = 0.5


def sized(width: int, height: int, count: int = 3) -> list[np.ndarray]:
    """Real frames (book) at width x height: each test its own size, so choices never meet."""
    import av

    pictures = [av.VideoFrame.from_ndarray(rgb, format="rgb24") for rgb in read_frames("book", count)]
    return [picture.reformat(width, height, format="rgb24").to_ndarray() for picture in pictures]


def fake_clock(monkeypatch, seconds: dict[str, float]) -> list[str]:
    """The measurement's clock: each path's run takes `seconds[path]` (the runs themselves are real), on a
    machine that is never busy; returns the paths timed, in order."""
    monkeypatch.delenv("RVMKIT_FAST", raising=False)
    monkeypatch.setattr(path_choice, "machine_busy", lambda: False)  # whatever the neighbours do
    timed: list[str] = []

    def fake(path: str, run) -> float:
        run()
        timed.append(path)
        return seconds[path]

    monkeypatch.setattr(path_choice, "time_call", fake)
    return timed


@pytest.fixture
def clock(monkeypatch) -> list[str]:
    """The plain session 1 ms a run, the fast path 2 ms, its stages 3 ms: the plain one wins."""
    return fake_clock(monkeypatch, {"fast": 0.002, "staged": 0.003, "plain": 0.001})


def run_stream(backend, frames: list[np.ndarray]) -> list:
    matter = FrameMatter(backend, RATIO)
    return [matter(rgb) for rgb in frames]


def choice_files(backend: FastOnnxRuntimeBackend, width: int, height: int) -> list:
    """The cached choices of frames of this size (other tests' sizes may be cached beside them)."""
    return sorted(backend.path.parent.glob(f"{backend.path.stem}.*.{width}x{height}-*.choice.json"))


def test_the_choice_is_measured_once_then_read_from_the_cache(official_onnx, clock):
    frames = sized(168, 96)
    first = load_backend("onnxruntime", official_onnx)
    results = run_stream(first, frames)
    paths = ("fast", "staged", "plain") if first.two_stage else ("fast", "plain")
    rounds = len(clock) // len(paths)
    assert path_choice.MIN_ROUNDS <= rounds <= path_choice.MAX_ROUNDS
    assert all(clock.count(path) == rounds for path in paths)
    assert all(isinstance(result, ArrayResult) for result in results)  # the plain session won
    [cached] = choice_files(first, 168, 96)
    choice = json.loads(cached.read_text())
    assert (choice["size"], choice["use"], choice["fast_ms"], choice["plain_ms"]) == ("168x96-84x48", "plain",
                                                                                      2.0, 1.0)
    first.close()

    clock.clear()
    second = load_backend("onnxruntime", official_onnx)
    again = run_stream(second, frames)
    assert clock == []  # a cached choice is not measured again
    assert all(isinstance(result, ArrayResult) for result in again)
    for ours, theirs in zip(again, results, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(ours.arrays(), theirs.arrays(), strict=True))
    second.close()


def test_the_chosen_path_gives_the_other_paths_outputs(official_onnx, clock):
    """The plain session chosen (the clock says so) against the fast path forced, frame by frame with the
    state carried: the official model's outputs either way."""
    frames = sized(200, 112, 4)
    chosen = load_backend("onnxruntime", official_onnx)
    forced = load_backend("onnxruntime", official_onnx, fast=True)
    ours, theirs = run_stream(chosen, frames), run_stream(forced, frames)
    assert all(isinstance(result, ArrayResult) for result in ours)
    assert all(isinstance(result, LowResResult) for result in theirs)
    for mine, other in zip(ours, theirs, strict=True):
        for a, b in zip(mine.arrays(), other.arrays(), strict=True):
            assert a.shape == b.shape and np.abs(a - b).max() <= FP32_TOLERANCE
    background = np.full((112, 200, 3), (120, 255, 155), np.uint8)
    comp, alpha = ours[-1].composite(background)
    comp_fast, alpha_fast = theirs[-1].composite(background)
    assert np.abs(comp.astype(int) - comp_fast.astype(int)).max() <= 1
    assert np.abs(alpha.astype(int) - alpha_fast.astype(int)).max() <= 1


def test_a_damaged_choice_is_ignored_and_measured_again(official_onnx, clock):
    frames = sized(184, 104, 2)
    backend = load_backend("onnxruntime", official_onnx)
    key = path_choice.size_key(184, 104, backend.geometry(104, 184, RATIO).small)
    damaged = path_choice.choice_file(backend.path, key)
    for text in ("{not json", json.dumps({"size": key, "use": "neither", "fast_ms": 1, "plain_ms": 1,
                                          "rounds": 3})):
        damaged.write_text(text)
        clock.clear()
        backend = load_backend("onnxruntime", official_onnx)
        results = run_stream(backend, frames)
        assert clock  # measured again
        assert all(isinstance(result, ArrayResult) for result in results)
        assert json.loads(damaged.read_text())["use"] == "plain"  # and rewritten
        backend.close()


def test_a_fast_win_runs_the_fast_path_and_lets_the_plain_session_go(official_onnx, monkeypatch):
    fake_clock(monkeypatch, {"fast": 0.001, "staged": 0.0015, "plain": 0.002})
    backend = load_backend("onnxruntime", official_onnx)
    results = run_stream(backend, sized(176, 100, 2))
    assert all(isinstance(result, LowResResult) for result in results)
    assert backend._plain is None  # its memory given back
    assert [json.loads(p.read_text())["use"] for p in choice_files(backend, 176, 100)] == ["fast"]


@pytest.mark.parametrize("forced", [{"fast": True}, {"env": "1"}, {"env": "0"}, {"fast": False}])
def test_a_forced_path_is_never_measured(official_onnx, clock, monkeypatch, forced):
    if "env" in forced:
        monkeypatch.setenv("RVMKIT_FAST", forced["env"])
    backend = load_backend("onnxruntime", official_onnx, fast=forced.get("fast"))
    run_stream(backend, sized(192, 108, 1))
    assert clock == []
    assert isinstance(backend, FastOnnxRuntimeBackend) == (forced in ({"fast": True}, {"env": "1"}))


def test_a_cache_that_cannot_keep_the_choice_never_measures(official_onnx, clock, tmp_path, monkeypatch):
    """Without a cache every run would pay the measurement again: the fast path runs, unmeasured."""
    from rvmkit import weights

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fast").write_bytes(b"not a folder")
    monkeypatch.setenv(weights.CACHE_ENV, str(cache))
    backend = load_backend("onnxruntime", official_onnx)
    results = run_stream(backend, sized(168, 96, 1))
    assert clock == [] and isinstance(results[0], LowResResult)


def test_the_measurement_is_bounded(monkeypatch):
    """At least MIN_ROUNDS, then none started after BUDGET_S, never more than MAX_ROUNDS."""
    runs = {"fast": lambda: None, "plain": lambda: None}
    monkeypatch.setattr(path_choice, "time_call", lambda path, run: (run(), 1.0)[1])
    monkeypatch.setattr(path_choice, "BUDGET_S", 0.0)
    assert path_choice.measure(runs)[1] == path_choice.MIN_ROUNDS
    monkeypatch.setattr(path_choice, "BUDGET_S", 3600.0)
    medians, rounds = path_choice.measure(runs)
    assert rounds == path_choice.MAX_ROUNDS and medians == {"fast": 1.0, "plain": 1.0}
    assert path_choice.decide("k", medians, rounds).use == "fast"  # a tie keeps the fast path
    assert path_choice.decide("k", {**medians, "staged": 1.0}, rounds).use == "fast"  # first in PATHS
    assert path_choice.decide("k", {**medians, "staged": 0.5}, rounds).use == "staged"


def test_a_busy_machine_runs_the_fast_path_and_leaves_the_size_unmeasured(official_onnx, clock, monkeypatch):
    """A measurement among busy neighbours would time them and be kept for good: none is made."""
    monkeypatch.setattr(path_choice, "machine_busy", lambda: True)
    backend = load_backend("onnxruntime", official_onnx)
    results = run_stream(backend, sized(160, 92, 2))
    assert clock == [] and all(isinstance(result, LowResResult) for result in results)
    assert choice_files(backend, 160, 92) == []


@pytest.fixture
def fast_wins(monkeypatch) -> list[str]:
    """`clock` the other way round: the fast path 1 ms a run, its stages 1.5 ms, the plain session 2 ms."""
    return fake_clock(monkeypatch, {"fast": 0.001, "staged": 0.0015, "plain": 0.002})


def test_the_stages_are_a_third_path_measured_as_a_stream_runs_them(official_onnx, monkeypatch):
    """Where the stages win the clock, a size's files run on them (the first stage hands over), while
    `infer` (live, FrameMatter) keeps the whole graph; the measurement ran them side by side with states of
    its own, so the stream gives the whole graph's outputs from frame 0."""
    timed = fake_clock(monkeypatch, {"fast": 0.002, "staged": 0.001, "plain": 0.003})
    frames = sized(152, 88, 4)
    backend = load_backend("onnxruntime", official_onnx, threads=2)
    assert isinstance(backend, FastOnnxRuntimeBackend) and backend.two_stage
    results = run_stream(backend, frames)
    assert timed.count("staged") >= path_choice.MIN_ROUNDS
    assert all(isinstance(result, LowResResult) for result in results)
    whole = FastOnnxRuntimeBackend(official_onnx, split=False)
    state = None
    for rgb, result in zip(frames, results, strict=True):
        fgr, pha, state = whole.step(rgb, state, RATIO)
        ours = result.arrays()
        assert np.array_equal(ours[0], fgr[0]) and np.array_equal(ours[1], pha[0])  # infer: the whole graph
    [cached] = choice_files(backend, 152, 88)
    choice = json.loads(cached.read_text())
    assert (choice["use"], choice["staged_ms"], choice["version"]) == ("staged", 1.0, 2)
    _, state = backend.infer_first([backend.prepare(frames[0], RATIO)], None, RATIO)
    middles, _ = backend.infer_first([backend.prepare(frames[1], RATIO)], state, RATIO)
    assert set(middles[0].outputs) >= {item.name for item in backend.stages[0].get_outputs()}  # handed over


def test_a_choice_measured_before_the_stages_is_measured_again(official_onnx, fast_wins, monkeypatch):
    frames = sized(144, 80, 1)
    backend = load_backend("onnxruntime", official_onnx)
    key = path_choice.size_key(144, 80, backend.geometry(80, 144, RATIO).small)
    old = path_choice.choice_file(backend.path, key)
    earlier = {"size": key, "use": "plain", "fast_ms": 3.0, "plain_ms": 2.0, "rounds": 3}
    old.write_text(json.dumps({**earlier, "version": 2}))
    assert path_choice.read_choice(old, key).use == "plain"  # this version's would be kept
    old.write_text(json.dumps({**earlier, "version": 1}))
    results = run_stream(backend, frames)
    assert fast_wins and isinstance(results[0], LowResResult)  # measured again: the fast path won
    assert json.loads(old.read_text())["use"] == "fast"
