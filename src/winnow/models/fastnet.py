"""`fastnet`: a residual network laid out for accuracy per second of CPU training.

In the spirit of ResNet-9 and airbench: the resolution drops early and the channels grow
where the maps are small, so most of the compute runs on 16 × 16 and smaller maps.

    stem      3×3 conv, stride 2 (64 px → 32 px), BN, ReLU                  width channels
    stage i   an entry that halves the side: with `residual_down` (the       width · 2^(i+1)
              default) ResNet's basic block, stride 2, with a 1×1 projection
              shortcut; without it one 3×3 stride-2 conv, BN, ReLU. Then
              `blocks` residual blocks (two 3×3 conv-BN, identity shortcut)
    head      global average pool, dropout, linear

The defaults (3 stages, width 32, residual entries, no further blocks) are the winner of
the 10-minute CPU comparison in docs/benchmarks.md. `residual_down=false` leaves a plain
strided stack of four convolutions that trains about 2.5× more images per second (the
label_issue check's fold models use it); `blocks` adds depth where a bigger budget or
folder pays for it.
"""

from __future__ import annotations

import torch
from torch import nn

from winnow.models.base import Classifier, ModelSpec, PooledHead, init_weights


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU; the last BN starts at zero, so every
    block starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(x + self.bn2(self.conv2(out)))


class Down(nn.Module):
    """A residual stage entry (ResNet's basic block with a projection shortcut):
    ReLU(BN(conv3(ReLU(BN(conv3 stride 2(x))))) + BN(conv1 stride 2(x)))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(cin, cout, 2),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class FastNet(Classifier):
    def __init__(
        self,
        num_classes: int,
        width: int,
        stages: int,
        blocks: int,
        dropout: float,
        residual_down: bool = False,
    ) -> None:
        super().__init__()
        if width < 4:
            raise ValueError(f"width must be at least 4, got {width}")
        if not 1 <= stages <= 5:
            raise ValueError(f"stages must be between 1 and 5, got {stages}")
        if blocks < 0:
            raise ValueError(f"blocks must be 0 or more, got {blocks}")
        layers: list[nn.Module] = [_conv_bn_relu(3, width, 2)]
        channels = width
        for i in range(stages):
            out = width * 2 ** (i + 1)
            layers.append(Down(channels, out) if residual_down else _conv_bn_relu(channels, out, 2))
            layers += [Residual(out) for _ in range(blocks)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.head = PooledHead(channels, num_classes, dropout)
        init_weights(self)
        for layer in self.modules():
            if isinstance(layer, Residual):
                nn.init.zeros_(layer.bn2.weight)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def fastnet(
    num_classes: int,
    width: int = 32,
    stages: int = 3,
    blocks: int = 0,
    dropout: float = 0.0,
    residual_down: bool = True,
) -> Classifier:
    return FastNet(num_classes, width, stages, blocks, dropout, residual_down)


MODELS = (
    ModelSpec(
        "fastnet",
        "fastnet",
        "early stride-2 stem, residual stages widening ×2 (ResNet-9 / airbench style); "
        "built for accuracy per CPU second",
        fastnet,
    ),
)
