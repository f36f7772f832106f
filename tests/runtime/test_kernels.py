"""The fast path's full-resolution kernels (`rvmkit.runtime.kernels`): the downsample equals the official
graph's first Resize, and the numpy fallback agrees with the compiled (numba) kernels."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import read_frames
from rvmkit.runtime import kernels
from rvmkit.runtime.base import to_input

RATIO = 0.3


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real frame at an odd size: border weights and truncated low-res sizes both get exercised."""
    return np.ascontiguousarray(read_frames("book", 1)[0][:181, :323])


def _official_resize(official_onnx, frame: np.ndarray, ratio: float) -> np.ndarray:
    """The official graph's downsample of `src` (its Resize node, attributes and all) run alone in ORT."""
    model = onnx.load(str(official_onnx))
    node = next(n for n in model.graph.node if n.op_type == "Resize" and n.input[0] == "src")
    resize = helper.make_node("Resize", ["src", "roi", "scales"], ["small"])
    resize.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [resize], "downsample", [helper.make_tensor_value_info("src", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("small", TensorProto.FLOAT, None)],
        [helper.make_tensor("roi", TensorProto.FLOAT, [0], []),
         helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, ratio, ratio])])
    single = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    session = ort.InferenceSession(single.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"src": to_input(frame)})[0]


def test_downsample_equals_the_official_graphs_resize(official_onnx, frame):
    geometry = kernels.Geometry(frame.shape[0], frame.shape[1], RATIO)
    ours = kernels.downsample(frame, geometry)
    reference = _official_resize(official_onnx, frame, RATIO)
    assert ours.shape == reference.shape == (1, 3, *geometry.small)
    assert np.abs(ours - reference).max() <= 1e-6


def test_numpy_fallback_agrees_with_the_compiled_kernels(frame, monkeypatch):
    geometry = kernels.Geometry(frame.shape[0], frame.shape[1], RATIO)
    rng = np.random.default_rng(0)
    coef_a, coef_b = rng.normal(0, 0.3, (2, 1, 4, *geometry.small)).astype(np.float32)
    small = kernels.downsample(frame, geometry)
    fgr, pha = kernels.tail_float(frame, coef_a, coef_b, geometry)
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    assert np.abs(kernels.downsample(frame, geometry) - small).max() <= 1e-6
    fgr_np, pha_np = kernels.tail_float(frame, coef_a, coef_b, geometry)
    assert fgr_np.shape == fgr.shape == (1, 3, *frame.shape[:2]) and pha_np.shape == pha.shape
    assert np.abs(fgr_np - fgr).max() <= 1e-5 and np.abs(pha_np - pha).max() <= 1e-5


def test_fallback_kernel_composite_on_a_3_pixel_wide_frame(monkeypatch) -> None:
    """The numpy fallback of the fused tail hands composite() NCHW arrays, and agrees with the fused one."""
    rng = np.random.default_rng(0)
    geometry = kernels.Geometry(8, 3, 0.5)
    frame, bg = rng.integers(0, 256, (2, 8, 3, 3), dtype=np.uint8)
    coef_a, coef_b = rng.normal(0, 0.3, (2, 1, 4, *geometry.small)).astype(np.float32)
    fused = kernels.tail_composite(frame, coef_a, coef_b, geometry, bg)
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    comp, alpha = kernels.tail_composite(frame, coef_a, coef_b, geometry, bg)
    assert comp.shape == (8, 3, 3) and alpha.shape == (8, 3)
    assert np.abs(comp.astype(int) - fused[0]).max() <= 1 and np.abs(alpha.astype(int) - fused[1]).max() <= 1
