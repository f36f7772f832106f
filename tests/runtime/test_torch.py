"""The torch backend (`rvmkit.runtime.torch`): the checkpoint's alphas within 2/255 of the official ONNX
frame by frame and in one chunk, and its recurrent state readable."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import backend_alphas
from rvmkit.runtime import load_backend
from rvmkit.runtime.base import to_input

TOLERANCE = 2 / 255


@pytest.mark.slow
def test_torch_backend_agrees_with_onnxruntime(checkpoint, milk_frames, milk_reference):
    pytest.importorskip("torch")
    backend = load_backend(None, checkpoint)
    assert backend.name == "torch"
    for ours, ref in zip(backend_alphas(backend, milk_frames, 0.25), milk_reference, strict=True):
        assert np.abs(ours - ref).max() <= TOLERANCE
    fgr, pha, state = backend.step_chunk(np.concatenate([to_input(rgb) for rgb in milk_frames]), None, 0.25)
    assert pha.shape == (len(milk_frames), 1, 480, 640) and fgr.shape == (len(milk_frames), 3, 480, 640)
    assert np.abs(pha - np.concatenate(milk_reference)).max() <= TOLERANCE
    states = backend.states(state)  # the last frame's, at 1/2 .. 1/16 of the 120x160 downsampled frame
    assert [s.shape for s in states] == [(1, 16, 60, 80), (1, 20, 30, 40), (1, 40, 15, 20), (1, 64, 8, 10)]
    assert all(s.dtype == np.float32 for s in states)
