"""The recurrent decoder (`rvmkit.model.decoder`) of the pretrained network on real frames: its state
has 16, 20, 40 and 64 channels at 1/2 .. 1/16 of the input, a zero state of shape 1x1x1x1 is no state,
and the state carries the past: the same frame decodes differently after another one."""

from __future__ import annotations

import numpy as np
import torch


def _features(network, rgb: np.ndarray) -> tuple[torch.Tensor, ...]:
    src = torch.from_numpy(rgb[:120, :160].astype(np.float32) / 255).permute(2, 0, 1)[None]
    f1, f2, f3, f4 = network.backbone(src)
    return src, f1, f2, f3, network.aspp(f4)


def test_the_state_has_its_shapes_and_carries_the_past(pretrained, book_frames):
    decoder = pretrained.decoder
    with torch.no_grad():
        first, second = _features(pretrained, book_frames[0]), _features(pretrained, book_frames[19])
        hid, *state = decoder(*first, None, None, None, None)
        zeros = decoder(*first, *[torch.zeros(1, 1, 1, 1)] * 4)
        cold = decoder(*second, None, None, None, None)
        warm = decoder(*second, *state)
    assert hid.shape == (1, 16, 120, 160)
    assert [tuple(s.shape) for s in state] == [(1, 16, 60, 80), (1, 20, 30, 40), (1, 40, 15, 20),
                                               (1, 64, 8, 10)]
    assert all(torch.equal(a, b) for a, b in zip([hid, *state], zeros, strict=True))
    assert not torch.allclose(cold[0], warm[0])
