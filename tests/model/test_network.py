"""The PyTorch model: official checkpoint layout and numerical parity with the official ONNX."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import REPO
from rvmkit.model import MattingNetwork

SCHEMA = json.loads((REPO.parent / "shared" / "reference" / "rvm_state_dict_schema.json").read_text())


@pytest.mark.parametrize("variant", ["mobilenetv3", "resnet50"])
def test_state_dict_has_exactly_the_official_keys_and_shapes(variant):
    state = MattingNetwork(variant).state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == SCHEMA[variant]


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_imported_weights_match_official_onnx_over_20_recurrent_frames(pretrained, official_onnx,
                                                                       book_frames, ratio):
    session = ort.InferenceSession(str(official_onnx), providers=["CPUExecutionProvider"])
    onnx_states = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    torch_states = [None] * 4
    errors = []
    for rgb in book_frames:
        src = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        fgr, pha, *onnx_states = session.run(None, {
            "src": src, **dict(zip(["r1i", "r2i", "r3i", "r4i"], onnx_states)),
            "downsample_ratio": np.array([ratio], np.float32)})
        with torch.no_grad():
            t_fgr, t_pha, *torch_states = pretrained(torch.from_numpy(src), *torch_states,
                                                     downsample_ratio=ratio)
        errors.append(max(np.abs(t_fgr.numpy() - fgr).max(), np.abs(t_pha.numpy() - pha).max()))
    assert len(errors) == 20
    assert max(errors) <= 1e-4


@pytest.mark.slow
def test_time_series_input_equals_frame_by_frame(pretrained, book_frames):
    clip = torch.from_numpy(np.stack(book_frames[:4]).astype(np.float32) / 255).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        fgr_seq, pha_seq, *states_seq = pretrained(clip, downsample_ratio=0.5)
        states = [None] * 4
        for t in range(4):
            fgr, pha, *states = pretrained(clip[:, t], *states, downsample_ratio=0.5)
            assert torch.allclose(pha_seq[:, t], pha, atol=1e-6)
    assert fgr_seq.shape == (1, 4, 3, 480, 640)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(states_seq, states))


def test_zero_states_of_shape_1111_broadcast_like_none(pretrained, book_frames):
    src = torch.from_numpy(book_frames[0].astype(np.float32) / 255).permute(2, 0, 1)[None]
    zeros = [torch.zeros(1, 1, 1, 1)] * 4
    with torch.no_grad():
        with_none = pretrained(src, downsample_ratio=0.25)
        with_zeros = pretrained(src, *zeros, downsample_ratio=0.25)
    assert all(torch.equal(a, b) for a, b in zip(with_none, with_zeros))


@pytest.mark.parametrize("size", [pytest.param((479, 641), marks=pytest.mark.slow), (97, 61)])
def test_odd_sizes_keep_full_resolution_outputs(pretrained, size):
    src = torch.rand(1, 3, *size)
    with torch.no_grad():
        fgr, pha, r1, *_ = pretrained(src, downsample_ratio=0.5)
    assert fgr.shape == (1, 3, *size) and pha.shape == (1, 1, *size)
    assert 0 <= float(pha.min()) and float(pha.max()) <= 1


def test_segmentation_pass_needs_a_checkpoint_with_project_seg(pretrained):
    assert pretrained.has_segmentation is False  # the official ONNX carries no project_seg
    with pytest.raises(ValueError, match="project_seg"):
        pretrained(torch.rand(1, 3, 64, 64), segmentation_pass=True)
    seg, *states = MattingNetwork("mobilenetv3").eval()(torch.rand(1, 3, 64, 64), segmentation_pass=True)
    assert seg.shape == (1, 1, 64, 64) and len(states) == 4


@pytest.mark.slow
def test_time_chunk_runs_the_decoder_in_time_and_equals_frame_by_frame(pretrained, book_frames):
    frames = torch.from_numpy(np.stack(book_frames[:3]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    with torch.no_grad():
        fgr_chunk, pha_chunk, *states_chunk = pretrained.forward_frame(frames, *[None] * 4, 0.25,
                                                                       always_refine=True, time_chunk=True)
        states = [None] * 4
        for t in range(3):
            fgr, pha, *states = pretrained.forward_frame(frames[t:t + 1], *states, 0.25, always_refine=True)
            assert torch.allclose(pha_chunk[t:t + 1], pha, atol=1e-5)
            assert torch.allclose(fgr_chunk[t:t + 1], fgr, atol=1e-5)
    assert states_chunk[0].shape[0] == 1  # one stream: the state is the last frame's
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(states_chunk, states, strict=True))
