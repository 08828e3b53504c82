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
    grouped = frame[frame["duplicate_group"].notna()]
    conflicts = 0
    for _, members in grouped.groupby("duplicate_group"):
        labels = members["label"].value_counts()
        if len(labels) < 2:
            continue
        conflicts += 1
        agreement = members["label"].map(labels) / len(members)
        columns.loc[members.index, CHECK.score_column] = agreement.astype(float).to_numpy() * 0.5
        columns.loc[members.index, CHECK.issue_column] = True
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
