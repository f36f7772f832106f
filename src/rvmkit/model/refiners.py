"""Guided-filter refiners: restore full resolution from the low-resolution prediction."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rvmkit.model.common import resize_to


def with_gray(x: Tensor) -> Tensor:
    return torch.cat([x, x.mean(1, keepdim=True)], dim=1)


def guided_statistics(box_filter: Callable[[Tensor], Tensor], base_src: Tensor, base_fgr: Tensor,
                      base_pha: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Local means, covariance and variance of guide x = [src, gray] and target y = [fgr, pha]."""
    base_x = with_gray(base_src)
    base_y = torch.cat([base_fgr, base_pha], dim=1)
    mean_x = box_filter(base_x)
    mean_y = box_filter(base_y)
    cov_xy = box_filter(base_x * base_y) - mean_x * mean_y
    var_x = box_filter(base_x * base_x) - mean_x * mean_x
    return mean_x, mean_y, cov_xy, var_x


def apply_coefficients(a: Tensor, b: Tensor, fine_src: Tensor) -> tuple[Tensor, Tensor]:
    """Upsample A, b to the full frame and apply them: [fgr, pha] = A * [src, gray] + b."""
    size = fine_src.shape[2:]
    out = resize_to(a, size) * with_gray(fine_src) + resize_to(b, size)
    fgr, pha = out.split([3, 1], dim=1)
    return fgr, pha


class DeepGuidedFilterRefiner(nn.Module):
    def __init__(self, hid_channels: int = 16) -> None:
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        self.box_filter.weight.data[...] = 1 / 9
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True),
        )

    def coefficients(self, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                     base_hid: Tensor) -> tuple[Tensor, Tensor]:
        """Low-resolution A, b such that out = A * [src, gray(src)] + b after upsampling."""
        mean_x, mean_y, cov_xy, var_x = guided_statistics(self.box_filter, base_src, base_fgr, base_pha)
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        return a, mean_y - a * mean_x

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                base_hid: Tensor) -> tuple[Tensor, Tensor]:
        return apply_coefficients(*self.coefficients(base_src, base_fgr, base_pha, base_hid), fine_src)


class FastGuidedFilterRefiner(nn.Module):
    """Parameter-free guided filter (radius 1, eps 1e-5)."""

    def __init__(self, radius: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.radius = radius
        self.eps = eps

    def box_filter(self, x: Tensor) -> Tensor:
        k = 2 * self.radius + 1
        channels = x.shape[1]
        kx = torch.full((channels, 1, 1, k), 1 / k, device=x.device, dtype=x.dtype)
        ky = torch.full((channels, 1, k, 1), 1 / k, device=x.device, dtype=x.dtype)
        x = F.conv2d(x, kx, padding=(0, self.radius), groups=channels)
        return F.conv2d(x, ky, padding=(self.radius, 0), groups=channels)

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                base_hid: Tensor) -> tuple[Tensor, Tensor]:
        mean_x, mean_y, cov_xy, var_x = guided_statistics(self.box_filter, base_src, base_fgr, base_pha)
        a = cov_xy / (var_x + self.eps)
        return apply_coefficients(a, mean_y - a * mean_x, fine_src)
