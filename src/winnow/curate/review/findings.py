"""What `winnow review` shows: every audit finding of a run, as tabs of items a person
decides on, each with the action the audit suggests.

A tab per kind of finding, built from the manifest's columns by the check registry's
names (`is_<check>_issue`): `duplicates` (exact and near copies, one group at a time, the
member `clean` would keep marked), then one tab per other check that flagged anything,
plug-ins included. Items are sorted by severity: duplicate groups largest first, every
other tab by its check's score (lower = more severe).

A suggestion is a decision in the decisions file's own terms (`keep`, `label`):
duplicates keep the keeper and drop the others, a label issue is relabelled to its
`suggested_label`, and every other finding follows the clean policy's default for it
(`keep` keeps, `drop` and `review` drop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from winnow.curate.clean import CleanPolicy

DUPLICATES = "duplicates"
# the tab of a check that makes duplicate groups is the duplicates tab
GROUP_CHECKS = ("exact_duplicate", "near_duplicate")
DUPLICATES_TITLE = "Duplicates"


@dataclass
class Tab:
    name: str
    title: str
    rows: list[int]  # manifest row numbers, most severe first
    suggestions: dict[int, dict[str, Any]] = field(default_factory=dict)  # row → keep/label
    notes: dict[int, str] = field(default_factory=dict)  # row → what the check says
    groups: dict[int, int] = field(default_factory=dict)  # row → its duplicate group
    keepers: set[int] = field(default_factory=set)


def build_tabs(frame: pd.DataFrame, check_names: list[str], policy: CleanPolicy) -> list[Tab]:
    """The tabs of `frame` (an audited manifest), in the registry's order of `check_names`."""
    from winnow.audit.checks import available_checks

    registry = available_checks()
    tabs = []
    if "duplicate_group" in frame and frame["duplicate_group"].notna().any():
        tabs.append(_duplicates(frame))
    for check in (registry[name] for name in check_names if name in registry):
        name, column = check.name, check.issue_column
        if name in GROUP_CHECKS or column not in frame:
            continue
        flagged = frame.index[frame[column].fillna(False).astype(bool)]
        if len(flagged) == 0:
            continue
        score = pd.to_numeric(frame.loc[flagged, f"{name}_score"], errors="coerce").fillna(1.0)
        order = flagged[np.argsort(score.to_numpy(), kind="stable")]
        tab = Tab(name, check.display_title, list(map(int, order)))
        action = policy.action_for(name) or "keep"
        for row in tab.rows:
            tab.suggestions[row] = {"keep": action == "keep", "label": None}
            tab.notes[row] = f"score {float(score.loc[row]):.3f}"
        if name == "label_issue" and "suggested_label" in frame:
            for row in tab.rows:
                suggested = frame.at[row, "suggested_label"]
                if isinstance(suggested, str) and suggested:
                    tab.suggestions[row] = {"keep": True, "label": suggested}
                    tab.notes[row] += f", looks like {suggested}"
        if name == "out_of_domain" and "out_of_domain_borderline" in frame:
            for row in tab.rows:
                if bool(frame.at[row, "out_of_domain_borderline"]):
                    tab.notes[row] += ", borderline"
        if "duplicate_group" in frame:
            for row in tab.rows:
                group = frame.at[row, "duplicate_group"]
                if pd.notna(group):
                    tab.groups[row] = int(group)
        tabs.append(tab)
    return tabs


def _duplicates(frame: pd.DataFrame) -> Tab:
    members = frame[frame["duplicate_group"].notna()]
    keep_rank = members.get("duplicate_keep", pd.Series(0.0, index=members.index))
    tab = Tab(DUPLICATES, DUPLICATES_TITLE, [])
    by_group = members.groupby("duplicate_group").groups  # group → its rows, groups in order
    for group in sorted(by_group, key=lambda g: -len(by_group[g])):  # largest first, stable
        rows = by_group[group]
        rank = keep_rank.loc[rows].fillna(0).astype(float).to_numpy()
        ranked = rows[np.argsort(-rank, kind="stable")]
        keeper = int(ranked[0])
        tab.keepers.add(keeper)
        for row in map(int, ranked):
            tab.rows.append(row)
            tab.groups[row] = int(group)
            tab.suggestions[row] = {"keep": row == keeper, "label": None}
            role = "keeper" if row == keeper else "copy"
            tab.notes[row] = f"{role}, group {int(group)} ({len(rows)} files)"
    return tab


def awaiting_review(run_dir) -> int:
    """How many flagged files of an audited run no decision in RUN/review/decisions.csv
    covers yet (a file in two tabs counts once)."""
    from pathlib import Path

    from winnow.audit.checks import available_checks
    from winnow.curate.clean import read_decisions
    from winnow.curate.review.decisions import decisions_path
    from winnow.data.manifest import read_manifest

    frame = read_manifest(Path(run_dir)).reset_index(drop=True)
    tabs = build_tabs(frame, list(available_checks()), CleanPolicy())
    flagged = {str(frame.at[row, "path"]) for tab in tabs for row in tab.rows}
    saved = decisions_path(run_dir)
    decided = set(read_decisions(saved)["path"]) if saved.exists() else set()
    return len(flagged - decided)
