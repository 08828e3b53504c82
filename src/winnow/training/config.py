"""Settings of `winnow train`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

# the augmentation modes that mix batches (CutMix/MixUp), each with the mode it is without
# the mixing (what a plan too short for mixing trains with instead)
UNMIXED = {"mix": "basic", "shift_mix": "shift"}


class TrainConfig(BaseModel):
    """Settings of `winnow train` (saved, resolved, as RUN/train/NAME/config.yaml).

    model, model_params: a registered model and its parameters (see `winnow models`).
    image_size: training side in pixels; the pixel cache is resized to it once, in RAM.
      `auto`: 64 on a CPU; on a GPU the largest of 64, 96, 128 (up to the cache's side)
      that still trains 120 epochs in the budget, measured before the run
      (training.sizing).
    batch_size: `auto`: 128 on a CPU; on a GPU the smallest batch within 90 % of the best
      measured images a second, with `lr` scaled by √(batch / 128) (training.sizing).
    lr, weight_decay: AdamW with a one-cycle schedule over the whole run; `lr` is stated
      for batch 128.
    decay: which parameters weight decay shrinks: `all` (every parameter, batch-norm
      scales included, as a plain `AdamW(model.parameters())` does; the default) or
      `weights` (convolution and linear weights; norms and biases are left alone).
    init: `torch` (PyTorch's default initialisation of every layer, `reset_parameters`;
      the default) or `model` (the model family's own: Kaiming-normal convolutions).
    warmup_fraction: share of the run spent raising the learning rate.
    max_minutes: training budget. A few real steps are timed to plan the step count; the
      schedule then follows whichever is further along, steps or elapsed budget, so a run
      on a machine that slows down still anneals to zero and stops by the deadline.
      max_steps / max_epochs, when set, replace the budget (and the run is step-exact).
    imbalance: a strategy of `winnow models --strategies`; focal_gamma for `focal`,
      logit_tau for `logit_adjusted`.
    augment: none | shift (flip, 4-px translation) | basic (flip, resized crop, colour
      jitter) | mix (basic + CutMix/MixUp) | shift_mix (shift + CutMix/MixUp). The mixing
      modes are switched to their unmixed one when the plan has fewer than MIX_MIN_EPOCHS
      epochs: mixing needs long schedules to pay.
    ema_decay: exponential moving average of the weights (0 = off); validation, best.ckpt
      and inference use the averaged weights.
    tta: none | flip: test-time augmentation declared in the checkpoint; evaluate, predict,
      explain's scores and the ONNX export all average the logits of the image and its
      mirror image.
    progressive_min_size: train the first `progressive_fraction` of the run at sizes growing
      from this side to image_size (None = always image_size).
    select: final (the weights at the end of the annealed schedule) | best_macro_f1 (the
      epoch with the best validation macro-F1; noisy when validation classes are small).
    calibrate: fit a softmax temperature on the validation split (stored in the checkpoint).
    crop_scale_min, color_jitter: resized-crop area and brightness/contrast/saturation range.
    mixup_max: MixUp weight drawn uniformly in [0, mixup_max]; cutmix_alpha: CutMix Beta(a, a).
    mix_prob: share of batches mixed (CutMix or MixUp, a coin flip each).
    label_smoothing: applied to every target, mixed or not.
    cleaning: train on the rows `clean` kept (True) or on every readable training row,
      duplicates and out-of-domain files included (False; for measuring what cleaning pays).
    seed: data order, augmentation and initialisation; same seed on CPU = same metrics.
    precision / accelerator / devices: Lightning's; `auto` uses bf16 mixed precision on a GPU
      that has it and on a CPU with bf16 matrix units (Intel AMX: twice the training steps
      a second), fp32 on other CPUs (`trainer.resolved_precision`).
    num_nodes: machines the run spans (Lightning's `num_nodes`; `devices` processes on each),
      started by the cluster's launcher (torchrun, SLURM), which sets the ranks.
    channels_last: channels-last memory format (`auto` = on: 18–107 % faster training on
      CPU for every registered model, and the fast path for GPU convolutions).
    compile: torch.compile the training step's network: `on`, `off`, or `auto` (on for a
      GPU; off on a CPU, where a 10-minute run trained 9 % more images a second with it but
      scored inside the seed spread, and a machine's first compile takes about 26 s). The
      planner compiles and times it first, inside the budget; a network that fails to
      compile trains as it is under `auto` (plan.json says why) and stops the run under `on`.
    early_stopping_patience: epochs without a better validation macro-F1 before stopping.
    checkpoint_minutes: how often `last.ckpt` is written inside an epoch (for --resume).
    threads: torch intra-op threads on CPU (None = all cores).
    logger: none | csv | tensorboard: Lightning's logger of the step loss, validation
      macro-F1 and accuracy, beside the run's own metrics.csv (csv: RUN/train/NAME/logs/,
      tensorboard: RUN/train/NAME/tensorboard/; needs the tensorboard package).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "fastnet"  # the winner at a 10-minute CPU budget (docs/benchmarks.md)
    model_params: dict[str, Any] = {}
    image_size: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    lr: float = 3e-3
    weight_decay: float = 0.05
    decay: Literal["weights", "all"] = "all"
    init: Literal["model", "torch"] = "torch"
    warmup_fraction: float = 0.25
    max_minutes: float = 10.0
    max_steps: int | None = None
    max_epochs: int | None = None
    imbalance: str = "sqrt_sampler"
    focal_gamma: float = 2.0
    logit_tau: float = 1.0
    augment: Literal["none", "shift", "basic", "mix", "shift_mix"] = "shift"
    ema_decay: float = 0.0
    tta: Literal["none", "flip"] = "flip"
    progressive_min_size: int | None = None
    progressive_fraction: float = 0.5
    select: Literal["final", "best_macro_f1"] = "final"
    calibrate: bool = True
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
    num_nodes: int = 1
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    early_stopping_patience: int | None = None
    checkpoint_minutes: float = 1.0
    threads: int | None = None
    logger: Literal["none", "csv", "tensorboard"] = "none"

    @field_validator("image_size")
    @classmethod
    def _train_size(cls, value: int | str) -> int | str:
        if value != "auto" and not 16 <= value <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024, got {value}")
        return value

    @field_validator("batch_size", "max_steps", "max_epochs", "threads", "num_nodes")
    @classmethod
    def _positive_count(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("lr", "max_minutes", "checkpoint_minutes")
    @classmethod
    def _positive_float(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator(
        "warmup_fraction",
        "mix_prob",
        "label_smoothing",
        "crop_scale_min",
        "mixup_max",
        "progressive_fraction",
    )
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"must be in [0, 1], got {value}")
        return value

    @field_validator("ema_decay")
    @classmethod
    def _decay(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError(f"must be in [0, 1), got {value}")
        return value

    @field_validator("progressive_min_size")
    @classmethod
    def _progressive_size(cls, value: int | None) -> int | None:
        if value is not None and value < 16:
            raise ValueError(f"must be at least 16, got {value}")
        return value

    def uses_compile(self, device: str) -> bool:
        """`auto` means on for a GPU only (see the class docstring)."""
        return self.compile == "on" or (self.compile == "auto" and device == "cuda")

    @field_validator("channels_last", "compile", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """YAML reads an unquoted `on` / `off` as true / false: take them as meant."""
        if isinstance(value, bool):
            return "on" if value else "off"
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
