"""ResNet-50 encoder with torchvision's module layout; RVM dilates layer4 (output stride 16)."""

from __future__ import annotations

from torch import Tensor, nn

from rvmkit.model.common import normalize_imagenet


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# (width, blocks, stride, dilate) per stage; RVM uses replace_stride_with_dilation=[False, False, True].
STAGES = [(64, 3, 1, False), (128, 4, 2, False), (256, 6, 2, False), (512, 3, 2, True)]


class ResNet50Encoder(nn.Module):
    """Returns features at strides 2, 4, 8, 16 with 64, 256, 512, 2048 channels."""

    channels = (64, 256, 512, 2048)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, dilation = 64, 1
        for index, (width, blocks, stride, dilate) in enumerate(STAGES, start=1):
            previous_dilation = dilation
            if dilate:
                dilation, stride = dilation * stride, 1
            downsample = None
            if stride != 1 or cin != width * Bottleneck.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(cin, width * Bottleneck.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(width * Bottleneck.expansion),
                )
            layers = [Bottleneck(cin, width, stride, previous_dilation, downsample)]
            cin = width * Bottleneck.expansion
            layers += [Bottleneck(cin, width, dilation=dilation) for _ in range(1, blocks)]
            setattr(self, f"layer{index}", nn.Sequential(*layers))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = normalize_imagenet(x)
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer4(self.layer3(f3))
        return [f1, f2, f3, f4]
