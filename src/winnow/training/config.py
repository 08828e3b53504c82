"""Settings of `winnow train`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator


class TrainConfig(BaseModel):
    """Settings of `winnow train` (saved, resolved, as RUN/train/NAME/config.yaml).

    model, model_params: a registered model and its parameters (see `winnow models`).
    image_size: training side in pixels; the pixel cache is resized to it once, in RAM.
    batch_size, lr, weight_decay: AdamW with a one-cycle schedule over the whole run.
    warmup_fraction: share of the steps spent raising the learning rate.
    max_minutes: training budget; the step count (and so the schedule) is fitted to it by
      timing a few real steps first. max_steps / max_epochs, when set, replace the budget.
    imbalance: none | class_weighted | weighted_sampler | sqrt_sampler | undersample | focal
      (see `winnow models --strategies`); focal_gamma for `focal`.
    augment: none | basic (flip, resized crop, colour jitter) | mix (basic + CutMix/MixUp).
    crop_scale_min, color_jitter: resized-crop area and brightness/contrast/saturation range.
    mixup_max: MixUp weight drawn uniformly in [0, mixup_max]; cutmix_alpha: CutMix Beta(a, a).
    mix_prob: share of batches mixed (CutMix or MixUp, a coin flip each).
    label_smoothing: applied to every target, mixed or not.
    cleaning: train on the rows `clean` kept (True) or on every readable training row,
      duplicates and out-of-domain files included (False; for measuring what cleaning pays).
    seed: data order, augmentation and initialisation; same seed on CPU = same metrics.
    precision / accelerator / devices: Lightning's; `auto` uses bf16 on a GPU that has it.
    channels_last: channels-last memory format (`auto` = on: 18–107 % faster training on
      CPU for every registered model, and the fast path for GPU convolutions).
    early_stopping_patience: epochs without a better validation macro-F1 before stopping.
    checkpoint_minutes: how often `last.ckpt` is written inside an epoch (for --resume).
    threads: torch intra-op threads on CPU (None = all cores).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "simple_cnn"  # the grid winner at a 10-minute CPU budget (docs/benchmarks.md)
    model_params: dict[str, Any] = {}
    image_size: int = 64
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.25
    max_minutes: float = 10.0
    max_steps: int | None = None
    max_epochs: int | None = None
    imbalance: str = "weighted_sampler"
    focal_gamma: float = 2.0
    augment: Literal["none", "basic", "mix"] = "basic"
    crop_scale_min: float = 0.6
    color_jitter: float = 0.2
    mixup_max: float = 0.4
    cutmix_alpha: float = 1.0
    mix_prob: float = 0.5
    label_smoothing: float = 0.1
    cleaning: bool = True
    seed: int = 0
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    early_stopping_patience: int | None = None
    checkpoint_minutes: float = 1.0
    threads: int | None = None

    @field_validator("image_size")
    @classmethod
    def _train_size(cls, value: int) -> int:
        if not 16 <= value <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024, got {value}")
        return value

    @field_validator("batch_size", "max_steps", "max_epochs", "threads")
    @classmethod
    def _positive_count(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("lr", "max_minutes", "checkpoint_minutes")
    @classmethod
    def _positive_float(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator(
        "warmup_fraction", "mix_prob", "label_smoothing", "crop_scale_min", "mixup_max"
    )
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"must be in [0, 1], got {value}")
        return value

    @property
    def uses_channels_last(self) -> bool:
        """`auto` means on: channels-last was faster for every registered model on CPU."""
        return self.channels_last != "off"

    @field_validator("imbalance")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        from winnow.training.imbalance import STRATEGIES

        if value not in STRATEGIES:
            raise ValueError(
                f"unknown imbalance strategy {value!r}; available: {', '.join(STRATEGIES)}"
            )
        return value
