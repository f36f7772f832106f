"""The guided-filter refiners (`rvmkit.model.refiners`): the fast guided filter restores full resolution
from the low-resolution prediction, for both backbones (the deep one is the checkpoint's, tested with
the pretrained network in test_network.py)."""

from __future__ import annotations

import pytest
import torch

from rvmkit.model import MattingNetwork


@pytest.mark.parametrize("variant", ["mobilenetv3", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_fast_guided_filter_refiner_runs(variant):
    model = MattingNetwork(variant, refiner="fast_guided_filter").eval()
    with torch.no_grad():
        fgr, pha, *_ = model(torch.rand(1, 3, 120, 160), downsample_ratio=0.5)
    assert pha.shape == (1, 1, 120, 160)
