"""Validated, frozen configuration objects and the YAML loader shared by every stage.

Every CLI flag maps to a key of one of these models; a run saves its resolved config
next to its results so it can be reproduced from that file alone.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from winnow.errors import WinnowError

M = TypeVar("M", bound=BaseModel)


class ConfigError(WinnowError, ValueError):
    """A configuration value or key a user gave is not valid; the message says the fix."""


class ScanConfig(BaseModel):
    """Settings of `winnow scan`.

    image_size: side of the square pixel-cache images (aspect kept, letterboxed).
    detail_size: side of the detail crop cached beside each image: a window of the image at
        its own resolution (no resizing), where it has the most foreground. Fine texture
        and sensor noise that resizing to `image_size` averages away survive in it.
    background: colour under transparent pixels and in the letterbox bars (any Pillow colour).
    workers: decode processes; None = all cores.
    max_pixels: images with more pixels than this are refused as `oversized` (bomb guard).
    decode_memory_mb: largest in-memory decode; bigger images are streamed by libvips.
    shard_mb: target size of one pixel-cache shard file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: int = 128
    detail_size: int = 64
    background: str = "white"
    workers: int | None = None
    max_pixels: int = 1_000_000_000
    decode_memory_mb: int = 256
    shard_mb: int = 64

    @field_validator("image_size")
    @classmethod
    def _size_range(cls, value: int) -> int:
        if not 16 <= value <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024, got {value}")
        return value

    @field_validator("detail_size")
    @classmethod
    def _detail_range(cls, value: int) -> int:
        if not 16 <= value <= 512 or value % 4:
            raise ValueError(f"detail_size must be a multiple of 4 from 16 to 512, got {value}")
        return value

    @field_validator("background")
    @classmethod
    def _known_colour(cls, value: str) -> str:
        from PIL import ImageColor

        try:
            ImageColor.getrgb(value)
        except ValueError:
            raise ValueError(
                f"background {value!r} is not a colour Pillow knows; "
                "use a name ('white') or hex ('#ffffff')"
            ) from None
        return value

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"workers must be at least 1, got {value}")
        return value

    @field_validator("max_pixels", "decode_memory_mb", "shard_mb")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be positive, got {value}")
        return value

    @classmethod
    def matching(
        cls, image_size: int, background: tuple[int, int, int], workers: int | None = None
    ) -> ScanConfig:
        """Settings that decode exactly like an existing cache or checkpoint."""
        return cls(
            image_size=image_size,
            background="#{:02x}{:02x}{:02x}".format(*background),
            workers=workers,
        )

    def background_rgb(self) -> tuple[int, int, int]:
        from PIL import ImageColor

        return ImageColor.getrgb(self.background)[:3]

    def pixel_settings(self) -> dict[str, Any]:
        """What decides cached pixels and rows: a cache made with other values isn't reused."""
        from winnow.decode import DECODER_VERSION

        return {
            "image_size": self.image_size,
            "detail_size": self.detail_size,
            "background": self.background_rgb(),
            "decoder_version": DECODER_VERSION,
        }


def unknown_name(kind: str, name: str, available: list[str]) -> str:
    """`Unknown model 'resnet7'. Did you mean 'resnet34'? Available: … See 'winnow models'.`"""
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"Unknown {kind} {name!r}.{hint} Available: {', '.join(available)}. See 'winnow {kind}s'."
    )


def _explain_unknown_keys(model: type[BaseModel], data: dict[str, Any]) -> None:
    known = list(model.model_fields)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown {model.__name__} key {key!r}{hint} Valid keys: {', '.join(known)}."
            )


def build_config(model: type[M], data: dict[str, Any]) -> M:
    """Validate `data` into `model`, turning pydantic's errors into one readable sentence."""
    _explain_unknown_keys(model, data)
    try:
        return model(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid {model.__name__}: {problems}") from None


def load_config(model: type[M], path: Path | None, overrides: dict[str, Any]) -> M:
    """Read a YAML file (optional) and apply CLI overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"Cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return build_config(model, data)


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=True, allow_unicode=True)


class AuditConfig(BaseModel):
    """Settings of `winnow audit`.

    checks: names of the checks to run (None = all; see `winnow checks`).
    neighbours: candidates per image and descriptor in the near-duplicate search.
    min_correlation: aligned luminance correlation a near-duplicate pair must reach.
    min_detail: aligned correlation of fine detail (edges) a pair must reach.
    max_chroma_distance: largest colour difference of a pair (90th percentile over pixels,
      0–510): the change of hue, weighted by how colourful the pixel is, plus half the change
      of colourfulness; a brightness shift that clips a channel moves neither much.
    max_greyed_area: largest fraction of pixels that may be a mid grey in one picture of a
      pair and coloured in the other (a grey and a colour version of one icon); a brightness
      shift keeps grey pixels grey, and clipping only greys colours at white or black.
    max_changed_area: largest fraction of pixels that may differ after aligning a pair
      (added strokes, marks, another frame or text make two look-alike drawings different
      pictures); a pixel differs when it is more than 40 grey levels from every pixel within
      one pixel's reach of it in the other picture. Measured at 64 px.
    max_changed_area_full: the same limit when a verified pair is compared again at the
      cache's full 128 px, where thin frames, corner ornaments and small marks show up
      (a playing card of another deck, a smiley with another mouth).
    max_same_size_change: a verified pair of two files with the same width and height (and
      decoded the same way) is compared again pixel for pixel, with no alignment and no
      blur: no resize lies between them to forgive. It is dropped when more than this share
      of its ink (pixels away from each picture's dominant colour) differs by more than 40
      grey levels after the best brightness/contrast map (two spirograph stars one point
      apart, a club and a spade, a pen of another width).
    series_size: pictures linked by verified pairs form clusters; copies of one picture
      make a small one, a series of genuinely similar drawings (a thousand spirograph
      stars) a large one. In a cluster of more than series_size pictures a pair is
      reported only if it is one picture's best match by more than series_margin (detail
      correlation less ink difference / 100, compared again at the cache's full 128 px).
    tiny_side, max_aspect: limits of the odd_size check.
    blank_max_ink, blank_tolerance: the blank check flags an image when at most
      blank_max_ink of its pixels differ from its dominant colour by more than
      blank_tolerance grey levels (in the whole view and in the detail crop).
    dominant_style: the style of the dataset (`auto` detects it); out_of_domain flags the other.
    out_of_domain_sure: out-of-domain probability from which a flag is sure (dropped by
      `clean`); flags below it are borderline (sent to review).
    out_of_domain_learned: also train a small denoiser on the dataset's own detail crops and
      use the noise it finds as one more statistic (`winnow.denoiser`; about 25 s of training
      plus 1 ms per image on 2 cores). Off by default: see the ablation in docs/benchmarks.md.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    checks: list[str] | None = None
    neighbours: int = 8
    min_correlation: float = 0.90
    min_detail: float = 0.90
    max_chroma_distance: float = 50.0
    max_greyed_area: float = 0.02
    max_changed_area: float = 0.002
    max_changed_area_full: float = 0.01
    max_same_size_change: float = 0.01
    series_size: int = 32
    series_margin: float = 0.01
    tiny_side: int = 32
    max_aspect: float = 5.0
    blank_max_ink: float = 0.001
    blank_tolerance: float = 16.0
    dominant_style: Literal["auto", "drawing", "photo"] = "auto"
    out_of_domain_sure: float = 0.8
    out_of_domain_learned: bool = False

    @field_validator("out_of_domain_sure")
    @classmethod
    def _probability(cls, value: float) -> float:
        if not 0.5 <= value <= 1:
            raise ValueError(f"out_of_domain_sure must be in [0.5, 1], got {value}")
        return value

    @field_validator("series_margin")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"series_margin must be ≥ 0, got {value}")
        return value

    @field_validator("blank_tolerance")
    @classmethod
    def _grey_levels(cls, value: float) -> float:
        if not 0 <= value < 255:
            raise ValueError(f"must be grey levels in [0, 255), got {value}")
        return value

    @field_validator(
        "max_changed_area",
        "max_changed_area_full",
        "max_same_size_change",
        "max_greyed_area",
        "blank_max_ink",
    )
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"must be a fraction in [0, 1], got {value}")
        return value

    @field_validator("min_correlation")
    @classmethod
    def _correlation_range(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"min_correlation must be in (0, 1], got {value}")
        return value

    @field_validator("neighbours", "tiny_side", "series_size")
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be positive, got {value}")
        return value


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
