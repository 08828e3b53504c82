"""Imbalance strategies: how an epoch draws its items, and which loss weighs them.

Each strategy is a `Strategy(draw, loss)`: `draw(labels, n_classes, rng)` gives the item
indices of one epoch, `loss(counts, gamma, tau)` the per-sample loss on soft targets (mixing and
label smoothing make every target a distribution). Adding a strategy = adding an entry here.

    none              every item once per epoch, plain cross-entropy
    class_weighted    every item once, cross-entropy weighted N / (K · n_class)
    weighted_sampler  N draws with replacement, each class equally likely (oversampling)
    sqrt_sampler      N draws with replacement, class c drawn in proportion to sqrt(n_c)
    undersample       each class capped at the median class size, fresh subset per epoch
    focal             every item once, focal loss (1 - p)^gamma down-weights easy items
    logit_adjusted    every item once, cross-entropy on logits + tau · log(prior) (Menon et
                      al. 2021): training sees the class prior, inference the plain logits,
                      so rare classes get a wider margin without resampling
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class SoftCrossEntropy(nn.Module):
    """Cross-entropy against target distributions, optionally class-weighted or focal."""

    def __init__(
        self,
        class_weights: torch.Tensor | None = None,
        gamma: float = 0.0,
        logit_offsets: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.register_buffer("logit_offsets", logit_offsets)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.logit_offsets is not None:
            logits = logits + self.logit_offsets
        log_p = torch.log_softmax(logits, dim=1)
        per_class = -targets * log_p
        if self.gamma > 0:
            per_class = per_class * (1 - log_p.exp()).pow(self.gamma)
        if self.class_weights is not None:
            per_class = per_class * self.class_weights
        return per_class.sum(dim=1).mean()


def _every_item(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(len(labels))


def _draws(
    labels: np.ndarray, n_classes: int, rng: np.random.Generator, power: float
) -> np.ndarray:
    """N draws with replacement, class c drawn in proportion to n_c ** (1 - power): each
    item weighs n_c ** -power. power 1: every class equally likely (weighted_sampler);
    0.5: in proportion to sqrt(n_c), small classes oversampled less (sqrt_sampler)."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = counts[labels] ** -power
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


def _capped_at_median(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes)
    cap = int(np.median(counts[counts > 0]))
    chosen = []
    for label in np.flatnonzero(counts):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[:cap])
    return rng.permutation(np.concatenate(chosen))


def _plain_loss(counts: np.ndarray, gamma: float, tau: float) -> nn.Module:
    return SoftCrossEntropy()


def _weighted_loss(counts: np.ndarray, gamma: float, tau: float) -> nn.Module:
    counts = np.maximum(counts, 1).astype(np.float32)
    weights = counts.sum() / (len(counts) * counts)
    return SoftCrossEntropy(class_weights=torch.from_numpy(weights))


def _focal_loss(counts: np.ndarray, gamma: float, tau: float) -> nn.Module:
    return SoftCrossEntropy(gamma=gamma)


def _logit_adjusted_loss(counts: np.ndarray, gamma: float, tau: float) -> nn.Module:
    prior = np.maximum(counts, 1).astype(np.float32)
    prior /= prior.sum()
    return SoftCrossEntropy(logit_offsets=torch.from_numpy(tau * np.log(prior)))


@dataclass(frozen=True)
class Strategy:
    description: str
    draw: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    loss: Callable[[np.ndarray, float, float], nn.Module]


STRATEGIES: dict[str, Strategy] = {
    "none": Strategy("every item once per epoch, plain cross-entropy", _every_item, _plain_loss),
    "class_weighted": Strategy(
        "every item once, cross-entropy weighted N / (K * n_class)", _every_item, _weighted_loss
    ),
    "weighted_sampler": Strategy(
        "oversampling: N draws with replacement, every class equally likely",
        functools.partial(_draws, power=1.0),
        _plain_loss,
    ),
    "sqrt_sampler": Strategy(
        "tempered oversampling: N draws with replacement, class c in proportion to sqrt(n_c)",
        functools.partial(_draws, power=0.5),
        _plain_loss,
    ),
    "undersample": Strategy(
        "each class capped at the median class size, a fresh subset every epoch",
        _capped_at_median,
        _plain_loss,
    ),
    "focal": Strategy(
        "every item once, focal loss (gamma = focal_gamma)", _every_item, _focal_loss
    ),
    "logit_adjusted": Strategy(
        "every item once, cross-entropy on logits + logit_tau * log(class prior)",
        _every_item,
        _logit_adjusted_loss,
    ),
}
