"""The ResNet-50 encoder (`rvmkit.model.resnet`): four feature maps at strides 2, 4, 8 and 16 (the last
stage dilated instead of strided, as RVM's) with 64, 256, 512 and 2048 channels. No pretrained
ResNet-50 weights are cached, so the weights are random; the checkpoint layout is in test_network.py."""

from __future__ import annotations

import numpy as np
import torch

from rvmkit.model.resnet import ResNet50Encoder


def test_features_at_four_strides_with_the_last_stage_dilated(book_frames):
    torch.manual_seed(0)
    encoder = ResNet50Encoder().eval()
    frame = torch.from_numpy(book_frames[0][:96, :128].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        features = encoder(frame)
    assert [tuple(f.shape) for f in features] == [(1, 64, 48, 64), (1, 256, 24, 32), (1, 512, 12, 16),
                                                  (1, 2048, 6, 8)]
    assert tuple(encoder.channels) == tuple(f.shape[1] for f in features)
    assert encoder.layer4[0].conv2.stride == (1, 1) and encoder.layer4[1].conv2.dilation == (2, 2)
    assert all(torch.isfinite(f).all() for f in features)
