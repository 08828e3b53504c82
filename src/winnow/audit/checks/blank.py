"""blank: images with (nearly) nothing drawn on them — one colour edge to edge.

Crawled clipart holds renders that failed (a gradient or a filter the converter did not
support comes out as an empty white page), transparent PNGs with nothing on them and
single-colour swatches. They carry no information about their class, and because they are
all alike they form the largest duplicate group of a dataset and land in every class.

An image's *ink* is the fraction of its pixels that differ from its dominant colour (the
per-channel median) by more than `tolerance` grey levels in some channel. It is
measured on both views the pixel cache holds, without their letterbox bars: the whole
image resized to the cache size, and the detail crop at the image's own resolution where
it has the most foreground (so a small mark on a large page, which shrinks below one pixel
in the first view, still counts). An image is blank when both views have at most
`max_ink` ink (the settings are the audit config's `blank` section).

Extra columns:
    blank_ink     the larger ink fraction of the two views (0 = one colour)
    blank_colour  the dominant colour as #rrggbb
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from winnow.audit.checks.base import (
    AuditContext,
    Check,
    CheckResult,
    CleanRule,
    ReportInputs,
    ReportSection,
    empty_columns,
    ok_rows,
)
from winnow.audit.config import Fraction
from winnow.audit.neardup.resample import image_region
from winnow.audit.neardup.same_size import distance_from_dominant
from winnow.audit.sections import MAX_STRIP, count, figures, marked, more
from winnow.data.decode import detail_region
from winnow.data.manifest import cache_positions

_CHUNK = 1024
SCORE_SPAN = 10  # the score reaches 1 at this many times max_ink


class BlankSettings(BaseModel):
    """max_ink: the largest share of pixels that may differ from the dominant colour.
    tolerance: grey levels (in some channel) beyond which a pixel differs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    legacy_keys: ClassVar[dict[str, str]] = {
        "blank_max_ink": "max_ink",
        "blank_tolerance": "tolerance",
    }

    max_ink: Fraction = 0.001
    tolerance: float = 16.0

    @field_validator("tolerance")
    @classmethod
    def _grey_levels(cls, value: float) -> float:
        if not 0 <= value < 255:
            raise ValueError(f"must be grey levels in [0, 255), got {value:g}")
        return value


def ink(region: np.ndarray, tolerance: float) -> tuple[float, np.ndarray]:
    """(ink fraction, dominant colour) of one (h, w, 3) uint8 picture."""
    distance, dominant = distance_from_dominant(region)
    return float((distance > tolerance).mean()), dominant.astype(np.int16)


def _ink_chunk(chunk: tuple[np.ndarray, ...], shared: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The ink of one chunk of rows (an engine task): the larger of the whole view's and the
    detail crop's, and the whole view's dominant colour; cache positions and sizes in."""
    (shard, index, sizes), (cache, tolerance) = chunk, shared
    amount = np.zeros(len(index))
    colour = np.zeros((len(index), 3), np.int16)
    views, details = cache.take(shard, index), cache.take_detail(shard, index)
    for i, (view, detail, (width, height)) in enumerate(zip(views, details, sizes, strict=True)):
        # only the picture counts: the letterbox bars are background, not ink
        whole, colour[i] = ink(image_region(view, int(width), int(height)), tolerance)
        part, _ = ink(detail_region(detail, int(width), int(height)), tolerance)
        amount[i] = max(whole, part)
    return amount, colour


def run(context: AuditContext) -> CheckResult:
    settings = CHECK.settings_of(context.settings)
    columns = empty_columns(CHECK, context.frame)
    columns["blank_ink"] = np.nan
    columns["blank_colour"] = pd.Series(None, index=columns.index, dtype=object)
    rows = ok_rows(context.frame)
    rows = rows[rows["cache_shard"].notna()]
    shard, index = cache_positions(rows)
    sizes = rows[["width", "height"]].to_numpy(dtype=np.int64)
    spans = [slice(start, start + _CHUNK) for start in range(0, len(rows), _CHUNK)]
    chunks = ((shard[span], index[span], sizes[span]) for span in spans)
    parts = list(context.engine.map(_ink_chunk, chunks, (context.cache, settings.tolerance)))
    amount = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    colour = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 3), np.int16)
    blank = amount <= settings.max_ink
    span = SCORE_SPAN * max(settings.max_ink, 1e-6)
    columns.loc[rows.index, CHECK.score_column] = np.clip(amount / span, 0, 1)
    columns.loc[rows.index, CHECK.issue_column] = blank
    columns[CHECK.issue_column] = columns[CHECK.issue_column].astype(bool)
    columns.loc[rows.index, "blank_ink"] = amount
    columns.loc[rows.index, "blank_colour"] = [
        "#{:02x}{:02x}{:02x}".format(*c) for c in colour.tolist()
    ]
    flagged = rows[blank]
    return CheckResult(
        columns=columns,
        summary={
            "blank": int(blank.sum()),
            "classes_with_blank": flagged["label"].astype(str).value_counts().to_dict(),
            "max_ink": settings.max_ink,
            "tolerance": settings.tolerance,
        },
    )


def report_data(inputs: ReportInputs) -> dict:
    """The blank images, least ink first, with their colour and ink, counted per class."""
    frame = inputs.frame
    if CHECK.issue_column not in frame:
        return {"missing": True}
    blank = frame[frame[CHECK.issue_column] == True]  # noqa: E712
    if blank.empty:
        return {"count": 0}
    per_class = blank["label"].astype(str).value_counts()
    shown = blank.sort_values(["blank_ink", "path"]).head(MAX_STRIP)
    transparent = blank.get("has_alpha", pd.Series(False, index=blank.index))
    transparent = transparent.fillna(False).astype(bool)
    items = [
        (
            r.path,
            f"{r.blank_colour}{' · transparent' if clear else ''} · ink {100 * r.blank_ink:.2f} %",
        )
        for r, clear in zip(shown.itertuples(), transparent[shown.index], strict=True)
    ]
    return {
        "count": len(blank),
        "per_class": ", ".join(f"{k} {v}" for k, v in per_class.items()),
        "transparent": int(transparent.sum()),
        "figures": figures(inputs.thumbs, items),
        "more_note": more(len(blank) - len(shown), marked(CHECK.issue_column)),
    }


def details(numbers: dict) -> str:
    return (
        f"{count(numbers['blank'], 'image')} with at most {100 * numbers['max_ink']:g} % of "
        f"the pixels more than {numbers['tolerance']:g} grey levels from the dominant colour."
    )


CHECK = Check(
    name="blank",
    description=(
        "Images of one colour with nothing drawn (failed renders, empty transparent PNGs): "
        "at most max_ink of the pixels differ from the dominant colour."
    ),
    needs=("status", "width", "height", "cache_shard", "cache_index", "label"),
    run=run,
    settings=BlankSettings,
    details=details,
    title="Blank",
    clean_rules=(CleanRule("blank", "drop", "blank"),),  # nothing a model can learn
    report=ReportSection("Blank images", report_data, "checks/blank.html"),
    extra_columns=("blank_ink", "blank_colour"),
)
