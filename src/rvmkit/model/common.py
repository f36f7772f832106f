"""Small pieces shared by the encoders, decoder and refiners."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_imagenet(x: Tensor) -> Tensor:
    """(x - mean) / std, as a Sub and a Div, exactly as the official graph computes it."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def resize_by_factor(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize by a scale factor with RVM's semantics (the scale, not the rounded size,
    maps coordinates; output size = floor(size * factor))."""
    return F.interpolate(x, scale_factor=(factor, factor), mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)


def resize_to(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample2x_cropped(x: Tensor, like: Tensor) -> Tensor:
    """Upsample by 2 and crop to `like`'s spatial size (odd sizes round up in the encoder)."""
    x = F.interpolate(x, scale_factor=(2.0, 2.0), mode="bilinear", align_corners=False)
    return x[:, :, : like.size(2), : like.size(3)]
