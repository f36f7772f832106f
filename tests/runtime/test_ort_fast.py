"""The CPU fast path (low-res graph + kernels) gives the official model's outputs, and the pipeline's
fused composite path writes the same frames as the plain path. The graph rewrite itself is tested in
tests/graph/test_lowres.py, the kernels in test_kernels.py."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from conftest import read_frames
from rvmkit.graph.lowres import low_res_model_path
from rvmkit.runtime import load_backend
from rvmkit.runtime.ort_fast import FastOnnxRuntimeBackend
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
        values = [*state[0].values(), *state[1].values()] if fast_backend.two_stage else state
        assert all(isinstance(value, ort.OrtValue) for value in values)  # the states never leave ORT


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
    saved = sorted((tmp_path / "fast").glob("*.ort*.onnx"))
    assert len(saved) == (2 if first.two_stage else 1)
    assert all(path.stat().st_size > 100_000 for path in saved)
    size = saved[0].stat().st_size
    second = FastOnnxRuntimeBackend(official_onnx)
    assert sorted((tmp_path / "fast").glob("*.ort*.onnx")) == saved
    outputs = [backend.step(frames[0], None, RATIO)[:2] for backend in (first, second)]
    assert all(np.array_equal(a, b) for a, b in zip(*outputs, strict=True))
    saved[0].write_bytes(b"not an onnx graph")
    third = FastOnnxRuntimeBackend(official_onnx)
    assert saved[0].stat().st_size == size
    assert all(np.array_equal(a, b) for a, b in zip(third.step(frames[0], None, RATIO)[:2], outputs[0],
                                                     strict=True))
