"""Backends and model resolution: ratio rules, model classification, agreement with the official ONNX."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import read_frames
from rvmkit.errors import RvmkitError
from rvmkit.runtime import (
    ModelSpec,
    auto_downsample_ratio,
    check_backend,
    load_backend,
    parse_ratio,
    resolve_model,
    resolve_ratio,
)
from rvmkit.runtime.base import to_input

TOLERANCE = 2 / 255
STATES = ("r1i", "r2i", "r3i", "r4i")


def official_alphas(onnx_path: Path, frames: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """The reference: the official ONNX run directly in ONNX Runtime, states fed back by hand."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    alphas = []
    for rgb in frames:
        _, pha, *rec = session.run(None, {"src": to_input(rgb), **dict(zip(STATES, rec, strict=True)),
                                          "downsample_ratio": np.array([ratio], np.float32)})
        alphas.append(pha)
    return alphas


def backend_alphas(backend, frames: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    state, alphas = None, []
    for rgb in frames:
        _, pha, state = backend.step(to_input(rgb), state, ratio)
        alphas.append(pha)
    return alphas


@pytest.fixture(scope="session")
def milk_frames() -> list[np.ndarray]:
    return read_frames("milk", 4)


@pytest.fixture(scope="session")
def milk_reference(official_onnx, milk_frames) -> list[np.ndarray]:
    return official_alphas(official_onnx, milk_frames, 0.25)


@pytest.fixture(scope="session")
def baked_onnx(official_onnx, tmp_path_factory) -> Path:
    """A TRT-ready-style RVM ONNX: the official graph with its ratio input turned into a constant 0.25."""
    model = onnx.load(str(official_onnx))
    ratio = next(i for i in model.graph.input if i.name == "downsample_ratio")
    model.graph.input.remove(ratio)
    constant = onnx.numpy_helper.from_array(np.array([0.25], np.float32), "downsample_ratio")
    model.graph.initializer.append(constant)
    entry = model.metadata_props.add()
    entry.key, entry.value = "rvmkit.downsample_ratio", "0.25"
    path = tmp_path_factory.mktemp("baked") / "rvm_baked_trt.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("size", "expected"), [
    ((3840, 2160), 512 / 3840), ((1920, 1080), 512 / 1920), ((1080, 1920), 512 / 1920), ((1280, 720), 0.4),
    ((640, 480), 0.8), ((512, 512), 1.0), ((320, 240), 1.0), ((513, 100), 512 / 513)])
def test_auto_ratio_puts_the_long_side_near_512(size, expected):
    ratio = auto_downsample_ratio(*size)
    assert math.isclose(ratio, expected)
    assert max(size) * ratio <= 512 + 1e-9


@pytest.mark.parametrize("bad", ["0", "-0.5", "1.5", "nan", "inf", "fast", ""])
def test_bad_ratio_is_a_one_line_error(bad):
    with pytest.raises(RvmkitError, match="downsample ratio") as info:
        parse_ratio(bad)
    assert "\n" not in str(info.value)


def test_ratio_auto_and_numbers():
    assert parse_ratio("auto") is None and parse_ratio(None) is None
    assert parse_ratio("0.25") == 0.25 and parse_ratio(1) == 1.0
    assert resolve_ratio("auto", 1920, 1080) == pytest.approx(0.2667, abs=1e-4)
    assert resolve_ratio(0.5, 1920, 1080) == 0.5


def test_a_ratio_that_leaves_no_pixel_is_refused_auto_included():
    with pytest.raises(RvmkitError, match="shrinks its 2048x2 frames to nothing; use a larger ratio"):
        resolve_ratio("auto", 2048, 2, input_label="strip.png")  # auto: 0.25 of 2 rows is none
    with pytest.raises(RvmkitError, match="ratio is baked in"):
        resolve_ratio(None, 3, 2, baked=0.25)
    assert resolve_ratio(1, 2048, 2) == 1.0


def test_baked_ratio_is_used_for_auto_and_another_ratio_is_refused(baked_onnx):
    spec = resolve_model(baked_onnx)
    assert spec.kind == "onnx_baked" and spec.baked_ratio == 0.25
    assert resolve_ratio("auto", 1920, 1080, spec.baked_ratio, spec.label) == 0.25
    assert resolve_ratio("0.25", 1920, 1080, spec.baked_ratio, spec.label) == 0.25
    with pytest.raises(RvmkitError, match="0.25 is baked into this model; cannot run it at 0.5"):
        resolve_ratio("0.5", 1920, 1080, spec.baked_ratio, spec.label)


def test_models_are_classified_by_content(official_onnx, checkpoint, tmp_path):
    assert resolve_model(official_onnx) == ModelSpec("onnx", Path(official_onnx))
    assert resolve_model(checkpoint).kind == "checkpoint"
    assert resolve_model(None).kind == "onnx" and resolve_model(None, "torch").kind == "checkpoint"
    identity = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(identity, str(tmp_path / "identity.onnx"))
    with pytest.raises(RvmkitError, match="not an RVM matting ONNX"):
        resolve_model(tmp_path / "identity.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x01\x02 definitely not protobuf" * 10)
    with pytest.raises(RvmkitError, match="junk.onnx"):
        resolve_model(tmp_path / "junk.onnx")
    with pytest.raises(RvmkitError, match="no such model file"):
        resolve_model(tmp_path / "missing.onnx")


def test_backend_model_and_device_mismatches_are_refused(checkpoint, official_onnx):
    with pytest.raises(RvmkitError, match="use --backend torch"):
        load_backend("onnxruntime", checkpoint)
    with pytest.raises(RvmkitError, match="TRT-ready"):
        check_backend("tensorrt", resolve_model(official_onnx), "cuda")
    with pytest.raises(RvmkitError, match="--device cuda"):
        check_backend("tensorrt", ModelSpec("engine", Path("x.engine")), "cpu")
    with pytest.raises(RvmkitError, match="unknown"):
        check_backend("tflite", resolve_model(official_onnx))


def test_onnxruntime_backend_equals_the_official_session_and_keeps_states_native(
        official_onnx, milk_frames, milk_reference):
    backend = load_backend("onnxruntime", official_onnx, fast=False)  # the plain path (fast: test_fast.py)
    state, alphas = None, []
    for rgb in milk_frames:
        _, pha, state = backend.step(to_input(rgb), state, 0.25)
        assert all(isinstance(value, ort.OrtValue) for value in state)
        alphas.append(pha)
    for ours, ref in zip(alphas, milk_reference, strict=True):
        np.testing.assert_array_equal(ours, ref)


def test_onnxruntime_runs_a_baked_ratio_model(baked_onnx, milk_frames, milk_reference):
    backend = load_backend(None, baked_onnx)
    assert backend.baked_ratio == 0.25
    for ours, ref in zip(backend_alphas(backend, milk_frames, 0.25), milk_reference, strict=True):
        assert np.abs(ours - ref).max() <= 1e-4


def test_torch_backend_agrees_with_onnxruntime(checkpoint, milk_frames, milk_reference):
    pytest.importorskip("torch")
    backend = load_backend(None, checkpoint)
    assert backend.name == "torch"
    for ours, ref in zip(backend_alphas(backend, milk_frames, 0.25), milk_reference, strict=True):
        assert np.abs(ours - ref).max() <= TOLERANCE
    fgr, pha, state = backend.step_chunk(np.concatenate([to_input(rgb) for rgb in milk_frames]), None, 0.25)
    assert pha.shape == (len(milk_frames), 1, 480, 640) and fgr.shape == (len(milk_frames), 3, 480, 640)
    assert np.abs(pha - np.concatenate(milk_reference)).max() <= TOLERANCE
    states = backend.states(state)  # the last frame's, at 1/2 .. 1/16 of the 120x160 downsampled frame
    assert [s.shape for s in states] == [(1, 16, 60, 80), (1, 20, 30, 40), (1, 40, 15, 20), (1, 64, 8, 10)]
    assert all(s.dtype == np.float32 for s in states)


def test_a_backend_that_cannot_read_its_state_back_says_so():
    from rvmkit.runtime.base import Backend

    class Opaque(Backend):
        name = "opaque"

        def step(self, src, state, downsample_ratio):
            return src, src[:, :1], object()

    _, _, state = Opaque().step(np.zeros((1, 3, 2, 2), np.float32), None, 1.0)
    with pytest.raises(NotImplementedError, match="opaque backend does not expose its recurrent state"):
        Opaque().states(state)


def test_openvino_backend_agrees_with_onnxruntime(official_onnx, milk_frames, milk_reference):
    pytest.importorskip("openvino", reason="openvino not installed (pip install 'rvmkit[openvino]')")
    backend = load_backend("openvino", official_onnx)
    for ours, ref in zip(backend_alphas(backend, milk_frames, 0.25), milk_reference, strict=True):
        assert np.abs(ours - ref).max() <= TOLERANCE


def test_tensorrt_backend_needs_a_gpu():
    pytest.importorskip("tensorrt", reason="TensorRT not installed (needs an NVIDIA GPU)")
    with pytest.raises(RvmkitError, match="--device cuda"):
        check_backend("tensorrt", ModelSpec("engine", Path("x.engine")), "cpu")
