"""float32 -> float16 graphs without a GPU (`rvmkit.graph.fp16`): every float tensor becomes float16 but
Resize's scales, nodes kept in float32 get Casts at their boundary, and the alpha on real frames stays
within the fp16 budget of the float32 model's. An export's fp16 model is tested in
tests/export/test_onnx_export.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from PIL import Image

from conftest import read_frames
from rvmkit.graph.fp16 import convert_to_float16

STATES = ("r1i", "r2i", "r3i", "r4i")


def _alphas(model: onnx.ModelProto, dtype: type, frames: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    states, alphas = [np.zeros((1, 1, 1, 1), dtype)] * 4, []
    for rgb in frames:
        src = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None].astype(dtype)
        _, pha, *states = session.run(None, {"src": src, **dict(zip(STATES, states, strict=True))})
        alphas.append(pha.astype(np.float32))
    return alphas


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [np.asarray(Image.fromarray(rgb).resize((320, 240), Image.BILINEAR))
            for rgb in read_frames("book", 3)]


def _elem_types(values) -> set[int]:
    return {value.type.tensor_type.elem_type for value in values}


def _count(model: onnx.ModelProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


@pytest.mark.parametrize("keep_first_conv", [False, True], ids=["all-fp16", "one-node-kept-fp32"])
def test_a_float16_copy_runs_within_the_fp16_budget_of_the_float32_model(trt_ready, frames, keep_first_conv):
    model = onnx.load(str(trt_ready))
    keep = (next(n.name for n in model.graph.node if n.op_type == "Conv"),) if keep_first_conv else ()
    half = convert_to_float16(model, keep)
    onnx.checker.check_model(half)
    assert _elem_types([*half.graph.input, *half.graph.output]) == {TensorProto.FLOAT16}
    assert _elem_types(model.graph.input) == {TensorProto.FLOAT}  # the model given is left as it was
    initializers = {init.name: init for init in half.graph.initializer}
    scales = [initializers[node.input[2]] for node in half.graph.node
              if node.op_type == "Resize" and node.input[2] in initializers]
    assert scales and all(numpy_helper.to_array(s).dtype == np.float32 for s in scales)
    assert (_count(half, "Cast") > _count(model, "Cast")) == keep_first_conv  # Casts only around kept nodes
    error = max(np.abs(a - b).max() for a, b in zip(_alphas(half, np.float16, frames),
                                                     _alphas(model, np.float32, frames), strict=True))
    assert 0 < error <= 3e-2  # float16 is not float32, but close
