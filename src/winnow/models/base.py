"""What every winnow model is: a classifier split into `forward_features` and `forward_head`.

A model family is one file defining `MODELS = (ModelSpec(...), ...)`. The spec's `build`
function takes `num_classes` plus keyword parameters with defaults; those keywords are the
model's public, validated parameters (`winnow models` lists them). No weights are ever
downloaded: every model starts from a random initialisation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class Classifier(nn.Module):
    """Base of every registered model.

    forward_features: images (B, 3, H, W) → feature map (B, C, h, w), the last spatial layer
    (class activation maps are computed on it).
    forward_head: feature map → logits (B, num_classes).
    """

    num_features: int

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


class PooledHead(nn.Module):
    """Global average pool, dropout, linear: the head most families share."""

    def __init__(self, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features.mean(dim=(2, 3))))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    description: str
    build: Callable[..., Classifier]  # build(num_classes, **params)

    def defaults(self) -> dict[str, Any]:
        """Public parameters and their defaults, from `build`'s signature."""
        return {
            name: parameter.default
            for name, parameter in inspect.signature(self.build).parameters.items()
            if name != "num_classes"
        }


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit batch norms, small linear layers."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
