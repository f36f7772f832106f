"""The low-res graph's blocked-kernel rewrites (`rvmkit.graph.blocked`): the refiner on 8-channel blocks and
the crops skipped where the sizes are even give the coefficients and states of the graph without them, on
real frames, at a size whose decoder crops are all taken and one where the largest is skipped."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import read_frames
from rvmkit.contract import STATE_OUTPUTS
from rvmkit.graph import blocked, lowres
from rvmkit.runtime import kernels

#: the rewrites sum in another order than ORT's kernels on the original graph: float32 rounding only
TOLERANCE = 2e-5


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, smalls: list[np.ndarray]) -> list[list[np.ndarray]]:
    names = [i.name for i in session.get_inputs()]
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    outputs = []
    for small in smalls:
        out = session.run(None, dict(zip(names, [small, *state], strict=True)))
        state = out[2:]
        outputs.append(out)
    return outputs


@pytest.fixture(scope="module")
def graphs(official_onnx) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    source = onnx.load(str(official_onnx))
    return lowres.low_res_model(source, blocked=False), lowres.low_res_model(source)


@pytest.mark.parametrize("size, ratio", [((320, 180), 0.5), ((322, 182), 0.3)],
                         ids=["even-160x90", "odd-97x55"])
def test_rewritten_graph_gives_the_coefficients_and_states_of_the_plain_one(graphs, size, ratio):
    import av

    width, height = size
    geometry = kernels.Geometry(height, width, ratio)
    smalls = [kernels.downsample(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        width, height, format="rgb24").to_ndarray(), geometry) for rgb in read_frames("book", 3)]
    plain, rewritten = (_run(_session(model), smalls) for model in graphs)
    for expected, got in zip(plain, rewritten, strict=True):
        for name, a, b in zip(["coef_a", "coef_b", *STATE_OUTPUTS], expected, got, strict=True):
            assert a.shape == b.shape, name
            assert np.abs(a - b).max() <= TOLERANCE, name


def test_both_rewrites_apply_to_the_official_and_the_trt_ready_graph(official_onnx, trt_ready, graphs):
    for path in (official_onnx, trt_ready):
        model = lowres.low_res_model(onnx.load(str(path)))
        assert sum(node.op_type == "If" for node in model.graph.node) == 4  # one per decoder upsample
        assert any(node.output[0].startswith("blocked_refiner_") for node in model.graph.node)
    plain, rewritten = graphs
    assert sum(node.op_type == "Sub" for node in rewritten.graph.node) < sum(
        node.op_type == "Sub" for node in plain.graph.node)


def test_a_refiner_the_rewrite_does_not_know_is_left_as_it_is(graphs):
    plain, _ = graphs
    model = onnx.ModelProto()
    model.CopyFrom(plain)
    coef_b = next(node for node in model.graph.node if node.output[0] == "coef_b").input[0]
    next(node for node in model.graph.node if node.output[0] == coef_b).op_type = "Add"  # not b = my - A*mx
    before = model.SerializeToString()
    assert not blocked.fuse_refiner(model, lowres.COEF_OUTPUTS)
    assert model.SerializeToString() == before
