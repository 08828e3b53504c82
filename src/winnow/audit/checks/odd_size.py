"""odd_size: tiny images and extreme aspect ratios (banners, slivers)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

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
from winnow.audit.config import Positive, PositiveInt
from winnow.audit.sections import MAX_STRIP, figures, marked, more


class OddSizeSettings(BaseModel):
    """tiny_side: an image whose shorter side is under this many pixels is flagged.
    max_aspect: an image whose longer side is more than this many times its shorter one
    is flagged (banners, slivers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    legacy_keys: ClassVar[dict[str, str]] = {"tiny_side": "tiny_side", "max_aspect": "max_aspect"}

    tiny_side: PositiveInt = 32
    max_aspect: Positive = 5.0


def run(context: AuditContext) -> CheckResult:
    settings = CHECK.settings_of(context.settings)
    columns = empty_columns(CHECK, context.frame)
    ok = ok_rows(context.frame)
    width = ok["width"].to_numpy(dtype=float)
    height = ok["height"].to_numpy(dtype=float)
    smallest = np.minimum(width, height)
    aspect = np.maximum(width, height) / np.maximum(smallest, 1)
    tiny = np.clip(smallest / settings.tiny_side, 0, 1)
    stretched = np.clip(settings.max_aspect / aspect, 0, 1)
    score = np.minimum(tiny, stretched)
    columns.loc[ok.index, CHECK.score_column] = score
    columns.loc[ok.index, CHECK.issue_column] = score < 1.0
    return CheckResult(
        columns=columns,
        summary={
            "tiny": int((tiny < 1).sum()),
            "extreme_aspect": int((stretched < 1).sum()),
            "tiny_side": settings.tiny_side,
            "max_aspect": settings.max_aspect,
        },
    )


def report_data(inputs: ReportInputs) -> dict:
    """The odd sizes, most extreme first, with their width × height."""
    frame = inputs.frame
    if CHECK.issue_column not in frame:
        return {"missing": True}
    odd = frame[frame[CHECK.issue_column] == True].sort_values(CHECK.score_column)  # noqa: E712
    shown = odd.head(MAX_STRIP)
    return {
        "figures": figures(
            inputs.thumbs, [(r.path, f"{r.width}×{r.height}") for r in shown.itertuples()]
        ),
        "more_note": more(len(odd) - MAX_STRIP, marked(CHECK.issue_column)),
    }


def details(numbers: dict) -> str:
    return (
        f"{numbers['tiny']} with a side under {numbers['tiny_side']} px, "
        f"{numbers['extreme_aspect']} with one side over {numbers['max_aspect']:g}× the other."
    )


CHECK = Check(
    name="odd_size",
    description="Images smaller than tiny_side pixels or with aspect ratio above max_aspect.",
    needs=("status", "width", "height"),
    run=run,
    settings=OddSizeSettings,
    details=details,
    title="Odd sizes",
    # tiny or extreme images are often fine drawings: flagged, kept unless the policy says
    clean_rules=(CleanRule("odd_sizes", "keep", "odd_size"),),
    report=ReportSection("Odd sizes", report_data, "checks/odd_size.html"),
)
