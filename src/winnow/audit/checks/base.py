"""The shape every audit check has (cleanvision/cleanlab convention).

A check is one file defining `CHECK = Check(...)` and owns its whole life there:
- what it reads and makes: the manifest columns it `needs` (and, in `after`, columns it
  uses when another check of the same audit makes them); it receives a read-only
  `AuditContext` and returns a `CheckResult` holding only its own columns:
  `<name>_score` in [0, 1] (lower = more severe) and `is_<name>_issue`, plus any extra
  columns it documents, tables for the report, and numbers for summary.json;
- its settings: a pydantic model (`settings`) the audit config composes under the
  check's name (`my_check: {threshold: 0.3}` in the audit YAML); `settings_of` reads them;
- what `clean` does with its flags: `clean_rules`, each a policy key with a default action
  (drop / review / keep) that the clean policy overrides by that key or the check's name;
- its section of the audit report: `report`, a jinja2 partial fed by the check's own
  data; a check without one gets the generic section (its flagged files, most severe first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from winnow.audit.config import AuditConfig
from winnow.data.cache import PixelCache
from winnow.data.engine import Engine, LocalEngine


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
    # where per-image work runs (winnow.data.engine; by default in this process): a check
    # maps its chunks with `engine.map` or passes it to describe / verify_pairs
    engine: Engine = field(default_factory=lambda: LocalEngine(1))


@dataclass
class CheckResult:
    columns: pd.DataFrame  # indexed like context.frame; only this check's columns
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


Action = Literal["drop", "review", "keep"]
ACTIONS: tuple[Action, ...] = ("drop", "review", "keep")


@dataclass(frozen=True)
class CleanRule:
    """What `clean` does with some of a check's rows unless the policy says otherwise.

    key: the clean policy's key (the check's name, or an older spelling kept working);
    default: its action; reason: the `reason` column's word for the rows it drops
    (`<reason>`, or `<reason>:review` when the action is review); rows: which rows it
    covers (None: the check's `is_<name>_issue` flag).
    """

    key: str
    default: Action
    reason: str
    rows: Callable[[pd.DataFrame], pd.Series] | None = None


@dataclass(frozen=True)
class ReportInputs:
    """What a check's report section is built from."""

    frame: pd.DataFrame  # the audited manifest
    summary: dict[str, Any]  # summary.json; the check's own numbers under ["checks"][name]
    tables: dict[str, pd.DataFrame]  # every check's tables of this audit
    thumbs: Any  # thumbs.figure(path, caption="", keep=False) → a figure's data
    test_thumbs: Any | None  # the same for the --against set's files


@dataclass(frozen=True)
class ReportSection:
    """A check's section of the audit report: `build` turns ReportInputs into the data
    its jinja2 partial renders. `template` names a partial of winnow.audit's templates
    folder (built-ins); `source` is the partial itself (a plug-in's one file)."""

    title: str
    build: Callable[[ReportInputs], dict[str, Any]]
    template: str | None = None
    source: str | None = None


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
    settings: type[BaseModel] | None = None
    # None: one rule keyed by the check's name that keeps its rows unless the policy says
    # otherwise; (): its flags are not a clean rule (duplicate groups: policy `duplicates`)
    clean_rules: tuple[CleanRule, ...] | None = None
    report: ReportSection | None = None
    shown_in: str | None = None  # another check whose report section shows these findings
    # one sentence of what it found, from its summary numbers (the report's checks table);
    # without it the table lists the numbers
    details: Callable[[dict[str, Any]], str] | None = None
    title: str = ""  # a short heading (review tab, report section); default from the name

    @property
    def rules(self) -> tuple[CleanRule, ...]:
        """What `clean` does with this check's rows (see `clean_rules`)."""
        if self.clean_rules is None:
            return (CleanRule(self.name, "keep", self.name),)
        return self.clean_rules

    def rule_rows(self, rule: CleanRule, frame: pd.DataFrame) -> pd.Series | None:
        """The rows `rule` covers in an audited manifest (None: the check did not run)."""
        if self.issue_column not in frame:
            return None
        flagged = frame[self.issue_column].fillna(False).astype(bool)
        return flagged if rule.rows is None else flagged & rule.rows(frame).astype(bool)

    @property
    def display_title(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def settings_of(self, config: AuditConfig) -> BaseModel | None:
        """This check's settings from an audit config (its defaults when not set there)."""
        if self.settings is None:
            return None
        given = (config.model_extra or {}).get(self.name)
        return given if isinstance(given, self.settings) else self.settings()

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
