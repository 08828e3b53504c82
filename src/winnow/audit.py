"""`winnow audit`: run the registered checks over the manifest, write findings and a report.

Outputs: the check columns added to RUN/manifest.parquet (scan columns are kept; columns
of an earlier audit, clean or split are replaced), and in RUN/audit/: summary.json,
report.html, leaks.csv (with --against) and near_duplicate_pairs.parquet.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from winnow.cache import PixelCache
from winnow.checks import get_checks
from winnow.checks.base import AuditContext, Check, CheckResult, ReferenceSet
from winnow.config import AuditConfig, ScanConfig
from winnow.io import atomic_write_bytes
from winnow.manifest import SCAN_SCHEMA, atomic_write_table, manifest_path, read_manifest

log = logging.getLogger(__name__)
AUDIT_DIR = "audit"


class AuditError(RuntimeError):
    """The audit can't start; the message says why and what to do."""


@dataclass
class CheckOutcome:
    name: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    issues: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def order_checks(checks: list[Check], columns: set[str]) -> tuple[list[Check], list[Check]]:
    """Checks in an order that satisfies their needs; the second list can't be satisfied.
    Among the ready ones, a check waits for the others that make a column in its `after`
    (a preference: it never blocks a check for good)."""
    available, ordered, waiting = set(columns), [], list(checks)

    def comes_later(check: Check) -> bool:
        made_by_others = {
            column for other in waiting if other is not check for column in other.columns
        }
        return bool(set(check.after) & made_by_others)

    while waiting:
        ready = [c for c in waiting if set(c.needs) <= available]
        ready = [c for c in ready if not comes_later(c)] or ready
        if not ready:
            break
        for check in ready:
            ordered.append(check)
            available.update(check.columns)
            waiting.remove(check)
    return ordered, waiting


def validate_result(check: Check, frame: pd.DataFrame, result: CheckResult) -> None:
    """The check contract: only its own columns, aligned rows, scores in [0, 1], bool flags."""
    got = set(result.columns.columns)
    if got != set(check.columns):
        raise ValueError(f"returned columns {sorted(got)}, declared {sorted(check.columns)}")
    if not result.columns.index.equals(frame.index):
        raise ValueError("returned rows are not aligned with the manifest")
    score = result.columns[check.score_column].astype(float)
    if ((score < 0) | (score > 1)).any():
        raise ValueError(f"{check.score_column} has values outside [0, 1]")
    if result.columns[check.issue_column].isna().any():
        raise ValueError(f"{check.issue_column} has missing values")


def load_reference(against: Path, run_dir: Path, on_progress: Callable | None) -> ReferenceSet:
    """A RUN folder is used as it is; a data folder is scanned into RUN/against/<name>."""
    against = Path(against)
    if manifest_path(against).exists():
        folder = against
    elif against.is_dir():
        from winnow.scan import scan

        cache = PixelCache(run_dir)
        config = ScanConfig.matching(cache.image_size, cache.background)
        folder = run_dir / "against" / against.name
        scan(against, folder, config, on_progress=on_progress)
    else:
        raise AuditError(f"--against {against} is neither a data folder nor a winnow RUN folder.")
    frame = read_manifest(folder)
    return ReferenceSet(name=str(against), frame=frame, cache=PixelCache(folder))


def run_audit(
    run_dir: Path,
    config: AuditConfig | None = None,
    against: Path | None = None,
    on_progress: Callable | None = None,
) -> dict[str, Any]:
    config = config or AuditConfig()
    run_dir = Path(run_dir)
    try:
        frame = read_manifest(run_dir)
    except FileNotFoundError as exc:
        raise AuditError(str(exc)) from None
    frame = frame[[c for c in SCAN_SCHEMA.names]]
    started = time.perf_counter()
    reference = load_reference(against, run_dir, on_progress) if against else None
    context = AuditContext(
        frame=frame,
        cache=PixelCache(run_dir),
        run_dir=run_dir,
        settings=config,
        against=reference,
    )
    try:
        checks = get_checks(config.checks)
    except KeyError as exc:
        raise AuditError(str(exc.args[0])) from None
    ordered, unsatisfied = order_checks(checks, set(frame.columns))
    outcomes, tables, columns = _run_checks(ordered, context)
    for check in unsatisfied:
        missing = sorted(set(check.needs) - set(frame.columns) - set(columns))
        outcomes.append(CheckOutcome(check.name, "skipped", error=f"needs {missing}"))

    audited = pd.concat([frame, *columns.values()], axis=1)
    atomic_write_table(pa.Table.from_pandas(audited, preserve_index=False), manifest_path(run_dir))
    out = run_dir / AUDIT_DIR
    out.mkdir(exist_ok=True)
    for name, table in tables.items():
        if name == "leaks":
            atomic_write_bytes(out / "leaks.csv", table.to_csv(index=False).encode())
        else:
            atomic_write_table(
                pa.Table.from_pandas(table, preserve_index=False), out / f"{name}.parquet"
            )
    summary = _summary(audited, outcomes, reference, time.perf_counter() - started, run_dir)
    atomic_write_bytes(
        out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    from winnow.report import write_audit_report

    report = write_audit_report(
        run_dir,
        audited,
        summary,
        tables,
        reference.cache if reference else None,
        reference.frame if reference else None,
    )
    summary["report"] = str(report)
    return summary


def _run_checks(
    ordered: list[Check], context: AuditContext
) -> tuple[list[CheckOutcome], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    outcomes, tables, columns = [], {}, {}
    frame = context.frame
    for check in ordered:
        missing = [need for need in check.needs if need not in frame.columns]
        if missing:  # a check it depends on failed
            outcomes.append(CheckOutcome(check.name, "skipped", error=f"needs {missing}"))
            continue
        started = time.perf_counter()
        try:
            result = check.run(context)
            validate_result(check, frame, result)
        except Exception as exc:  # noqa: BLE001 - one failing check must not stop the others
            log.warning("check %s failed: %s", check.name, exc)
            outcomes.append(
                CheckOutcome(
                    check.name,
                    "failed",
                    time.perf_counter() - started,
                    error=f"{type(exc).__name__}: {exc}",
                    summary={"traceback": traceback.format_exc(limit=4)},
                )
            )
            continue
        columns[check.name] = result.columns
        frame = pd.concat([frame, result.columns], axis=1)
        context = dataclasses.replace(context, frame=frame)
        tables.update(result.tables)
        outcomes.append(
            CheckOutcome(
                check.name,
                "ok",
                round(time.perf_counter() - started, 3),
                int(result.columns[check.issue_column].sum()),
                result.summary,
            )
        )
    return outcomes, tables, columns


def dataset_summary(frame: pd.DataFrame) -> dict[str, Any]:
    ok = frame[frame["status"] == "ok"]
    counts = ok["label"].value_counts()
    sides = np.minimum(ok["width"].to_numpy(float), ok["height"].to_numpy(float))
    return {
        "files": int(len(frame)),
        "ok": int(len(ok)),
        "status_counts": frame["status"].value_counts().to_dict(),
        "classes": int(len(counts)),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "imbalance_ratio": float(counts.max() / counts.min()) if len(counts) else None,
        "min_side_quantiles": {
            q: float(np.quantile(sides, float(q))) for q in ("0.01", "0.5", "0.99")
        }
        if len(sides)
        else {},
    }


def _summary(
    frame: pd.DataFrame,
    outcomes: list[CheckOutcome],
    reference: ReferenceSet | None,
    seconds: float,
    run_dir: Path,
) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "seconds": round(seconds, 2),
        "against": reference.name if reference else None,
        "dataset": dataset_summary(frame),
        "checks": {
            o.name: {
                "status": o.status,
                "issues": o.issues,
                "seconds": o.seconds,
                **({"error": o.error} if o.error else {}),
                **o.summary,
            }
            for o in outcomes
        },
    }
