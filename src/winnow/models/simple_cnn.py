"""`simple_cnn`: the classic Conv-Pool-Dense baseline people start from (Keras tutorial style).

Three blocks of 3×3 convolution, ReLU and 2×2 max-pooling, doubling the width each time,
then a dense layer and dropout. An adaptive pool before the dense layer makes it accept any
image size, so the same weights serve 64 px and 128 px inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from winnow.models.base import Classifier, ModelSpec, init_weights


class SimpleCNN(Classifier):
    def __init__(
        self, num_classes: int, width: int = 32, dense: int = 128, dropout: float = 0.5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(3):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=True)]
            if i < 2:  # the last block's pooling happens in the head, after CAM's feature map
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.pool = nn.AdaptiveMaxPool2d(4)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 16, dense),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )
        init_weights(self)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.dense(self.pool(features))


def simple_cnn(
    num_classes: int, width: int = 32, dense: int = 128, dropout: float = 0.5
) -> Classifier:
    return SimpleCNN(num_classes, width=width, dense=dense, dropout=dropout)


MODELS = (
    ModelSpec(
        "simple_cnn",
        "simple_cnn",
        "3× (conv 3×3, ReLU, max-pool) + dense + dropout; the notebook baseline",
        simple_cnn,
    ),
)
