"""Model resolution and backend choice (`rvmkit.runtime`): model classification, backend/model/device
checks. The ratio rules themselves are tested in test_contract.py; each backend's agreement with the
official ONNX in its own file (test_onnxruntime.py, test_torch.py, test_openvino.py)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from rvmkit.errors import RvmkitError
from rvmkit.runtime import ModelSpec, check_backend, load_backend, resolve_model, resolve_ratio


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
