"""exact_duplicate: identical bytes, or identical decoded pixels in byte-different files."""

from __future__ import annotations

import pandas as pd

from winnow.audit.checks.base import AuditContext, Check, CheckResult, empty_columns, ok_rows
from winnow.audit.neardup.search import exact_keys
from winnow.audit.sections import count


def run(context: AuditContext) -> CheckResult:
    frame = context.frame
    columns = empty_columns(CHECK, frame)
    columns["exact_duplicate_group"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    ok = ok_rows(frame)
    keys = exact_keys(ok)
    sizes = keys.map(keys.value_counts())
    members = ok.index[sizes.to_numpy() > 1]
    ordered = ok.loc[members].sort_values("path")
    group_ids, _ = pd.factorize(keys.loc[ordered.index])
    columns.loc[ordered.index, "exact_duplicate_group"] = group_ids
    columns.loc[members, CHECK.score_column] = 0.0
    columns.loc[members, CHECK.issue_column] = True
    byte_groups = ok["sha256"].value_counts()
    return CheckResult(
        columns=columns,
        summary={
            "groups": int(len(set(group_ids))),
            "files_in_groups": int(len(members)),
            "redundant_files": int(len(members) - len(set(group_ids))),
            "identical_bytes_groups": int((byte_groups > 1).sum()),
        },
    )


def details(numbers: dict) -> str:
    return (
        f"{count(numbers['groups'], 'group')} of identical files "
        f"({count(numbers['files_in_groups'], 'file')}, {numbers['redundant_files']:,} of them "
        f"redundant; {numbers['identical_bytes_groups']:,} identical to the byte, the rest in "
        "decoded pixels)."
    )


CHECK = Check(
    name="exact_duplicate",
    description="Identical files, or identical decoded pixels in byte-different files.",
    needs=("status", "path", "sha256", "pixel_sha256"),
    run=run,
    details=details,
    clean_rules=(),  # copies are kept one per group by the policy's `duplicates`
    shown_in="near_duplicate",  # its groups are part of the duplicate groups
    extra_columns=("exact_duplicate_group",),
)
