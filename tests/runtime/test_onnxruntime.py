"""The ONNX Runtime backend's plain path (`rvmkit.runtime.onnxruntime`, fast=False): the official session's
alphas bit for bit with its states kept as OrtValues, and a baked-ratio model. The fast path is
tests/runtime/test_ort_fast.py."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from conftest import backend_alphas
from rvmkit.runtime import load_backend
from rvmkit.runtime.base import to_input


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
