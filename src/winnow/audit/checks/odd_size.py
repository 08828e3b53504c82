"""odd_size: tiny images and extreme aspect ratios (banners, slivers)."""

from __future__ import annotations

import numpy as np

from winnow.audit.checks.base import AuditContext, Check, CheckResult, empty_columns, ok_rows


def run(context: AuditContext) -> CheckResult:
    settings = context.settings
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


CHECK = Check(
    name="odd_size",
    description="Images smaller than tiny_side pixels or with aspect ratio above max_aspect.",
    needs=("status", "width", "height"),
    run=run,
)
