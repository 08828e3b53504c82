"""label_issue: images whose class folder a classifier that never saw them contradicts.

Out-of-fold probabilities (`winnow.training.crossval`: `folds` short from-scratch
trainings with `winnow train`'s recipe on fastnet's faster plain strided stack, folds
stratified and group-aware so duplicates share one, `minutes` in all; the audit config's
`label_issue` section) judged by confident learning (`winnow.audit.confident`). This
finds a mislabelled picture whether or not a copy of it sits in the right class, which is
all the duplicate checks can see. Extra columns:
    suggested_label   the class the issue most likely belongs to (empty when no issue)
The table `label_issue_probabilities` holds every judged row's out-of-fold probabilities
(one column per class), for `winnow review` and for anyone's own analysis.

Rows not judged (score 1, no flag): unreadable or unlabelled files, and every row of a
class with fewer than `MIN_CLASS_ITEMS` readable images (too few to learn what the class
looks like in the other folds).
"""

from __future__ import annotations

import time
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
from winnow.audit.confident import find_label_issues
from winnow.audit.config import Positive, PositiveInt
from winnow.audit.sections import count, figures, marked, more, unavailable

MAX_SHOWN = 48  # flagged images shown in the report, least self-confident first
MIN_ITEMS = 30  # below this no fold model learns anything worth trusting
MIN_CLASS_ITEMS = 6


class LabelIssueSettings(BaseModel):
    """folds: out-of-fold trainings (each scores the fold it did not train on; fewer when
      the smallest judged class has fewer images).
    minutes: the wall-clock budget of all of its trainings together.
    max_epochs: the most epochs one fold trains (a small folder is done sooner).
    seed: folds, initialisation and data order of those trainings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    legacy_keys: ClassVar[dict[str, str]] = {
        "label_issue_folds": "folds",
        "label_issue_minutes": "minutes",
        "label_issue_max_epochs": "max_epochs",
        "label_issue_seed": "seed",
    }

    folds: int = 3
    minutes: Positive = 3.0
    max_epochs: PositiveInt = 20
    seed: int = 0

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"folds must be at least 2, got {value}")
        return value


def run(context: AuditContext) -> CheckResult:
    started = time.perf_counter()
    settings = CHECK.settings_of(context.settings)
    columns = empty_columns(CHECK, context.frame)
    columns["suggested_label"] = pd.Series(None, index=columns.index, dtype=object)
    rows = ok_rows(context.frame)
    rows = rows[rows["cache_shard"].notna() & rows["label"].notna()]
    sizes = rows["label"].value_counts()
    judged_classes = sorted(sizes[sizes >= MIN_CLASS_ITEMS].index)
    small = sorted(sizes[sizes < MIN_CLASS_ITEMS].index)
    rows = rows[rows["label"].isin(judged_classes)]
    if len(rows) < MIN_ITEMS or len(judged_classes) < 2:
        return CheckResult(
            columns=columns,
            summary={
                "skipped": f"needs {MIN_ITEMS} readable images in 2 classes of at least "
                f"{MIN_CLASS_ITEMS} (found {len(rows)} in {len(judged_classes)})"
            },
        )
    from winnow.training.config import TrainConfig
    from winnow.training.crossval import assign_folds, out_of_fold
    from winnow.training.data import load_pixels

    classes = judged_classes
    targets = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    groups = _groups(rows)
    folds = min(settings.folds, int(sizes[judged_classes].min()))
    fold_of = assign_folds(targets, groups, max(2, folds), settings.seed)
    # the fold models use fastnet's plain strided stack, ~2.5× faster than the default
    # network: more epochs in the check's few minutes (its benchmark measured this recipe)
    train = TrainConfig(
        model="fastnet",
        model_params={"residual_down": False},
        image_size=64,
        batch_size=128,
        init="model",
        decay="weights",
        seed=settings.seed,
        calibrate=False,
    )
    images = load_pixels(context.cache, rows, train.image_size)
    load_seconds = time.perf_counter() - started
    n_folds = int(fold_of.max()) + 1
    per_fold = max(1.0, (settings.minutes * 60 - load_seconds) / n_folds)
    probabilities, reports = out_of_fold(
        images,
        targets,
        len(classes),
        fold_of,
        per_fold,
        train,
        settings.max_epochs,
        context.on_progress,
    )
    found = find_label_issues(targets, probabilities)

    columns.loc[rows.index, CHECK.score_column] = found.self_confidence
    columns.loc[rows.index, CHECK.issue_column] = found.issues
    suggested = np.array(classes, dtype=object)[found.suggested.clip(0)]
    columns.loc[rows.index[found.issues], "suggested_label"] = suggested[found.issues]
    columns[CHECK.issue_column] = columns[CHECK.issue_column].astype(bool)

    table = pd.DataFrame(
        {
            "path": rows["path"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "fold": fold_of,
            **{f"p_{name}": probabilities[:, i] for i, name in enumerate(classes)},
        }
    )
    accuracy = float((probabilities.argmax(1) == targets).mean())
    summary = {
        "method": "confident learning (prune by noise rate) on out-of-fold probabilities",
        "folds": n_folds,
        "judged": int(len(rows)),
        "classes_too_small": small,
        "out_of_fold_accuracy": round(accuracy, 4),
        "noise_estimate": round(found.noise_estimate, 4),
        "flagged": int(found.issues.sum()),
        "per_class_thresholds": {
            name: round(float(t), 4) for name, t in zip(classes, found.thresholds, strict=True)
        },
        "fold_training": [vars(report) for report in reports],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return CheckResult(
        columns=columns, tables={"label_issue_probabilities": table}, summary=summary
    )


def report_data(inputs: ReportInputs) -> dict:
    """The flagged images, the least self-confident first, each with its folder and the
    class the out-of-fold models suggest; how accurate those models were."""
    if (shown_instead := unavailable(CHECK, inputs)) is not None:
        return shown_instead
    frame, numbers = inputs.frame, inputs.summary["checks"][CHECK.name]
    flagged = frame[frame[CHECK.issue_column].fillna(False).astype(bool)]
    shown = flagged.sort_values([CHECK.score_column, "path"]).head(MAX_SHOWN)
    items = [(r.path, f"{r.label} → {r.suggested_label}") for r in shown.itertuples()]
    return {
        "count": len(flagged),
        "judged": numbers.get("judged", 0),
        "folds": numbers.get("folds"),
        "accuracy": numbers.get("out_of_fold_accuracy"),
        "noise": numbers.get("noise_estimate"),
        "too_small": ", ".join(map(str, numbers.get("classes_too_small") or [])),
        "figures": figures(inputs.thumbs, items),
        "more_note": more(len(flagged) - len(shown), marked(CHECK.issue_column)),
    }


def _groups(rows: pd.DataFrame) -> np.ndarray:
    """One group per duplicate group (when near_duplicate ran first), else per row."""
    own = -1 - np.arange(len(rows), dtype=np.int64)
    if "duplicate_group" not in rows:
        return own
    group = pd.to_numeric(rows["duplicate_group"], errors="coerce").to_numpy()
    return np.where(np.isnan(group), own, np.nan_to_num(group)).astype(np.int64)


def details(numbers: dict) -> str:
    if "skipped" in numbers:
        return f"Skipped: {numbers['skipped']}"
    return (
        f"{numbers['flagged']:,} of {count(numbers['judged'], 'image')} contradicted by "
        f"{numbers['folds']} out-of-fold models "
        f"({100 * numbers['out_of_fold_accuracy']:.0f} % accurate; "
        f"estimated noise {100 * numbers['noise_estimate']:.1f} %)."
    )


CHECK = Check(
    name="label_issue",
    description=(
        "Images a classifier that never trained on them assigns to another class, by "
        "confident learning on out-of-fold predictions; suggests the likely class."
    ),
    needs=("status", "cache_shard", "cache_index", "path", "label"),
    run=run,
    settings=LabelIssueSettings,
    details=details,
    title="Label issues",
    # a model's disagreement is a question for a person, not a reason to drop
    clean_rules=(CleanRule("label_issues", "keep", "label_issue"),),
    report=ReportSection("Label issues", report_data, "checks/label_issue.html"),
    extra_columns=("suggested_label",),
    after=("duplicate_group",),
)
