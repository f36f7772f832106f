"""The fast path's full-resolution kernels (`rvmkit.runtime.kernels`): the downsample equals the official
graph's first Resize, and numba loads in the background (`kernels.warm_up`) while numpy runs. That the
numpy versions give the compiled kernels' bits is tested in test_kernels_numba.py."""

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
    assert np.array_equal(comp, fused[0]) and np.array_equal(alpha, fused[1])


def test_warm_up_loads_the_kernels_in_the_background_and_numpy_runs_meanwhile(tmp_path):
    """In a fresh process: right after warm_up() the kernels still run (in numpy), and once loaded
    they are numba's; a server's wait=True blocks until then."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from rvmkit.runtime import kernels\n"
        "kernels.warm_up()\n"
        "g = kernels.Geometry(64, 48, 0.5)\n"
        "small = kernels.downsample(np.zeros((64, 48, 3), np.uint8), g)\n"
        "print(small.shape)\n"
        "kernels.warm_up(wait=True)\n"
        "print(kernels._compiled is not None)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["(1, 3, 32, 24)", "True"]


@pytest.mark.slow
def test_warm_up_later_loads_numba_after_a_small_first_frame_and_at_once_for_a_big_one():
    """In fresh processes: the fast backend's warm_up_later() leaves numba unloaded through a small first
    frame (numpy finishes it; numba's load would hold the GIL), then starts it; a frame above
    NUMPY_TAIL_MAX_PIXELS starts it at its downsample, and the next frame waits for it."""
    import subprocess
    import sys

    common = (
        "import numpy as np\n"
        "from rvmkit.runtime import kernels\n"
        "kernels.warm_up_later()\n"
        "g = kernels.Geometry(64, 48, 0.5)\n"
        "frame, coef = np.zeros((64, 48, 3), np.uint8), np.zeros((1, 4, 32, 24), np.float32)\n")
    small = common + (
        "kernels.downsample(frame, g)\n"
        "print(kernels._loader is None)\n"
        "kernels.tail_composite(frame, coef, coef, g, frame)\n"
        "print(kernels._loader is not None)\n")
    big = common + (
        "kernels.NUMPY_TAIL_MAX_PIXELS = 64 * 48 - 1\n"
        "kernels.downsample(frame, g)\n"
        "print(kernels._loader is not None)\n"
        "kernels.downsample(frame, g)\n"  # the next frame waits for numba
        "print(kernels._compiled is not None)\n")
    for script in (small, big):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:2] == ["True", "True"]
