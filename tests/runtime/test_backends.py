"""Backends and model resolution (`rvmkit.runtime`): model classification, backend/model/device checks,
agreement with the official ONNX. The ratio rules themselves are tested in test_contract.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import official_alphas, read_frames
from rvmkit.errors import RvmkitError
from rvmkit.runtime import ModelSpec, check_backend, load_backend, resolve_model, resolve_ratio
from rvmkit.runtime.base import to_input

TOLERANCE = 2 / 255


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
    backend = load_backend("onnxruntime", official_onnx, fast=False)  # plain path (fast: test_ort_fast.py)
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


@pytest.mark.slow
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


@pytest.mark.parametrize("size, ratio", [pytest.param((320, 240), 0.01, marks=pytest.mark.slow),
                                         pytest.param((2, 2), 1.0, marks=pytest.mark.slow), ((1, 1), 1.0)],
                         ids=["ratio-0.01", "2x2", "1x1"])
def test_openvino_runs_frames_downsampled_under_five_pixels(official_onnx, milk_frames, size, ratio):
    """OpenVINO's CPU plugin refused RVM's ceil-mode pools on a side under 5 pixels (ORT and torch take
    it); its rewritten pools give ONNX Runtime's alpha."""
    pytest.importorskip("openvino", reason="openvino not installed (pip install 'rvmkit[openvino]')")
    from PIL import Image

    frames = [np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)) for rgb in milk_frames[:2]]
    backend = load_backend("openvino", official_onnx)
    reference = official_alphas(official_onnx, frames, ratio)
    for ours, ref in zip(backend_alphas(backend, frames, ratio), reference, strict=True):
        assert ours.shape == ref.shape == (1, 1, size[1], size[0])
        assert np.abs(ours - ref).max() <= TOLERANCE


def test_tensorrt_backend_is_refused_off_the_gpu_and_without_a_model():
    """The checks made before TensorRT is imported: pure Python, so they run on a CPU-only machine."""
    engine = ModelSpec("engine", Path("x.engine"))
    with pytest.raises(RvmkitError, match="runs on an NVIDIA GPU only; add --device cuda"):
        check_backend("tensorrt", engine, "cpu")
    with pytest.raises(RvmkitError, match="backend tensorrt: needs --model"):
        check_backend("tensorrt", ModelSpec("onnx_baked", None), "cuda")
    with pytest.raises(RvmkitError, match="cannot run on the tensorrt backend"):
        check_backend("tensorrt", ModelSpec("checkpoint", Path("x.pth")), "cuda")
    assert check_backend("tensorrt", engine, "cuda") is None  # an engine on the GPU is accepted
