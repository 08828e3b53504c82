"""The shape every audit check has (cleanvision/cleanlab convention).

A check is one file defining `CHECK = Check(...)`. It declares the manifest columns it
needs (and, in `after`, columns it uses when another check of the same audit makes them),
receives a read-only `AuditContext`, and returns a `CheckResult` holding only its
own columns: `<name>_score` in [0, 1] (lower = more severe) and `is_<name>_issue`, plus
any extra columns it documents, tables for the report, and numbers for summary.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from winnow.audit.config import AuditConfig
from winnow.data.cache import PixelCache


@dataclass(frozen=True)
class ReferenceSet:
    """Another dataset to compare against (`--against`): its manifest and pixel cache."""

    name: str
    frame: pd.DataFrame
    cache: PixelCache


@dataclass(frozen=True)
class AuditContext:
    frame: pd.DataFrame  # the manifest; checks must not modify it
    cache: PixelCache
    run_dir: Path
    settings: AuditConfig
    against: ReferenceSet | None = None
    # per-audit memo for costly intermediate results two checks share (e.g. pixel views);
    # owned by one audit run, never module-level
    shared: dict[Any, Any] = field(default_factory=dict)
    # a long check reports progress through it: an object with total, done and description
    on_progress: Callable[[Any], None] | None = None


@dataclass
class CheckResult:
    columns: pd.DataFrame  # indexed like context.frame; only this check's columns
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    needs: tuple[str, ...]
    run: Callable[[AuditContext], CheckResult]
    extra_columns: tuple[str, ...] = ()
    # columns used when present: a check that makes one of them runs first if both are asked,
    # and re-running it (`audit --checks`) re-runs this one too, as for `needs`
    after: tuple[str, ...] = ()

    @property
    def score_column(self) -> str:
        return f"{self.name}_score"

    @property
    def issue_column(self) -> str:
        return f"is_{self.name}_issue"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.score_column, self.issue_column, *self.extra_columns)


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def empty_columns(check: Check, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns meaning 'no issue' for every row (score 1.0, flag False)."""
    return pd.DataFrame({check.score_column: 1.0, check.issue_column: False}, index=frame.index)
