"""Small pieces shared by the encoders, decoder and refiners."""

from __future__ import annotations

from typing import Any

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


def half_up(n: Any) -> Any:
    """ceil(n / 2) written as (n + 1) // 2: the size of a stride-2 / ceil-mode map of n pixels.

    Under ONNX tracing `n` is a tensor; this form (not the nested ceil() of the skip tensors' shapes)
    is one ONNX Runtime's symbolic shape inference can reason about, so the exported decoder passes it."""
    if isinstance(n, Tensor):
        return torch.div(n + 1, 2, rounding_mode="trunc")
    return (n + 1) // 2


def crop_sizes(s0: Tensor) -> list[tuple[Any, Any]]:
    """Spatial sizes of the decoder's four levels (full, 1/2, 1/4, 1/8 of `s0`, rounded up), computed
    as `half_up` chains from `s0`'s own size."""
    sizes = [(s0.shape[2], s0.shape[3])]
    for _ in range(3):
        sizes.append((half_up(sizes[-1][0]), half_up(sizes[-1][1])))
    return sizes


def upsample2x_cropped(x: Tensor, size: tuple[Any, Any]) -> Tensor:
    """Upsample by 2 (the scale, not the size, maps coordinates) and crop to `size` (odd sizes round up
    in the encoder)."""
    x = F.interpolate(x, scale_factor=(2.0, 2.0), mode="bilinear", align_corners=False)
    return x[:, :, : size[0], : size[1]]
