"""The model's shared size arithmetic (`rvmkit.model.common`): the decoder's crop sizes, computed from the
full-size input, are the sizes the ceil-mode pools give the skip tensors, at odd sizes too."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("size", [(479, 641), (97, 61), (1, 3), (270, 480)])
def test_decoder_crop_sizes_are_the_pooled_skip_sizes(pretrained, size):
    from rvmkit.model.common import crop_sizes

    s0 = torch.rand(1, 3, *size)
    pooled = [s0]
    for _ in range(3):
        pooled.append(pretrained.decoder.avgpool(pooled[-1]))
    assert crop_sizes(s0) == [tuple(s.shape[2:]) for s in pooled]
