"""The low-res graph cut in two stages (`rvmkit.graph.split`): what each stage reads and makes, that the
stages chained give the whole graph's outputs on real frames, and the graphs it refuses. The backend
running the stages is tested in tests/runtime/test_ort_fast.py, the pipeline's second-stage thread in
tests/test_pipeline.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import read_frames, unread_r1
from rvmkit.contract import STATE_INPUTS, STATE_OUTPUTS
from rvmkit.graph.lowres import SMALL_INPUT, low_res_model, low_res_model_path
from rvmkit.graph.split import UnsplittableGraph, reads, second_stage_seeds, split_stages
from rvmkit.runtime.ort_session import session_options

_CPU = ["CPUExecutionProvider"]


#: the low-res graphs the fast path builds: the official model's (default rewrites and each variant) and
#: the TRT-ready form's (ratio baked in)
GRAPHS = {"official": ("official_onnx", {}), "unblocked": ("official_onnx", {"blocked": False}),
          "unsplit-convs": ("official_onnx", {"split_convs": False}),
          "padded": ("official_onnx", {"pad_channels": 8}), "trt-ready": ("trt_ready", {})}


@pytest.fixture(scope="module", params=list(GRAPHS))
def whole_path(request):
    source, rewrites = GRAPHS[request.param]
    return low_res_model_path(request.getfixturevalue(source), **rewrites)


@pytest.fixture(scope="module")
def whole(whole_path) -> onnx.ModelProto:
    return onnx.load(str(whole_path))


@pytest.fixture(scope="module")
def stages(whole) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    return split_stages(whole)


def names(values) -> list[str]:
    return [value.name for value in values]


def made(model: onnx.ModelProto) -> set[str]:
    return {out for node in model.graph.node for out in node.output}


def test_the_stages_together_read_the_graphs_inputs_and_make_each_output_once(whole, stages):
    first, second = stages
    handed = set(names(first.graph.output)) & set(names(second.graph.input))
    assert handed  # the second stage reads what the first hands over
    assert handed == set(names(second.graph.input)) - set(names(whole.graph.input))  # the rest: the graph's
    outside = {name for name in (*names(first.graph.input), *names(second.graph.input)) if name not in handed}
    assert outside == set(names(whole.graph.input))  # each of the graph's inputs read, by one stage or both
    outputs = Counter(name for name in (*names(first.graph.output), *names(second.graph.output))
                      if name not in handed)
    assert outputs == Counter(names(whole.graph.output))  # each of the graph's outputs made, once
    # every node of the graph runs in exactly one stage
    assert Counter(node.SerializeToString() for node in (*first.graph.node, *second.graph.node)) == Counter(
        node.SerializeToString() for node in whole.graph.node)
    assert SMALL_INPUT in names(first.graph.input)  # the encoder's


def test_the_first_stage_never_sees_the_finest_state_and_the_second_carries_only_it(stages):
    first, second = stages
    assert STATE_INPUTS[0] not in names(first.graph.input)
    assert not any(STATE_INPUTS[0] in reads(node) for node in first.graph.node)
    assert [n for n in names(first.graph.input) if n in STATE_INPUTS] == list(STATE_INPUTS[1:])
    assert [n for n in names(first.graph.output) if n in STATE_OUTPUTS] == list(STATE_OUTPUTS[1:])
    assert [n for n in names(second.graph.input) if n in STATE_INPUTS] == [STATE_INPUTS[0]]
    assert [n for n in names(second.graph.output) if n in STATE_OUTPUTS] == [STATE_OUTPUTS[0]]


def test_each_stage_holds_every_weight_it_reads_and_no_other(stages):
    for stage in stages:
        graph = stage.graph
        used = {name for node in graph.node for name in reads(node)}
        available = set(names(graph.input)) | set(names(graph.initializer)) | made(stage)
        assert used <= available, used - available
        assert set(names(graph.initializer)) <= used  # no weight copied in for nothing


def run(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name of `session` fed the inputs it declares."""
    wanted = {item.name: feeds[item.name] for item in session.get_inputs()}
    return dict(zip([item.name for item in session.get_outputs()], session.run(None, wanted), strict=True))


def test_the_stages_chained_give_the_whole_graphs_outputs_on_real_frames(whole, stages):
    """Four real frames, the states fed back by hand: coefficients and states equal to the whole graph's
    (each session on one thread, ORT's usual optimisations)."""
    def session(model: onnx.ModelProto) -> ort.InferenceSession:
        return ort.InferenceSession(model.SerializeToString(), session_options(1, False, "all"),
                                    providers=_CPU)

    whole_session, first, second = session(whole), *(session(stage) for stage in stages)
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    state = split_state = dict.fromkeys(STATE_INPUTS, zeros)
    for rgb in read_frames("milk", 4):
        small = np.ascontiguousarray(rgb[::8, ::8].transpose(2, 0, 1)[None], np.float32) / np.float32(255)
        expected = run(whole_session, {SMALL_INPUT: small, **state})
        middle = run(first, {SMALL_INPUT: small, **split_state})
        # the second stage: what the first handed over, r1i, and src_sm where it reads it
        got = {**middle, **run(second, {SMALL_INPUT: small, **split_state, **middle})}
        for name, value in expected.items():
            assert got[name].shape == value.shape and np.abs(got[name] - value).max() <= 1e-5, name
        state = {i: expected[o] for i, o in zip(STATE_INPUTS, STATE_OUTPUTS, strict=True)}
        split_state = {i: got[o] for i, o in zip(STATE_INPUTS, STATE_OUTPUTS, strict=True)}
    assert state[STATE_INPUTS[0]].shape[-2:] == (small.shape[-2] // 2, small.shape[-1] // 2)  # r1 at 1/2


def test_a_path_bytes_and_model_give_the_same_cut(whole_path, whole, stages):
    for given in (whole_path, whole.SerializeToString()):
        assert [part.graph for part in split_stages(given)] == [stage.graph for stage in stages]


def test_the_seeds_are_the_finest_state_and_the_upsample_before_it(whole):
    seeds = second_stage_seeds(whole.graph)
    assert STATE_INPUTS[0] in seeds and len(seeds) == 2
    [upsample] = seeds - {STATE_INPUTS[0]}
    producer = next(node for node in whole.graph.node if upsample in node.output)
    assert producer.op_type in ("Resize", "If")


def test_a_graph_with_no_reader_of_the_finest_state_is_unsplittable(official_onnx):
    """The official graph with r1i's one reader fed zeros instead: still RVM's tensor names, no cut."""
    model = onnx.load(str(official_onnx))
    unread_r1(model)
    with pytest.raises(UnsplittableGraph, match="no node reads r1i"):
        split_stages(low_res_model(model))


def test_a_graph_with_no_upsample_before_the_finest_block_is_unsplittable():
    graph = helper.make_graph(
        [helper.make_node("Relu", [SMALL_INPUT], ["x"]), helper.make_node("Add", ["x", "r1i"], ["coef_a"])],
        "tiny", [helper.make_tensor_value_info(SMALL_INPUT, TensorProto.FLOAT, [1, 1, 2, 2]),
                 helper.make_tensor_value_info("r1i", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("coef_a", TensorProto.FLOAT, [1, 1, 2, 2])])
    with pytest.raises(UnsplittableGraph, match="no upsample"):
        split_stages(helper.make_model(graph))


def test_a_cut_that_leaves_the_first_stage_no_output_of_the_graph_is_unsplittable():
    """An upsample of the input itself, no coarse state: every output would be the second stage's."""
    graph = helper.make_graph(
        [helper.make_node("Resize", [SMALL_INPUT, "", "scales"], ["up"]),
         helper.make_node("Add", ["up", "r1i"], ["coef_a"])],
        "tiny", [helper.make_tensor_value_info(SMALL_INPUT, TensorProto.FLOAT, [1, 1, 2, 2]),
                 helper.make_tensor_value_info("r1i", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("coef_a", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    with pytest.raises(UnsplittableGraph, match="leaves a stage empty"):
        split_stages(helper.make_model(graph))
