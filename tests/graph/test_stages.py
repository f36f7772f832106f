"""The low-res graph cut where the recurrent state comes in (`rvmkit.graph.stages`): stage 1 reads no state,
the two stages chained give the whole graph's bits on real frames, and the stages are cached beside it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import read_frames
from rvmkit.contract import STATE_INPUTS
from rvmkit.graph.lowres import low_res_model_path
from rvmkit.graph.stages import split_by_state, stages_for_session
from rvmkit.runtime import kernels

RATIO = 0.4


@pytest.fixture(scope="module")
def low_res(official_onnx, tmp_path_factory):
    return low_res_model_path(official_onnx, cache=tmp_path_factory.mktemp("fast"))


def _session(model) -> ort.InferenceSession:
    data = str(model) if not isinstance(model, bytes | onnx.ModelProto) else (
        model if isinstance(model, bytes) else model.SerializeToString())
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_stage_one_reads_no_state_and_hands_over_what_stage_two_needs(low_res):
    first, second, handover = split_by_state(onnx.load(str(low_res)))
    assert [i.name for i in first.graph.input] == ["src_sm"]
    assert [o.name for o in first.graph.output] == handover and len(handover) > 3
    assert not {name for node in first.graph.node for name in node.input} & set(STATE_INPUTS)
    assert [i.name for i in second.graph.input][-4:] == list(STATE_INPUTS)
    whole = onnx.load(str(low_res))
    assert len(first.graph.node) + len(second.graph.node) >= len(whole.graph.node)
    assert len(first.graph.node) > len(whole.graph.node) // 4  # the encoder is a real share of the work


def test_the_stages_chained_give_the_whole_graphs_bits_on_real_frames(low_res):
    stages = stages_for_session(low_res)
    whole, first, second = _session(low_res), _session(stages.first), _session(stages.second)
    handover = [o.name for o in first.get_outputs()]
    second_inputs = [i.name for i in second.get_inputs()]
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    state_whole = state_split = [zeros] * 4
    for rgb in read_frames("milk", 3):
        small = kernels.downsample(rgb, kernels.Geometry(*rgb.shape[:2], RATIO))
        expected = whole.run(None, {"src_sm": small, **dict(zip(STATE_INPUTS, state_whole))})
        feeds = {**dict(zip(handover, first.run(handover, {"src_sm": small}))), "src_sm": small,
                 **dict(zip(STATE_INPUTS, state_split))}
        got = second.run(None, {name: feeds[name] for name in second_inputs})
        assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
        state_whole, state_split = expected[2:], got[2:]


def test_stages_are_cached_beside_the_low_res_graph_and_reused(low_res):
    stages = stages_for_session(low_res)
    assert stages.first.parent == low_res.parent and stages.first.name.endswith(".stage1.onnx")
    before = stages.second.stat().st_mtime_ns
    assert stages_for_session(low_res) == stages and stages.second.stat().st_mtime_ns == before
    in_memory = stages_for_session(low_res.read_bytes())
    assert isinstance(in_memory.first, bytes) and isinstance(in_memory.second, bytes)
