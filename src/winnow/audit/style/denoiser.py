"""A representation learned on the dataset itself: a small denoiser of its detail crops.

A four-layer convolutional network (DnCNN-style residual learning, no pretrained weights) is
trained on random 16 × 16 windows of the dataset's own detail crops (`PixelCache.take_detail`,
the image at its own resolution) to predict Gaussian noise of σ = 0.02 (5 grey levels)
added to them. It learns which fine structure is *picture* in this dataset (anti-aliased
outlines, hatching, smooth gradients: kept) and which is *noise* (removed). Applied to an
un-noised crop, the noise it predicts measures how much of the image looks like noise to a
model of the dataset's own style:

    learned_noise   mean magnitude (grey levels) of the predicted noise on the foreground

In a drawing set, a photograph's sensor noise and fine texture read as noise; in a photo set
the model learns that texture is picture and the drawings' flat regions give a low value, so
the statistic keeps its orientation (larger = more photo-like) and the combination in
`winnow.audit.style.domain` handles both directions.

Costs and limits, measured on the project benchmark (7,403 images, 2 cores): 3,200 steps
train in about 25 s and scoring takes about 7 s; it reaches AUROC 0.955 alone, but a
drawing saved as JPEG is flagged by it alone 3 in 10 times (ringing reads as noise). In
the median combination it is neutral-to-positive (see the ablation in
docs/benchmarks.md), so it is an opt-in setting (`out_of_domain_learned`), off by default.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from winnow.data.decode import foreground_mask

SIGMA = 0.02  # training noise, in [0, 1] units
WINDOW = 16  # training window side
STEPS = 3200
BATCH = 64
LR = 3e-3
WIDTH = 16
MAX_TRAIN_IMAGES = 20_000  # detail crops held in RAM for training (a sample when more)
_SCORE_BATCH = 256


class NoiseModel(nn.Module):
    """Four 3×3 convolutions; predicts the noise in a (n, 3, h, w) image in [0, 1]."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def _as_float(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255)


def fit_denoiser(
    crops: np.ndarray,
    steps: int = STEPS,
    seed: int = 0,
    sigma: float = SIGMA,
    window: int = WINDOW,
    batch: int = BATCH,
) -> NoiseModel:
    """Train a `NoiseModel` on (n, d, d, 3) uint8 detail crops (d ≥ window).

    Deterministic for a seed on CPU: the windows, the noise and the initialisation all come
    from seeded generators.
    """
    n, side = len(crops), crops.shape[1]
    if n == 0 or side < window:
        raise ValueError(f"need at least one crop of side ≥ {window}, got {crops.shape}")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = NoiseModel()
    images = _as_float(crops)
    optimizer = torch.optim.Adam(model.parameters(), LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LR, total_steps=max(steps, 2), pct_start=0.15
    )
    model.train()
    for _ in range(steps):
        chosen = torch.from_numpy(rng.choice(n, min(batch, n), replace=n < batch))
        top, left = rng.integers(0, side - window + 1, 2)
        clean = images[chosen, :, top : top + window, left : left + window]
        noise = sigma * torch.randn(clean.shape, generator=generator)
        loss = ((model(clean + noise) - noise) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def noise_level(
    model: NoiseModel, crops: np.ndarray, background: tuple[int, int, int]
) -> np.ndarray:
    """Mean magnitude (grey levels, 0–441) of the noise `model` predicts on each crop's
    foreground; 0 for a crop without foreground."""
    out = np.zeros(len(crops))
    for start in range(0, len(crops), _SCORE_BATCH):
        part = np.asarray(crops[start : start + _SCORE_BATCH])
        predicted = model(_as_float(part))
        magnitude = predicted.pow(2).sum(dim=1).sqrt().mul_(255).numpy()
        mask = foreground_mask(part, background)
        out[start : start + len(part)] = (magnitude * mask).sum(axis=(1, 2)) / np.maximum(
            mask.sum(axis=(1, 2)), 1
        )
    return out


def training_sample(n: int, seed: int = 0, limit: int = MAX_TRAIN_IMAGES) -> np.ndarray:
    """Sorted positions of at most `limit` of `n` items to train on."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
