"""Batch augmentation on the training device (kornia), and soft targets for mixed batches.

`shift`: horizontal flip, then a translation of up to SHIFT_PIXELS pixels (edge pixels
repeated), one offset per group of SHIFT_GROUPS images: cheap enough to cost ~nothing
beside the model on a CPU.
`basic`: horizontal flip, random resized crop, brightness/contrast/saturation jitter.
`mix`: `basic`, then on a share of batches either CutMix or MixUp (kornia's V2 modules);
`shift_mix`: `shift`, then the same mixing. Mixed targets become
(1 - w) · onehot(y) + w · onehot(y_perm), w being the other image's share, and label
smoothing is applied on top.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from winnow.training.config import UNMIXED, TrainConfig

SHIFT_PIXELS = 4
SHIFT_GROUPS = 16


def flip_and_shift(images: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips, then a random translation per group of images."""
    flip = torch.rand(len(images), device=images.device) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(3), images)
    pad = SHIFT_PIXELS
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    height, width = images.shape[2:]
    out = torch.empty_like(images)
    offsets = torch.randint(0, 2 * pad + 1, (SHIFT_GROUPS, 2)).tolist()
    groups = torch.arange(len(images)).chunk(SHIFT_GROUPS)
    for (dy, dx), chunk in zip(offsets, groups, strict=False):
        out[chunk] = padded[chunk, :, dy : dy + height, dx : dx + width]
    return out


class BatchAugment(nn.Module):
    def __init__(self, config: TrainConfig, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.smoothing = config.label_smoothing
        self.mode = config.augment
        self.mix_prob = config.mix_prob
        size = config.image_size
        self.basic = nn.Sequential(
            K.RandomHorizontalFlip(),
            K.RandomResizedCrop((size, size), scale=(config.crop_scale_min, 1.0)),
            K.ColorJitter(
                brightness=config.color_jitter,
                contrast=config.color_jitter,
                saturation=config.color_jitter,
                p=0.8,
            ),
        )
        self.cutmix = K.RandomCutMixV2(
            p=1.0, beta=config.cutmix_alpha, data_keys=["input", "class"], use_correct_lambda=True
        )
        self.mixup = K.RandomMixUpV2(
            p=1.0, lambda_val=(0.0, config.mixup_max), data_keys=["input", "class"]
        )

    def soft_targets(self, targets: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(targets, self.n_classes).float()
        return self.smooth(onehot)

    def smooth(self, distribution: torch.Tensor) -> torch.Tensor:
        return distribution * (1 - self.smoothing) + self.smoothing / self.n_classes

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images in [0, 1] float; returns augmented images and soft targets."""
        if self.mode == "none":
            return images, self.soft_targets(targets)
        if UNMIXED.get(self.mode, self.mode) == "shift":
            images = flip_and_shift(images)
        else:
            images = self.basic(images).clamp_(0, 1)
        if self.mode not in UNMIXED or torch.rand(()) >= self.mix_prob:
            return images, self.soft_targets(targets)
        return self.mix(images, targets)

    def mix(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CutMix or MixUp (a coin flip) of the batch with a permutation of itself."""
        labels = targets.float()
        if torch.rand(()) < 0.5:
            images, mixed = self.cutmix(images, labels)
            mixed = mixed[0]  # one mix: (B, 3) = (label, permuted label, 1 - pasted area)
            other_share = 1 - mixed[:, 2]
        else:
            images, mixed = self.mixup(images, labels)
            other_share = mixed[:, 2]  # MixUp's lambda is the permuted image's weight
        own = nn.functional.one_hot(mixed[:, 0].long(), self.n_classes).float()
        other = nn.functional.one_hot(mixed[:, 1].long(), self.n_classes).float()
        share = other_share[:, None].to(own.dtype)
        return images, self.smooth(own * (1 - share) + other * share)
