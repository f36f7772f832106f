"""`graph.pools.pad_ceil_pools`: ceil-mode average pools as padded floor mode, the same numbers in ONNX
Runtime (CPU) for odd and even sizes, on single pools and on the real RVM model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import read_frames
from rvmkit.graph.pools import ceil_pools, pad_ceil_pools


def pool_model(kernel: int, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[kernel, kernel],
                            strides=[kernel, kernel], **attrs)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def attributes(model: onnx.ModelProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}


@pytest.mark.parametrize("kernel", [2, 3])
def test_single_pool_is_equal_for_odd_and_even_sizes(kernel: int) -> None:
    original = pool_model(kernel, ceil_mode=1, pads=[0, 0, 0, 0])
    rewritten = pool_model(kernel, ceil_mode=1, pads=[0, 0, 0, 0])
    assert pad_ceil_pools(rewritten.graph) == 1 and ceil_pools(rewritten.graph) == 0
    assert attributes(rewritten)["pads"] == [0, 0, kernel - 1, kernel - 1]
    assert attributes(rewritten)["ceil_mode"] == 0
    rng = np.random.default_rng(kernel)
    for height in range(1, 8):
        for width in range(1, 8):
            x = rng.random((1, 3, height, width), np.float32)
            (expected,), (got,) = run(original, {"x": x}), run(rewritten, {"x": x})
            assert got.shape == expected.shape == (1, 3, -(-height // kernel), -(-width // kernel))
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{height}x{width}")


@pytest.mark.parametrize("attrs", [{"ceil_mode": 0}, {"ceil_mode": 1, "count_include_pad": 1},
                                   {"ceil_mode": 1, "pads": [0, 0, 1, 1]}])
def test_pools_without_an_exact_padded_form_are_left_alone(attrs: dict) -> None:
    model = pool_model(2, **attrs)
    before = model.SerializeToString()
    assert pad_ceil_pools(model.graph) == 0
    assert model.SerializeToString() == before


@pytest.fixture(scope="module")
def padded_official(official_onnx: Path) -> onnx.ModelProto:
    model = onnx.load(str(official_onnx))
    assert ceil_pools(model.graph) == 3, "RVM's decoder: three ceil-mode 2x2 pools"
    assert pad_ceil_pools(model.graph) == 3 and ceil_pools(model.graph) == 0
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("size", [(242, 322), (240, 320)])
def test_real_model_is_unchanged_with_its_state_carried(official_onnx: Path, padded_official: onnx.ModelProto,
                                                        size: tuple[int, int]) -> None:
    """At ratio 0.5, 242x322 pools 121x161 -> 61x81 -> 31x41 -> 16x21 (odd and even); 240x320 all even."""
    from PIL import Image

    height, width = size
    session_a = ort.InferenceSession(str(official_onnx), providers=["CPUExecutionProvider"])
    session_b = ort.InferenceSession(padded_official.SerializeToString(), providers=["CPUExecutionProvider"])
    state_a = state_b = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    for frame in read_frames("book", 3):
        rgb = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
        src = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        ratio = np.array([0.5], np.float32)
        names = ["r1i", "r2i", "r3i", "r4i"]
        fgr_a, pha_a, *state_a = session_a.run(None, {"src": src, "downsample_ratio": ratio,
                                                      **dict(zip(names, state_a))})
        fgr_b, pha_b, *state_b = session_b.run(None, {"src": src, "downsample_ratio": ratio,
                                                      **dict(zip(names, state_b))})
        assert pha_b.shape == (1, 1, height, width)
        np.testing.assert_allclose(pha_b, pha_a, rtol=0, atol=1e-5)
        np.testing.assert_allclose(fgr_b, fgr_a, rtol=0, atol=1e-5)
        for a, b in zip(state_a, state_b):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    assert 0.05 < (pha_a > 0.5).mean() < 0.95, "a real matte, not a blank one"
