"""LR-ASPP head and RVM's recurrent decoder (four ConvGRUs), in the official module layout."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rvmkit.model.common import crop_sizes, upsample2x_cropped


class LRASPP(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, 3, padding=1), nn.Tanh())

    def forward(self, x: Tensor, h: Tensor | None) -> Tensor:
        # A [1,1,1,1] zero state (the exported models' initial state) broadcasts to x's shape.
        h = torch.zeros_like(x) if h is None else h.expand_as(x)
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1))
        return (1 - z) * h + z * c


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.channels // 2, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r


class UpsamplingBlock(nn.Module):
    def __init__(self, cin: int, skip: int, src: int, cout: int) -> None:
        super().__init__()
        self.out_channels = cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip + src, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )
        self.gru = ConvGRU(cout // 2)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Tensor | None,
                size: tuple[Any, Any]) -> tuple[Tensor, Tensor]:
        x = self.conv(torch.cat([upsample2x_cropped(x, size), f, s], dim=1))
        a, b = x.split(self.out_channels // 2, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r


class OutputBlock(nn.Module):
    def __init__(self, cin: int, src: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + src, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        )

    def forward(self, x: Tensor, s: Tensor, size: tuple[Any, Any]) -> Tensor:
        return self.conv(torch.cat([upsample2x_cropped(x, size), s], dim=1))


class RecurrentDecoder(nn.Module):
    def __init__(self, feature_channels: list[int], decoder_channels: list[int]) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    def forward(self, s0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor,
                r1: Tensor | None, r2: Tensor | None, r3: Tensor | None, r4: Tensor | None):
        # The upsampled maps are cropped to sizes computed from s0 (equal to the skip tensors' sizes),
        # so the exported graph passes symbolic shape inference (see common.half_up).
        sizes = crop_sizes(s0)
        s1 = self.avgpool(s0)
        s2 = self.avgpool(s1)
        s3 = self.avgpool(s2)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3, sizes[3])
        x2, r2 = self.decode2(x3, f2, s2, r2, sizes[2])
        x1, r1 = self.decode1(x2, f1, s1, r1, sizes[1])
        return self.decode0(x1, s0, sizes[0]), r1, r2, r3, r4


class Projection(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
