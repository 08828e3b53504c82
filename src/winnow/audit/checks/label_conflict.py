"""label_conflict: the same picture (exact or near copy) filed under two or more labels."""

from __future__ import annotations

from winnow.audit.checks.base import (
    AuditContext,
    Check,
    CheckResult,
    CleanRule,
    ReportInputs,
    ReportSection,
    empty_columns,
)
from winnow.audit.sections import count, duplicate_groups


def run(context: AuditContext) -> CheckResult:
    frame = context.frame
    columns = empty_columns(CHECK, frame)
    grouped = frame.loc[frame["duplicate_group"].notna(), ["duplicate_group", "label"]]
    by_group = grouped.groupby("duplicate_group")["label"]
    conflict = by_group.transform("nunique") >= 2  # unlabelled members don't count
    rows = grouped[conflict]
    # a member's score: the share of its group under its own label, halved (below 0.5)
    same_label = rows.groupby(["duplicate_group", "label"])["label"].transform("size")
    agreement = same_label / rows.groupby("duplicate_group")["label"].transform("size")
    columns.loc[rows.index, CHECK.score_column] = agreement.astype(float).to_numpy() * 0.5
    columns.loc[rows.index, CHECK.issue_column] = True
    conflicts = rows["duplicate_group"].nunique()
    return CheckResult(
        columns=columns,
        summary={"groups": conflicts, "files": int(columns[CHECK.issue_column].sum())},
    )


def report_data(inputs: ReportInputs) -> dict:
    return duplicate_groups(inputs.frame, inputs.thumbs, conflicts_only=True)


def details(numbers: dict) -> str:
    groups = numbers["groups"]
    return (
        f"{count(groups, 'group')} of copies {'holds' if groups == 1 else 'hold'} more than "
        f"one label ({count(numbers['files'], 'file')})."
    )


CHECK = Check(
    name="label_conflict",
    description="A duplicate group whose members carry different labels.",
    needs=("label", "duplicate_group"),
    run=run,
    details=details,
    title="Label conflicts",
    # the same picture under several labels: dropped until a person decides
    clean_rules=(CleanRule("label_conflicts", "review", "label_conflict"),),
    report=ReportSection("Label conflicts", report_data, "checks/groups.html"),
)
