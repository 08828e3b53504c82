"""near_duplicate: resized, slightly cropped, re-encoded or brightness-shifted copies.

Candidates come from nearest neighbours of two pixel descriptors; every reported pair
is verified on pixels (see winnow.audit.neardup.similarity). Groups are formed around a keeper (best
copy: lossless, then most pixels) and include exact duplicates, in `duplicate_group`;
`duplicate_keep` marks the copy to keep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winnow.audit.checks.base import (
    AuditContext,
    Check,
    CheckResult,
    ReportInputs,
    ReportSection,
    empty_columns,
    ok_rows,
)
from winnow.audit.neardup.candidates import candidate_pairs
from winnow.audit.neardup.search import (
    NearDuplicateSettings,
    describe,
    exact_keys,
    keeper_order,
    leader_groups,
)
from winnow.audit.neardup.verify import verify_pairs
from winnow.audit.sections import count, duplicate_groups


def settings_of(context: AuditContext) -> NearDuplicateSettings:
    """The search settings: the audit config's `near_duplicate` section."""
    return CHECK.settings_of(context.settings)


def representatives(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """One row per distinct picture (the best exact copy), in keeper order; and each ok
    row's representative index."""
    ok = ok_rows(frame)
    ordered = ok.iloc[keeper_order(ok)]
    keys = exact_keys(ordered)
    first = ~keys.duplicated()
    reps = ordered[first.to_numpy()]
    rep_of_key = pd.Series(reps.index, index=keys[first.to_numpy()].to_numpy())
    return reps, pd.Series(rep_of_key.loc[keys.to_numpy()].to_numpy(), index=ordered.index)


def shared_items(context: AuditContext, reps: pd.DataFrame):
    """Descriptors of the representatives, computed once per audit and shared with `leak`."""
    key = ("items", tuple(reps.index))
    if key not in context.shared:
        context.shared[key] = describe(reps, context.cache, engine=context.engine)
    return context.shared[key]


def run(context: AuditContext) -> CheckResult:
    frame = context.frame
    columns = empty_columns(CHECK, frame)
    columns["duplicate_group"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    columns["duplicate_keep"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    reps, rep_of = representatives(frame)
    if reps.empty:
        return CheckResult(columns=columns, summary={"groups": 0})
    settings = settings_of(context)
    items = shared_items(context, reps)
    candidates = candidate_pairs(items, None, settings)
    pairs, similarity = verify_pairs(items, items, candidates, settings, context.engine)
    rep_group = leader_groups(np.arange(len(reps)), pairs, similarity)

    # exact copies follow their representative; a lone picture with exact copies is a group
    group_of_rep = pd.Series(rep_group, index=reps.index)
    copies = rep_of.value_counts()
    lone_with_copies = group_of_rep[(group_of_rep < 0) & (copies.reindex(reps.index) > 1)]
    group_of_rep.loc[lone_with_copies.index] = (
        np.arange(len(lone_with_copies)) + rep_group.max() + 1
    )
    groups = group_of_rep.loc[rep_of.to_numpy()].to_numpy()
    in_group = groups >= 0
    members = rep_of.index[in_group]
    ids, _ = pd.factorize(groups[in_group])  # dense ids in keeper order of first member
    columns.loc[members, "duplicate_group"] = ids
    columns.loc[rep_of.index, "duplicate_keep"] = True
    # members come in keeper order: the first of each group is the one to keep
    columns.loc[members, "duplicate_keep"] = ~pd.Series(ids).duplicated().to_numpy()
    group_count = len(np.unique(ids))

    best = np.ones(len(reps))
    same = rep_group[pairs[:, 0]] == rep_group[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
    for (a, b), s in zip(pairs[same].tolist(), similarity[same].tolist(), strict=True):
        best[a] = min(best[a], 1 - s)
        best[b] = min(best[b], 1 - s)
    near_score = pd.Series(np.clip(best, 0, 1), index=reps.index).loc[rep_of.to_numpy()].to_numpy()
    columns.loc[rep_of.index, CHECK.score_column] = near_score
    columns.loc[rep_of.index, CHECK.issue_column] = near_score < 1.0

    path = frame["path"]
    table = pd.DataFrame(
        {
            "path_a": path.loc[reps.index[pairs[:, 0]]].to_numpy(),
            "path_b": path.loc[reps.index[pairs[:, 1]]].to_numpy(),
            "similarity": np.round(similarity, 4),
            "same_group": same,
        }
    )
    return CheckResult(
        columns=columns,
        tables={"near_duplicate_pairs": table},
        summary={
            "groups": group_count,
            "files_in_groups": int(len(members)),
            "redundant_files": int(len(members) - group_count),
            "candidate_pairs": int(len(candidates)),
            "verified_pairs": int(len(pairs)),
            "pictures_with_near_copies": int((near_score < 1.0).sum()),
        },
    )


def report_data(inputs: ReportInputs) -> dict:
    return duplicate_groups(inputs.frame, inputs.thumbs, conflicts_only=False)


def details(numbers: dict) -> str:
    return (
        f"{numbers['verified_pairs']:,} of {count(numbers['candidate_pairs'], 'candidate pair')} "
        f"verified on pixels; {count(numbers['groups'], 'group')} of copies, exact ones "
        f"included ({count(numbers['files_in_groups'], 'file')}, "
        f"{numbers['redundant_files']:,} redundant)."
    )


CHECK = Check(
    name="near_duplicate",
    settings=NearDuplicateSettings,
    description="Resized, cropped, re-encoded or brightness-shifted copies, verified on pixels.",
    needs=(
        "status",
        "path",
        "sha256",
        "pixel_sha256",
        "format",
        "width",
        "height",
        "cache_shard",
        "cache_index",
    ),
    run=run,
    details=details,
    title="Duplicates",
    clean_rules=(),  # copies are kept one per group by the policy's `duplicates`
    report=ReportSection("Duplicate groups", report_data, "checks/groups.html"),
    extra_columns=("duplicate_group", "duplicate_keep"),
)
