"""ResNet family (He et al. 2016) configurable by depth, width, stem and pre-activation.

An ablation study is a config change: `resnet18` with `width: 32, stem: cifar` is a
narrow ResNet for small images; `pre_activation: true` gives the v2 ordering (BN-ReLU-conv).
Stems: `imagenet` (7×7 stride 2 + max-pool: /4), `deep` (three 3×3 convs, the first with
stride 2: /2), `cifar` (one 3×3 conv, stride 1: /1, best below 64 px).
"""

from __future__ import annotations

import torch
from torch import nn

from winnow.models.base import Classifier, ModelSpec, PooledHead, init_weights

BLOCKS_PER_STAGE = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STEMS = ("imagenet", "deep", "cifar")


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def make_stem(kind: str, width: int) -> nn.Sequential:
    if kind == "imagenet":
        return nn.Sequential(*_conv_bn_relu(3, width, 7, 2), nn.MaxPool2d(3, 2, 1))
    if kind == "deep":
        return nn.Sequential(
            *_conv_bn_relu(3, width // 2, 3, 2),
            *_conv_bn_relu(width // 2, width // 2, 3, 1),
            *_conv_bn_relu(width // 2, width, 3, 1),
        )
    if kind == "cifar":
        return nn.Sequential(*_conv_bn_relu(3, width, 3, 1))
    raise ValueError(f"Unknown stem {kind!r}; available: {', '.join(STEMS)}")


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, pre_activation: bool) -> None:
        super().__init__()
        self.pre_activation = pre_activation
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cin if pre_activation else cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            projection: list[nn.Module] = [nn.Conv2d(cin, cout, 1, stride, bias=False)]
            if not pre_activation:
                projection.append(nn.BatchNorm2d(cout))
            self.shortcut = nn.Sequential(*projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_activation:  # v2: BN-ReLU-conv, clean identity path
            out = self.relu(self.bn1(x))
            shortcut = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
            out = self.conv1(out)
            out = self.conv2(self.relu(self.bn2(out)))
            return out + shortcut
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(Classifier):
    def __init__(
        self,
        num_classes: int,
        depth: int,
        width: int,
        stem: str,
        pre_activation: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
        if width < 4:
            raise ValueError(f"width must be at least 4, got {width}")
        self.stem = make_stem(stem, width)
        stages: list[nn.Module] = []
        cin = width
        for i, blocks in enumerate(BLOCKS_PER_STAGE[depth]):
            cout = width * 2**i
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stages.append(BasicBlock(cin, cout, stride, pre_activation))
                cin = cout
        self.stages = nn.Sequential(*stages)
        # pre-activation blocks end without BN-ReLU: add the final one before pooling
        self.final = (
            nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
            if pre_activation
            else nn.Identity()
        )
        self.num_features = cin
        self.head = PooledHead(cin, num_classes, dropout)
        init_weights(self)
        if not pre_activation:  # zero-init the last BN of each block: blocks start as identity
            for block in self.stages:
                nn.init.zeros_(block.bn2.weight)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(images)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def _factory(depth: int):
    def build(
        num_classes: int,
        width: int = 32,
        stem: str = "deep",
        pre_activation: bool = False,
        dropout: float = 0.0,
    ) -> Classifier:
        return ResNet(num_classes, depth, width, stem, pre_activation, dropout)

    build.__name__ = f"resnet{depth}"
    return build


MODELS = tuple(
    ModelSpec(
        f"resnet{depth}",
        "resnet",
        f"ResNet-{depth} (basic blocks {BLOCKS_PER_STAGE[depth]}); width, stem "
        f"({'/'.join(STEMS)}), pre_activation",
        _factory(depth),
    )
    for depth in sorted(BLOCKS_PER_STAGE)
)
