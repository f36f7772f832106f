"""The MobileNetV3-Large encoder (`rvmkit.model.mobilenetv3`) with the pretrained weights, on a real
frame: four feature maps at strides 2, 4, 8 and 16 with 16, 24, 40 and 960 channels (odd sizes round
up), and features that follow the picture."""

from __future__ import annotations

import numpy as np
import torch

from rvmkit.model.mobilenetv3 import MobileNetV3LargeEncoder


def test_features_at_four_strides_from_a_real_frame(pretrained, book_frames):
    encoder = pretrained.backbone
    assert isinstance(encoder, MobileNetV3LargeEncoder)
    frame = torch.from_numpy(book_frames[0][:121, :161].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        features = encoder(frame)
        flipped = encoder(frame.flip(3))
    assert [tuple(f.shape) for f in features] == [(1, 16, 61, 81), (1, 24, 31, 41), (1, 40, 16, 21),
                                                  (1, 960, 8, 11)]
    assert tuple(encoder.channels) == tuple(f.shape[1] for f in features)
    assert all(torch.isfinite(f).all() for f in features)
    assert not torch.allclose(features[3], flipped[3])  # the picture matters, not only its size
