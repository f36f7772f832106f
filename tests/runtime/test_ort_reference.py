"""The reference backend (`session.run` as the official examples run it) that verify and bench compare
with: the same numbers as a session driven by hand, its states readable, float16 models fed float16."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from conftest import read_frames
from rvmkit.runtime import load_backend
from rvmkit.runtime.base import to_input
from rvmkit.runtime.ort_reference import OrtReferenceBackend

STATES = ("r1i", "r2i", "r3i", "r4i")


def test_reference_backend_equals_a_session_run_by_hand_states_included(official_onnx):
    frames = read_frames("milk", 3)
    session = ort.InferenceSession(str(official_onnx), providers=["CPUExecutionProvider"])
    backend = OrtReferenceBackend(official_onnx)
    rec, state = [np.zeros((1, 1, 1, 1), np.float32)] * 4, None
    for rgb in frames:
        fgr, pha, *rec = session.run(None, {"src": to_input(rgb), **dict(zip(STATES, rec, strict=True)),
                                            "downsample_ratio": np.array([0.25], np.float32)})
        ours_fgr, ours_pha, state = backend.step(backend.prepare(rgb, 0.25), state, 0.25)
        np.testing.assert_array_equal(ours_fgr, fgr)
        np.testing.assert_array_equal(ours_pha, pha)
        states = backend.states(state)
        assert [s.shape for s in states] == [r.shape for r in rec] and states[0].shape[1] == 16
        for ours, ref in zip(states, rec, strict=True):
            np.testing.assert_array_equal(ours, ref)


def test_the_fast_path_exposes_the_same_states_as_the_reference(official_onnx):
    frames = read_frames("milk", 2)
    reference = OrtReferenceBackend(official_onnx)
    fast = load_backend("onnxruntime", official_onnx, fast=True)
    ref_state = fast_state = None
    for rgb in frames:
        _, _, ref_state = reference.step(to_input(rgb), ref_state, 0.25)
        _, _, fast_state = fast.step(rgb, fast_state, 0.25)
    for ours, ref in zip(fast.states(fast_state), reference.states(ref_state), strict=True):
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1e-4


def test_a_float16_model_gets_float16_inputs_and_gives_float32_outputs(tmp_path):
    names, outputs = ["src", "r1i", "r2i", "r3i", "r4i"], ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT16, None) for name in names]
    nodes = [helper.make_node("Identity", [i], [o]) for i, o in zip(["src", *names], outputs, strict=True)]
    graph = helper.make_graph(nodes, "identity", inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT16, None) for o in outputs])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    backend = OrtReferenceBackend(tmp_path / "m.onnx")
    rgb = np.full((6, 8, 3), 51, np.uint8)
    src = backend.prepare(rgb, 1.0)
    assert src.dtype == np.float16 and src.shape == (1, 3, 6, 8)
    fgr, pha, state = backend.step(src, None, 1.0)
    assert fgr.dtype == np.float32 and np.allclose(fgr, 0.2, atol=1e-3) and pha.shape == (1, 3, 6, 8)
    assert all(s.dtype == np.float16 for s in state)  # fed back in the model's own precision
    assert [s.dtype for s in backend.states(state)] == [np.float32] * 4
