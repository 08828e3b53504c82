"""leak: training items whose exact or near copy is in the test set (`--against TEST`).

Flags the training rows involved and lists every (test, train) pair in leaks.csv, so the
F1 measured on that test set can be reported with and without the leaked items.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

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
from winnow.audit.checks.near_duplicate import representatives, settings_of, shared_items
from winnow.audit.neardup.candidates import candidate_pairs
from winnow.audit.neardup.search import describe, exact_keys
from winnow.audit.neardup.verify import verify_pairs
from winnow.audit.sections import count, figures, more, see

COLUMNS = ["test_path", "train_path", "kind", "similarity"]


def run(context: AuditContext) -> CheckResult:
    frame = context.frame
    columns = empty_columns(CHECK, frame)
    if context.against is None:
        return CheckResult(columns=columns, summary={"ran": False, "why": "no --against set"})
    test = ok_rows(context.against.frame)
    train = ok_rows(frame)
    rows: list[tuple[str, str, str, float]] = []

    train_keys = exact_keys(train)
    by_key = pd.Series(train.index, index=train_keys.to_numpy())
    for test_row, key in zip(test.index, exact_keys(test), strict=True):
        if key in by_key.index:
            for train_row in np.atleast_1d(by_key.loc[key]):
                rows.append((test.at[test_row, "path"], frame.at[train_row, "path"], "exact", 1.0))

    reps, rep_of = representatives(frame)
    if not reps.empty and not test.empty:
        settings = settings_of(context)
        train_items = shared_items(context, reps)
        # the test set is projected as the training set is, so their descriptors compare
        test_items = describe(
            test, context.against.cache, train_items.projection, engine=context.engine
        )
        candidates = candidate_pairs(train_items, test_items, settings)
        pairs, similarity = verify_pairs(
            test_items, train_items, candidates, settings, context.engine
        )
        copies = pd.Series(rep_of.index, index=rep_of.to_numpy())
        for (t, r), s in zip(pairs.tolist(), similarity.tolist(), strict=True):
            for train_row in np.atleast_1d(copies.loc[reps.index[r]]):
                rows.append((test.iloc[t]["path"], frame.at[train_row, "path"], "near", s))

    table = one_row_per_pair(pd.DataFrame(rows, columns=COLUMNS))
    path_to_row = pd.Series(frame.index, index=frame["path"].to_numpy())
    best = table.groupby("train_path")["similarity"].max()
    involved = path_to_row.loc[best.index].to_numpy()
    columns.loc[involved, CHECK.score_column] = np.clip(1 - best.to_numpy(), 0, 1)
    columns.loc[involved, CHECK.issue_column] = True
    return CheckResult(
        columns=columns,
        tables={"leaks": table.sort_values(["test_path", "train_path"]).reset_index(drop=True)},
        summary={
            "ran": True,
            "against": context.against.name,
            "test_items": int(len(test)),
            "leaked_test_items": int(table["test_path"].nunique()),
            "training_items_involved": int(len(involved)),
            "exact_pairs": int((table["kind"] == "exact").sum()),
            "near_pairs": int((table["kind"] == "near").sum()),
        },
    )


def one_row_per_pair(table: pd.DataFrame) -> pd.DataFrame:
    """The leak table with one row per (test, training) pair: found by its bytes, a pair is
    exact whatever pixel verification says of it (identical once aligned, a near pair ties
    it at similarity 1.0); otherwise its most alike row."""

    def exact_first(column: pd.Series) -> pd.Series:
        return column.ne("exact") if column.name == "kind" else column

    ordered = table.sort_values(
        ["kind", "similarity"], ascending=[True, False], key=exact_first, kind="stable"
    )
    return ordered.drop_duplicates(["test_path", "train_path"])


MAX_LEAK_ITEMS = 100  # leaked test items shown in the report, each with its copies
MAX_LEAK_COPIES = 4  # training copies shown per leaked test item


def report_data(inputs: ReportInputs) -> dict:
    """One row per leaked test item with its training copies (most alike first), up to
    MAX_LEAK_ITEMS items and MAX_LEAK_COPIES copies each; what is left out is counted, and
    every pair is in leaks.csv."""
    leaks = inputs.tables.get("leaks")
    if leaks is None or leaks.empty:
        return {"checked": leaks is not None, "items": []}
    ordered = leaks.sort_values(["test_path", "similarity"], ascending=[True, False], kind="stable")
    grouped = ordered.groupby("test_path", sort=False)
    items = []
    for test_path, copies in itertools.islice(grouped, MAX_LEAK_ITEMS):
        items.append(
            {
                "test": (
                    figures(inputs.test_thumbs, [(test_path, "")])[0]
                    if inputs.test_thumbs
                    else test_path
                ),
                "figures": figures(
                    inputs.thumbs, [(p, "") for p in copies["train_path"].head(MAX_LEAK_COPIES)]
                ),
                "more_copies": max(0, len(copies) - MAX_LEAK_COPIES),
                "kind": "exact" if (copies["kind"] == "exact").any() else "near",
                "similarity": float(copies["similarity"].max()),
            }
        )
    count = grouped.ngroups
    left_out = count - MAX_LEAK_ITEMS
    return {
        "checked": True,
        "count": count,
        "pairs": len(leaks),
        "items": items,
        "more_note": more(left_out, see("leaks.csv"), "test item" + ("s" if left_out != 1 else "")),
    }


def details(numbers: dict) -> str:
    if not numbers.get("ran"):
        return "Not checked: no --against folder."
    return (
        f"{numbers['leaked_test_items']:,} of {count(numbers['test_items'], 'test item')} "
        f"{'has' if numbers['leaked_test_items'] == 1 else 'have'} a copy among "
        f"{count(numbers['training_items_involved'], 'training file')} "
        f"({numbers['exact_pairs']:,} exact, {count(numbers['near_pairs'], 'near pair')})."
    )


CHECK = Check(
    name="leak",
    description="Training items with an exact or near copy in the --against (test) set.",
    needs=(
        "status",
        "path",
        "sha256",
        "pixel_sha256",
        "width",
        "height",
        "cache_shard",
        "cache_index",
    ),
    run=run,
    details=details,
    title="Leaks",
    # a copy of a test item inflates the test score
    clean_rules=(CleanRule("leaks", "drop", "leak"),),
    report=ReportSection("Test items leaked into training", report_data, "checks/leak.html"),
)
