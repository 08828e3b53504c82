"""Settings of `winnow audit`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class AuditConfig(BaseModel):
    """Settings of `winnow audit`.

    checks: names of the checks to run (None = all; see `winnow checks`).
    skip: names of checks not to run (e.g. `[label_issue]`, the one that trains models).
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
      use the noise it finds as one more statistic (`winnow.audit.style.denoiser`; about 25 s of
      training plus 1 ms per image on 2 cores). Off by default: see the ablation in
      docs/benchmarks.md.
    label_issue_folds: out-of-fold trainings of the label_issue check (each scores the
      fold it did not train on; fewer when the smallest judged class has fewer images).
    label_issue_minutes: the wall-clock budget of all of its trainings together.
    label_issue_max_epochs: the most epochs one fold trains (a small folder is done
      sooner than the budget).
    label_issue_seed: folds, initialisation and data order of those trainings.

    A check that declares its own settings model (`Check.settings`; plug-ins do) takes them
    under its name, e.g. `my_check: {threshold: 0.3}`; every such check's resolved settings
    are part of the config (and of the audit's saved config.yaml).
    """

    # extra keys are the sections of checks with their own settings (validated below);
    # any other key is refused, with a suggestion, by `winnow.config.build_config`
    model_config = ConfigDict(frozen=True, extra="allow")

    checks: list[str] | None = None
    skip: list[str] = []
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
    label_issue_folds: int = 3
    label_issue_minutes: float = 3.0
    label_issue_max_epochs: int = 20
    label_issue_seed: int = 0

    @classmethod
    def extra_keys(cls) -> list[str]:
        """The check names that take a settings section."""
        from winnow.audit.checks import available_checks

        return [name for name, check in available_checks().items() if check.settings]

    @model_validator(mode="before")
    @classmethod
    def _check_sections(cls, data: Any) -> Any:
        """Each key beyond the fields must be a check with settings; its value becomes
        that check's settings model (checks read it through `Check.settings_of`)."""
        if not isinstance(data, dict) or all(k in cls.model_fields for k in data):
            return data
        from winnow.audit.checks import available_checks

        checks = available_checks()
        data = dict(data)
        for key in [k for k in data if k not in cls.model_fields]:
            check = checks.get(key)
            if check is None or check.settings is None:
                raise ValueError(f"unknown key {key!r}")
            if not isinstance(data[key], check.settings):
                data[key] = check.settings.model_validate(data[key] or {})
        return data

    def with_check_defaults(self) -> AuditConfig:
        """This config with every settings-owning check's section filled in (defaults where
        not given): what an audit saves as the settings it ran with."""
        from winnow.audit.checks import available_checks

        sections = {
            name: check.settings_of(self)
            for name, check in available_checks().items()
            if check.settings is not None
        }
        return AuditConfig(**{**self.model_dump(include=set(type(self).model_fields)), **sections})

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

    @field_validator("label_issue_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"label_issue_folds must be at least 2, got {value}")
        return value

    @field_validator("label_issue_minutes")
    @classmethod
    def _positive_minutes(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator("neighbours", "tiny_side", "series_size", "label_issue_max_epochs")
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be positive, got {value}")
        return value
