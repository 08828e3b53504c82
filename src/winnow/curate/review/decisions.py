"""RUN/review/decisions.csv: a person's decisions, written whole and atomically after
every change, so a server killed at any moment loses nothing that was answered.

Columns: path, keep, label (the three `winnow clean --decisions` reads), then check (the
tab the decision was made in) and decided_at (UTC, ISO 8601). Undo is a stack of the
states before each change, held by the running server.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from winnow.curate.clean import read_decisions
from winnow.curate.clean import review_decisions as decisions_path
from winnow.data.io import atomic_write_bytes

COLUMNS = ("path", "keep", "label", "check", "decided_at")
UNDO_DEPTH = 1000


@dataclass(frozen=True)
class Decision:
    keep: bool
    label: str | None
    check: str
    decided_at: str


class DecisionStore:
    """The decisions of one run, by manifest path; thread-safe."""

    def __init__(self, run_dir: Path, known_paths: set[str]) -> None:
        self.path = decisions_path(run_dir)
        self.known = known_paths
        self.decisions: dict[str, Decision] = {}
        self.undo_stack: list[list[tuple[str, Decision | None]]] = []
        self.lock = threading.Lock()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        table = read_decisions(self.path)  # the same reading (and checks) as `clean`
        extra = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        for i, row in enumerate(table.itertuples(index=False)):
            if row.path not in self.known:
                continue  # a file gone from the manifest since; clean would refuse it
            label = row.label if isinstance(row.label, str) and row.label else None
            check = extra["check"].iat[i] if "check" in extra else ""
            when = extra["decided_at"].iat[i] if "decided_at" in extra else ""
            self.decisions[row.path] = Decision(bool(row.keep), label, check, when)

    def set(self, paths: list[str], keep: bool | None, label: str | None, check: str) -> int:
        """Decide `paths` alike (keep=None clears their decision); one undo step."""
        return self.apply([(path, keep, label) for path in paths], check)

    def apply(self, changes: list[tuple[str, bool | None, str | None]], check: str) -> int:
        """Decide each (path, keep, label) (keep=None clears it); one undo step for all."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.lock:
            before = [(path, self.decisions.get(path)) for path, _, _ in changes]
            for path, keep, label in changes:
                if keep is None:
                    self.decisions.pop(path, None)
                else:
                    self.decisions[path] = Decision(keep, label, check, now)
            self._save()
            self.undo_stack.append(before)
            del self.undo_stack[:-UNDO_DEPTH]
            return len(changes)

    def undo(self) -> list[str]:
        """Restore the state before the latest change; returns the paths it touched."""
        with self.lock:
            if not self.undo_stack:
                return []
            before = self.undo_stack.pop()
            for path, decision in before:
                if decision is None:
                    self.decisions.pop(path, None)
                else:
                    self.decisions[path] = decision
            self._save()
            return [path for path, _ in before]

    def frame(self) -> pd.DataFrame:
        """The decisions as `clean` takes them (path, keep, label)."""
        with self.lock:
            rows = [(p, d.keep, d.label) for p, d in self.decisions.items()]
        return pd.DataFrame(rows, columns=["path", "keep", "label"])

    def _save(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for path in sorted(self.decisions):
            d = self.decisions[path]
            writer.writerow(
                [path, "true" if d.keep else "false", d.label or "", d.check, d.decided_at]
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buffer.getvalue().encode("utf-8"))
