"""The record of one `winnow compare` (winnow.audit.neardup.explain): the stages re-run on
the pair (`Step`, `Comparison`), what the audit recorded about it, and the verdict that
joins the two."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from winnow.audit.runner import AUDIT_DIR, read_table


@dataclass(frozen=True)
class Step:
    """One stage of the near-duplicate check for one pair. `passed` is None where the stage
    does not apply or is not re-run here."""

    name: str
    passed: bool | None
    value: str
    limit: str
    meaning: str


@dataclass
class Comparison:
    paths: tuple[str, str]
    steps: list[Step] = field(default_factory=list)
    audit: str = ""  # what the latest audit decided about the pair
    verdict: str = ""
    settings_from: str = ""
    leak: bool = False  # a test picture against a training picture (the leak check)

    @property
    def failed(self) -> list[str]:
        return [step.name for step in self.steps if step.passed is False]


def audit_record(run_dir: Path, frame: pd.DataFrame, rep_of: pd.Series, a: int, b: int) -> str:
    if "duplicate_group" not in frame.columns:
        return "no near-duplicate audit yet (run 'winnow audit')"
    group_a, group_b = frame.at[a, "duplicate_group"], frame.at[b, "duplicate_group"]
    table = read_table(run_dir / AUDIT_DIR, "near_duplicate_pairs")
    x, y = frame.at[rep_of[a], "path"], frame.at[rep_of[b], "path"]
    listed = table is not None and bool(
        (
            ((table["path_a"] == x) & (table["path_b"] == y))
            | ((table["path_a"] == y) & (table["path_b"] == x))
        ).any()
    )
    if pd.notna(group_a) and pd.notna(group_b) and group_a == group_b:
        how = "as a verified pair" if listed else "through the group's keeper"
        return f"same duplicate group ({int(group_a)}), {how}"
    if listed:
        return "verified pair, but in different groups (each joined a closer keeper)"
    groups = ", ".join(
        f"{frame.at[row, 'path']}: {'group ' + str(int(g)) if pd.notna(g) else 'no group'}"
        for row, g in ((a, group_a), (b, group_b))
    )
    return f"not reported ({groups})"


def leak_record(run_dir: Path, test_path: str, train_path: str) -> str:
    table = read_table(run_dir / AUDIT_DIR, "leaks")
    if table is None:
        return "no leak audit yet (run 'winnow audit RUN --against TEST')"
    of_test = table[table["test_path"] == test_path]
    pair = of_test[of_test["train_path"] == train_path]
    if len(pair):
        return f"reported as a leak ({pair['kind'].iloc[0]} pair in leaks.csv)"
    if len(of_test):
        others = ", ".join(of_test["train_path"].head(3))
        more = f" and {len(of_test) - 3} more" if len(of_test) > 3 else ""
        return f"not reported; the test picture leaks through {others}{more}"
    return "not reported; the test picture is not in leaks.csv"


# what the verdict says when every stage passes, by how the audit's record begins
_PAIR_RECORDS = (
    ("same duplicate group", "near copies: every stage passes, and the audit grouped them."),
    (
        "verified pair",
        "near copies by every stage, and the audit verified the pair; each picture is "
        "grouped with a keeper it matches better.",
    ),
    (
        "no near-duplicate audit",
        "every pixel test passes; run 'winnow audit' for the search and the series rule.",
    ),
)
_LEAK_RECORDS = (
    (
        "reported as a leak",
        "a leak: every stage passes, and the audit listed the pair in leaks.csv.",
    ),
    (
        "no leak audit",
        "every pixel test passes; run 'winnow audit RUN --against TEST' for the search "
        "and the series rule.",
    ),
)


def verdict(result: Comparison) -> str:
    if result.failed:
        return "not near copies by the settings: fails " + ", ".join(result.failed) + "."
    if result.leak:
        return _from_record(result, _LEAK_RECORDS) or _left_out(
            result,
            "list",
            "the test picture matches a series of training look-alikes and does not stand out",
        )
    return _from_record(result, _PAIR_RECORDS) or _left_out(
        result, "report", "a long series of look-alikes in which it does not stand out"
    )


def _from_record(result: Comparison, records: tuple[tuple[str, str], ...]) -> str | None:
    """The verdict for the audit's record (`result.audit`) by how it begins, if listed."""
    return next((text for start, text in records if result.audit.startswith(start)), None)


def _left_out(result: Comparison, verb: str, series: str) -> str:
    """Every test re-run here passes but the audit did not `verb` the pair: the series rule
    (`series` says what it saw) when the search was re-run and found the pair, else either."""
    searched = next(s for s in result.steps if s.name == "candidate search").passed
    if searched:
        return (
            f"every stage re-run here passes, yet the audit did not {verb} the pair: the series "
            f"rule dropped it ({series} by series_margin)."
        )
    return (
        f"every pixel test passes, yet the audit did not {verb} the pair: it was either not a "
        "candidate (see --search) or dropped by the series rule."
    )
