"""The CPU fast path (low-res graph + kernels) gives the official model's outputs, and the pipeline's
fused composite path writes the same frames as the plain path. The graph rewrite itself is tested in
tests/graph/test_lowres.py, the kernels in test_kernels.py."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest

from conftest import read_frames, unread_r1
from rvmkit.graph.lowres import low_res_model_path
from rvmkit.runtime import load_backend
from rvmkit.runtime.cpu import cpu_signature
from rvmkit.runtime.ort_fast import SPLIT_ENV, FastOnnxRuntimeBackend, stages_by_default, stages_preferred
from rvmkit.video.composite import alpha_u8, composite

FP32_TOLERANCE = 1e-4
SIZE = (322, 182)  # odd-ish size: border weights and truncated low-res sizes both get exercised
RATIO = 0.3


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    import av

    out = []
    for rgb in read_frames("book", 3):
        picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(*SIZE, format="rgb24")
        out.append(picture.to_ndarray())
    return out


@pytest.fixture(scope="session")
def official_outputs(official_onnx, frames) -> list[tuple[np.ndarray, np.ndarray]]:
    session = ort.InferenceSession(str(official_onnx), providers=["CPUExecutionProvider"])
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    outputs = []
    for rgb in frames:
        src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        feed = {"src": src, "downsample_ratio": np.array([RATIO], np.float32),
                **{f"r{k + 1}i": state[k] for k in range(4)}}
        fgr, pha, *state = session.run(None, feed)
        outputs.append((fgr, pha))
    return outputs


@pytest.fixture(scope="session")
def fast_backend(official_onnx, tmp_path_factory) -> FastOnnxRuntimeBackend:
    backend = load_backend("onnxruntime", official_onnx)
    assert isinstance(backend, FastOnnxRuntimeBackend)  # the default CPU path
    return backend


def test_fast_path_matches_the_official_onnx_in_fp32(fast_backend, frames, official_outputs):
    state = None
    for rgb, (fgr_ref, pha_ref) in zip(frames, official_outputs, strict=True):
        fgr, pha, state = fast_backend.step(rgb, state, RATIO)
        assert fgr.shape == fgr_ref.shape and pha.shape == pha_ref.shape
        assert np.abs(fgr - fgr_ref).max() <= FP32_TOLERANCE
        assert np.abs(pha - pha_ref).max() <= FP32_TOLERANCE
        assert all(isinstance(value, ort.OrtValue) for value in state)  # the states never leave ORT


@pytest.mark.slow
def test_float_input_gives_the_outputs_of_the_uint8_frame(fast_backend, frames):
    rgb = frames[0]
    src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
    coef_a, coef_b, _ = fast_backend.infer_low_res(fast_backend.downsample(rgb, RATIO), None)
    assert np.array_equal(fast_backend.downsample(src, RATIO), fast_backend.downsample(rgb, RATIO))
    fgr, pha = fast_backend.finish_float(rgb, coef_a, coef_b, RATIO)
    fgr_f, pha_f = fast_backend.finish_float(src, coef_a, coef_b, RATIO, parallel=False)
    assert np.array_equal(fgr, fgr_f) and np.array_equal(pha, pha_f)


def test_fused_composite_equals_composite_of_the_float_outputs(fast_backend, frames):
    rgb = frames[1]
    coef_a, coef_b, _ = fast_backend.infer_low_res(fast_backend.downsample(rgb, RATIO), None)
    fgr, pha = fast_backend.finish_float(rgb, coef_a, coef_b, RATIO)
    height, width = rgb.shape[:2]
    for background in (np.broadcast_to(np.array((120, 255, 155), np.uint8), (height, width, 3)), frames[2]):
        comp, alpha = fast_backend.finish_composite(rgb, coef_a, coef_b, RATIO, background)
        assert np.array_equal(comp, composite(fgr, pha, background))
        assert np.array_equal(alpha, alpha_u8(pha, channels=1))


@pytest.mark.parametrize("rewrites", [{"pad_channels": 8}, {"blocked": False}], ids=["padded", "unblocked"])
def test_graph_variants_keep_the_outputs(official_onnx, frames, official_outputs, rewrites):
    variant = FastOnnxRuntimeBackend(official_onnx, **rewrites)
    fgr, pha, _ = variant.step(frames[0], None, RATIO)
    assert np.abs(fgr - official_outputs[0][0]).max() <= FP32_TOLERANCE
    assert np.abs(pha - official_outputs[0][1]).max() <= FP32_TOLERANCE
    assert low_res_model_path(official_onnx, **rewrites) == variant.path  # cached, built once
    assert variant.path != low_res_model_path(official_onnx)  # its own file, not the default's


@pytest.mark.slow
def test_matte_writes_the_same_frames_on_the_fast_and_plain_paths(tmp_path, monkeypatch):
    from conftest import CLIPS
    from rvmkit.api import convert_video

    def run(name: str) -> list[np.ndarray]:
        out = tmp_path / name
        convert_video(CLIPS["milk"], out / "comp", out / "alpha", input_resize=(160, 120),
                      downsample_ratio=0.5, progress=False)
        import av

        images = []
        for role in ("comp", "alpha"):
            for path in sorted((out / role).iterdir())[:4]:
                with av.open(str(path)) as container:
                    images.append(next(container.decode(video=0)).to_ndarray())
        return images

    monkeypatch.setenv("RVMKIT_FAST", "1")  # the fast path at any size (not the faster of the two)
    fast = run("fast")
    monkeypatch.setenv("RVMKIT_FAST", "0")
    plain = run("plain")
    assert len(fast) == len(plain) == 8
    for ours, ref in zip(fast, plain, strict=True):
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_a_cache_that_cannot_be_written_still_runs_the_fast_path(official_onnx, frames, official_outputs,
                                                                  tmp_path, monkeypatch):
    """A read-only or full cache (here: a file where its fast/ folder goes) costs the cache, not the run."""
    from rvmkit import weights

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fast").write_bytes(b"not a folder")
    monkeypatch.setenv(weights.CACHE_ENV, str(cache))
    backend = load_backend("onnxruntime", official_onnx)
    assert isinstance(backend, FastOnnxRuntimeBackend) and backend.path is None  # built in memory
    assert backend.two_stage == stages_by_default(None)  # its stages too, where cut
    _, pha, _ = backend.step(frames[0], None, RATIO)
    assert np.abs(pha - official_outputs[0][1]).max() <= FP32_TOLERANCE
    assert sorted(p.name for p in cache.iterdir()) == ["fast"]


def test_a_damaged_cached_graph_is_built_again(official_onnx, frames, official_outputs, tmp_path,
                                               monkeypatch):
    """A cached fast graph cut short (disk error, partial copy of the cache) is rebuilt, not fatal."""
    from rvmkit import weights

    cached = low_res_model_path(official_onnx)  # the same model's graph has the same name in any cache
    cache = tmp_path / "cache"
    (cache / "fast").mkdir(parents=True)
    damaged = cache / "fast" / cached.name
    damaged.write_bytes(cached.read_bytes()[:1000])
    monkeypatch.setenv(weights.CACHE_ENV, str(cache))
    backend = load_backend("onnxruntime", official_onnx)
    assert isinstance(backend, FastOnnxRuntimeBackend) and backend.path == damaged
    assert damaged.read_bytes() == cached.read_bytes()
    _, pha, _ = backend.step(frames[0], None, RATIO)
    assert np.abs(pha - official_outputs[0][1]).max() <= FP32_TOLERANCE


def test_onnxruntimes_optimised_graph_is_saved_once_and_reused_with_the_same_outputs(official_onnx, frames,
                                                                                    tmp_path, monkeypatch):
    """Start-up: the first backend saves ORT's optimisation of the fast graph (of each stage, split) beside
    it (per CPU); the next loads that without optimising again and gives the same bits; a damaged one is
    made again."""
    monkeypatch.setenv("RVMKIT_CACHE_DIR", str(tmp_path))
    first = FastOnnxRuntimeBackend(official_onnx)
    assert (first.stages is not None) == first.two_stage  # (waits for the stages' loading)
    saved = sorted((tmp_path / "fast").glob("*.ort*.onnx"))
    assert len(saved) == (3 if first.two_stage else 1)  # the whole graph's, and each stage's
    assert all(path.stat().st_size > 100_000 for path in saved)
    whole = next(path for path in saved if ".stage" not in path.name)
    size = whole.stat().st_size
    second = FastOnnxRuntimeBackend(official_onnx)
    assert sorted((tmp_path / "fast").glob("*.ort*.onnx")) == saved
    outputs = [backend.step(frames[0], None, RATIO)[:2] for backend in (first, second)]
    assert all(np.array_equal(a, b) for a, b in zip(*outputs, strict=True))
    whole.write_bytes(b"not an onnx graph")
    third = FastOnnxRuntimeBackend(official_onnx)
    assert whole.stat().st_size == size
    assert all(np.array_equal(a, b) for a, b in zip(third.step(frames[0], None, RATIO)[:2], outputs[0],
                                                     strict=True))


# --- the low-res graph as two stages (rvmkit.graph.split), one frame apart in the pipeline ------------

SIZES = (SIZE, (256, 144))


def sized_frames(size: tuple[int, int], count: int = 6) -> list[np.ndarray]:
    import av

    return [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(*size, format="rgb24").to_ndarray()
            for rgb in read_frames("book", count)]


def official_run(onnx_path, frames: list[np.ndarray], ratio: float = RATIO) -> list[tuple[np.ndarray, ...]]:
    """(fgr, pha) of each frame from the ONNX at `onnx_path` run whole in ORT, states fed back by hand."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    outputs = []
    for rgb in frames:
        src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        fgr, pha, *state = session.run(None, {"src": src, "downsample_ratio": np.array([ratio], np.float32),
                                              **{f"r{k + 1}i": state[k] for k in range(4)}})
        outputs.append((fgr, pha))
    return outputs


def staged_run(backend: FastOnnxRuntimeBackend, frames: list[np.ndarray], monkeypatch, ratio: float = RATIO
               ) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple]:
    """(fgr, pha) per frame through the two stages, as the pipeline runs them for a file (one after the
    other here), and the two stages' last states."""
    monkeypatch.setenv(SPLIT_ENV, "1")  # the unmeasured form: the stages
    first = second = None
    outputs = []
    for rgb in frames:
        middles, first = backend.infer_first([backend.prepare(rgb, ratio)], first, ratio)
        raws, second = backend.infer_second(middles, second, ratio)
        fgr, pha = backend.finish(rgb, raws[0], ratio).arrays()
        outputs.append((fgr[None], pha[None]))
    return outputs, (first, second)


@pytest.fixture(scope="module")
def split_and_whole(official_onnx) -> tuple[FastOnnxRuntimeBackend, FastOnnxRuntimeBackend]:
    split, whole = (FastOnnxRuntimeBackend(official_onnx, split=flag) for flag in (True, False))
    assert split.two_stage and split.session is not None and len(split.stages) == 2
    assert not whole.two_stage and whole.stages is None and whole.session is not None
    return split, whole


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_two_stages_give_the_whole_graphs_outputs_and_states(split_and_whole, official_onnx, size,
                                                            monkeypatch):
    """Six real frames, each form's state carried: the stages equal the whole graph and both the official
    model; their states come out as the whole graph's, r1..r4."""
    split, whole = split_and_whole
    frames = sized_frames(size)
    reference = official_run(official_onnx, frames)
    staged, (first, second) = staged_run(split, frames, monkeypatch)
    state = None
    for rgb, (fgr_ref, pha_ref), ours in zip(frames, reference, staged, strict=True):
        fgr, pha, state = whole.step(rgb, state, RATIO)
        for mine, theirs, official in zip(ours, (fgr, pha), (fgr_ref, pha_ref), strict=True):
            assert mine.shape == theirs.shape and np.abs(mine - theirs).max() <= 1e-5
            assert np.abs(mine - official).max() <= FP32_TOLERANCE
    assert set(first) == {"r2i", "r3i", "r4i"} and set(second) == {"r1i"}  # each stage its own
    ours = [np.asarray({**first, **second}[name].numpy()) for name in ("r1i", "r2i", "r3i", "r4i")]
    theirs = whole.states(state)
    assert [s.shape[1] for s in ours] == [16, 20, 40, 64]  # RVM's r1..r4 channels, in that order
    assert all(a.shape == b.shape and np.abs(a - b).max() <= 1e-5 for a, b in zip(ours, theirs, strict=True))


def test_infer_and_step_run_the_whole_graph_beside_the_stages(split_and_whole):
    """A backend with stages still runs `infer`/`step` (live, verify, bench's frame-at-a-time) on its whole
    graph, with the whole graph's state: the same bits as a backend without stages."""
    split, whole = split_and_whole
    frames = sized_frames(SIZES[1], 3)
    states: list = [None, None]
    for rgb in frames:
        outs = []
        for index, backend in enumerate((split, whole)):
            raws, states[index] = backend.infer([backend.prepare(rgb, RATIO)], states[index], RATIO)
            outs.append(raws[0])
        assert all(np.array_equal(a, b) for a, b in zip(*outs, strict=True))
    assert all(isinstance(value, ort.OrtValue) for value in states[0])


def test_the_stages_hand_over_in_ort(split_and_whole, monkeypatch):
    """What the first stage hands the second stays in ONNX Runtime (OrtValues), never copied out."""
    split, _ = split_and_whole
    monkeypatch.setenv(SPLIT_ENV, "1")
    first, second = sized_frames(SIZES[1], 2)
    done, state = split.infer_first([split.prepare(first, RATIO)], None, RATIO)
    assert not hasattr(done[0], "outputs")  # a stream's first frame runs whole
    middles, _ = split.infer_first([split.prepare(second, RATIO)], state, RATIO)
    handed = [item.name for item in split.stages[0].get_outputs()]
    assert all(isinstance(middles[0].outputs[name], ort.OrtValue) for name in handed)


def test_stages_by_default_follow_the_cores_and_rvmkit_split(monkeypatch):
    monkeypatch.delenv(SPLIT_ENV, raising=False)
    assert stages_by_default(2) and stages_by_default(4) and not stages_by_default(1)
    assert stages_by_default(None) == ((os.cpu_count() or 1) >= 2) and not stages_preferred()
    for value in ("0", "off", " no "):
        monkeypatch.setenv(SPLIT_ENV, value)
        assert not any(stages_by_default(threads) for threads in (None, 1, 2, 4)) and not stages_preferred()
    for value in ("1", " yes "):
        monkeypatch.setenv(SPLIT_ENV, value)
        assert stages_by_default(2) and not stages_by_default(1) and stages_preferred()
    monkeypatch.setenv(SPLIT_ENV, "maybe")  # not a setting: the cores decide, nothing preferred
    assert stages_by_default(2) and not stages_preferred()


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_default_backend_follows_rvmkit_split(official_onnx, frames, official_outputs, monkeypatch,
                                                   setting):
    monkeypatch.setenv(SPLIT_ENV, setting)
    for threads in (2, 4):
        backend = load_backend("onnxruntime", official_onnx, threads=threads)
        assert isinstance(backend, FastOnnxRuntimeBackend) and backend.two_stage == (setting == "1")
        _, pha, _ = backend.step(frames[0], None, RATIO)
        assert np.abs(pha - official_outputs[0][1]).max() <= FP32_TOLERANCE


@pytest.mark.parametrize("options", [{"pad_channels": 8}, {"opt_level": "basic"}], ids=["padded", "basic"])
def test_split_given_is_kept_where_the_default_runs_whole(official_onnx, frames, official_outputs,
                                                          monkeypatch, options):
    """A padded graph or a lower optimisation level has no stages by default (even on two threads), and
    has them when asked: the official outputs through them."""
    monkeypatch.delenv(SPLIT_ENV, raising=False)
    for split in (None, True, False):
        backend = FastOnnxRuntimeBackend(official_onnx, threads=2, split=split, **options)
        assert backend.two_stage == (split is True)
    with_stages = FastOnnxRuntimeBackend(official_onnx, split=True, **options)
    assert with_stages.two_stage
    staged, _ = staged_run(with_stages, frames[:2], monkeypatch)
    for (fgr, pha), (fgr_ref, pha_ref) in zip(staged, official_outputs, strict=False):
        assert np.abs(fgr - fgr_ref).max() <= FP32_TOLERANCE
        assert np.abs(pha - pha_ref).max() <= FP32_TOLERANCE


@pytest.mark.parametrize("rewrites", [{"split_convs": False}, {"blocked": False}, {"pad_channels": 8}],
                         ids=["unsplit-convs", "unblocked", "padded"])
def test_every_graph_variant_runs_in_two_stages(official_onnx, frames, official_outputs, rewrites,
                                                monkeypatch):
    """The variants' cuts differ (convs not split, the second stage reads src_sm too): each runs on its
    stages with the official outputs, the states carried."""
    backend = FastOnnxRuntimeBackend(official_onnx, split=True, **rewrites)
    assert backend.two_stage
    staged, _ = staged_run(backend, frames, monkeypatch)
    for (fgr, pha), (fgr_ref, pha_ref) in zip(staged, official_outputs, strict=True):
        assert np.abs(fgr - fgr_ref).max() <= FP32_TOLERANCE
        assert np.abs(pha - pha_ref).max() <= FP32_TOLERANCE


def test_a_graph_with_no_known_cut_runs_whole(official_onnx, frames, tmp_path, monkeypatch):
    """An RVM-named model whose r1i no node reads (tests/graph/test_split.py): split asked for, it runs as
    one session, with that model's own outputs."""
    import onnx

    monkeypatch.setenv("RVMKIT_CACHE_DIR", str(tmp_path / "cache"))
    model = onnx.load(str(official_onnx))
    unread_r1(model)
    path = tmp_path / "no_r1.onnx"
    onnx.save(model, str(path))
    backend = FastOnnxRuntimeBackend(path, split=True)
    assert backend.stages is None and backend.session is not None
    assert not list((tmp_path / "cache" / "fast").glob("*.stage*.onnx"))
    state = None
    for rgb, (fgr_ref, pha_ref) in zip(frames, official_run(path, frames), strict=True):
        fgr, pha, state = backend.step(rgb, state, RATIO)
        assert np.abs(fgr - fgr_ref).max() <= FP32_TOLERANCE
        assert np.abs(pha - pha_ref).max() <= FP32_TOLERANCE


def stage_files(cache) -> list:
    return sorted((cache / "fast").glob("*.stage[12].onnx"))


def test_damaged_cached_stages_are_cut_again(official_onnx, frames, official_outputs, tmp_path, monkeypatch):
    """A stage file that is garbage: while ORT's optimised form of it is kept that is what loads (the
    outputs right); without it, the stage is cut again and the run goes on split."""
    monkeypatch.setenv("RVMKIT_CACHE_DIR", str(tmp_path))
    backend = FastOnnxRuntimeBackend(official_onnx, split=True)
    assert backend.stages is not None
    first, second = stage_files(tmp_path)
    assert first.name.endswith(".stage1.onnx") and second.name.endswith(".stage2.onnx")
    good = first.read_bytes()
    expected = staged_run(backend, frames[:2], monkeypatch)[0][1]  # frame 1: through the stages
    optimised = first.with_name(f"{first.stem}.ort{ort.__version__}.{cpu_signature()}.onnx")
    assert optimised.is_file()
    for damage_optimised in (False, True):
        first.write_bytes(b"not an onnx graph")
        if damage_optimised:
            optimised.write_bytes(b"not an onnx graph either")
        again = FastOnnxRuntimeBackend(official_onnx, split=True)
        assert again.stages is not None
        fgr, pha = staged_run(again, frames[:2], monkeypatch)[0][1]
        assert np.array_equal(fgr, expected[0]) and np.array_equal(pha, expected[1])
        assert np.abs(pha - official_outputs[1][1]).max() <= FP32_TOLERANCE
    assert first.read_bytes() == good  # cut again, the same graph
    assert stage_files(tmp_path) == [first, second]
