"""`mobilenet_v2`: the efficient mobile-style network (Sandler et al. 2018).

Inverted residual blocks (1×1 expand, 3×3 depthwise, 1×1 linear projection) with a width
multiplier. Fewer multiply-adds per image than a ResNet of similar accuracy, at the cost of
depthwise convolutions, which CPUs run less efficiently per FLOP.
"""

from __future__ import annotations

import torch
from torch import nn

from winnow.models.base import Classifier, ModelSpec, PooledHead, init_weights

# expansion t, channels c, repeats n, stride s (the paper's table 2)
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _round(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1, act: bool = True):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += _conv_bn(cin, hidden, 1, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, cout, 1, 1, act=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(Classifier):
    def __init__(
        self, num_classes: int, width_mult: float, stem_stride: int, last_channels: int, dropout
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        cin = _round(32 * width_mult)
        layers: list[nn.Module] = [*_conv_bn(3, cin, 3, stem_stride)]
        for expansion, channels, repeats, stride in SETTINGS:
            cout = _round(channels * width_mult)
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        last = _round(last_channels * max(1.0, width_mult))
        layers += _conv_bn(cin, last, 1, 1)
        self.features = nn.Sequential(*layers)
        self.num_features = last
        self.head = PooledHead(last, num_classes, dropout)
        init_weights(self)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def mobilenet_v2(
    num_classes: int,
    width_mult: float = 1.0,
    stem_stride: int = 1,
    last_channels: int = 640,
    dropout: float = 0.2,
) -> Classifier:
    return MobileNetV2(num_classes, width_mult, stem_stride, last_channels, dropout)


MODELS = (
    ModelSpec(
        "mobilenet_v2",
        "mobilenet",
        "MobileNetV2 inverted residuals; width_mult, stem_stride (1 for small images)",
        mobilenet_v2,
    ),
)
