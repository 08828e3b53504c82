"""`winnow audit`: run the registered checks over the manifest, write findings and a report.

Outputs: the check columns added to RUN/manifest.parquet (scan columns are kept; columns
of an earlier clean or split are dropped), and in RUN/audit/: summary.json, report.html,
config.yaml (the settings this audit ran with), leaks.csv (with --against),
near_duplicate_pairs.parquet and out_of_domain.parquet.

A full audit replaces an earlier one. An audit of some checks (`--checks`) is merged into
it: the chosen checks run, and so does every earlier check that reads a column they make
(`needs` or `after`: re-run near_duplicate, and label_conflict and out_of_domain follow);
the other earlier checks keep their columns, tables and summary entry, marked
`from_earlier_audit`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from winnow.audit.checks import available_checks
from winnow.audit.checks.base import AuditContext, Check, CheckResult, ReferenceSet
from winnow.audit.config import AuditConfig
from winnow.audit.planning import AuditError, order_checks, plan_checks, requested_checks
from winnow.audit.summary import CheckOutcome, audit_summary
from winnow.config import dump_config
from winnow.data.cache import PixelCache
from winnow.data.config import ScanConfig
from winnow.data.engine import Engine, open_engine
from winnow.data.io import atomic_write_bytes
from winnow.data.lock import ManifestGuard, run_lock
from winnow.data.manifest import (
    SCAN_SCHEMA,
    atomic_write_table,
    manifest_path,
    missing_manifest,
    read_manifest,
    write_manifest,
)
from winnow.data.scan import scan

log = logging.getLogger(__name__)
AUDIT_DIR = "audit"
CONFIG_FILE = "config.yaml"  # the settings of the latest audit


@dataclasses.dataclass
class CheckProgress:
    """What `on_progress` hears about one check: `running` when it starts (and, for a check
    that reports its own progress, as it goes: `done` of `total`), then `ok`, `failed` or
    `skipped` with its seconds and flagged rows."""

    check: str
    position: int  # 1-based, of `count` checks this audit runs
    count: int
    state: str = "running"
    done: int | None = None
    total: int | None = None
    detail: str = ""  # the check's own words for where it is ("fold 2/3")
    seconds: float = 0.0
    issues: int | None = None


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


def load_reference(
    against: Path, run_dir: Path, on_progress: Callable | None, engine: str = "local"
) -> ReferenceSet:
    """A RUN folder is used as it is; a data folder is scanned into RUN/against/<name>, on
    `engine` (a Ray the audit started is joined, not started again)."""
    against = Path(against)
    if manifest_path(against).exists():
        folder = against
    elif against.is_dir():
        cache = PixelCache(run_dir)
        config = ScanConfig.matching(cache.image_size, cache.background)
        config = config.model_copy(update={"engine": engine})
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
    """Run the checks `config` asks for over RUN's manifest (see the module docstring);
    RUN's write lock is held from the first read to the last write."""
    run_dir = Path(run_dir)
    if not manifest_path(run_dir).exists():
        raise AuditError(missing_manifest(run_dir))
    config = config or AuditConfig()
    with (
        run_lock(run_dir, "audit"),
        open_engine(config.engine, config.ray_address, config.workers) as engine,
    ):
        return _run_audit(run_dir, config, against, on_progress, engine)


def _carried_outcome(name: str, info: dict, out: Path, tables: dict) -> CheckOutcome:
    """A check kept from the earlier audit: its summary as it was, its tables read back
    into `tables` (for the report) where they are still on disk."""
    carried = []
    for table in _tables_of(name, info, out):
        if (found := read_table(out, table)) is not None:
            tables[table] = found
            carried.append(table)
    details = {k: v for k, v in info.items() if k not in ("status", "issues", "seconds")}
    return CheckOutcome(
        name,
        "ok",
        info.get("seconds", 0.0),
        info.get("issues", 0),
        {**details, "tables": carried, "from_earlier_audit": True},
    )


def _run_audit(
    run_dir: Path,
    config: AuditConfig,
    against: Path | None,
    on_progress: Callable | None,
    engine: Engine,
) -> dict[str, Any]:
    guard = ManifestGuard.of(manifest_path(run_dir))
    frame = read_manifest(run_dir)
    started = time.perf_counter()
    out = run_dir / AUDIT_DIR
    registry = available_checks()
    requested = requested_checks(config, registry, against is not None)
    earlier = _earlier_summary(out)
    mergeable = earlier.get("checks", {}) if config.checks is not None else {}
    checks, kept = plan_checks(requested, registry, mergeable, set(frame.columns))
    kept_columns = [c for name in kept for c in registry[name].columns]
    frame = frame[[*SCAN_SCHEMA.names, *kept_columns]]
    reference = load_reference(against, run_dir, on_progress, engine.name) if against else None
    context = AuditContext(
        frame=frame,
        cache=PixelCache(run_dir),
        run_dir=run_dir,
        settings=config,
        against=reference,
        on_progress=on_progress,
        engine=engine,
    )
    ordered, unsatisfied = order_checks(checks, set(frame.columns))
    outcomes, tables, columns = _run_checks(ordered, context)
    for check in unsatisfied:
        missing = sorted(set(check.needs) - set(frame.columns) - set(columns))
        outcomes.append(CheckOutcome(check.name, "skipped", error=f"needs {missing}"))
    fresh = dict(tables)  # written below; the kept checks' tables stay on disk as they are
    outcomes += [_carried_outcome(name, earlier["checks"][name], out, tables) for name in kept]
    order = list(registry)
    outcomes.sort(key=lambda o: order.index(o.name) if o.name in order else len(order))

    audited = pd.concat([frame, *columns.values()], axis=1)
    write_manifest(run_dir, audited, guard)
    out.mkdir(exist_ok=True)
    for name in earlier.get("checks", {}):  # tables of re-run checks are replaced, not left
        if name not in kept:
            for table in _tables_of(name, earlier["checks"][name], out):
                _table_path(out, table).unlink(missing_ok=True)
    for name, table in fresh.items():
        _write_table(out, name, table)
    # the settings this audit ran with, so `winnow compare` judges a pair as it did
    atomic_write_bytes(out / CONFIG_FILE, dump_config(config.with_check_defaults()).encode())
    against_name = reference.name if reference else None
    if reference is None and "leak" in kept:  # the kept leak table was made against it
        against_name = earlier.get("against")
        reference = _earlier_reference(against_name, run_dir)
    seconds = time.perf_counter() - started
    summary = audit_summary(audited, outcomes, against_name, seconds, run_dir, engine.name)
    atomic_write_bytes(
        out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    from winnow.audit.report import write_audit_report

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


def _earlier_summary(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def reference_folder(against: str | Path, run_dir: Path) -> Path | None:
    """Where the scanned test set of `--against` lies: the RUN folder given, or the scan an
    audit made of a data folder (RUN/against/<name>); None when neither exists."""
    for folder in (Path(against), Path(run_dir) / "against" / Path(against).name):
        if manifest_path(folder).exists():
            return folder
    return None


def _earlier_reference(name: str | None, run_dir: Path) -> ReferenceSet | None:
    """The test set a kept leak result was computed against, for the report's thumbnails."""
    folder = reference_folder(name, run_dir) if name else None
    if folder is None:
        return None
    try:
        return ReferenceSet(name=name, frame=read_manifest(folder), cache=PixelCache(folder))
    except (OSError, ValueError) as exc:
        log.warning("cannot reopen --against %s: %s", name, exc)
        return None


def _tables_of(name: str, info: dict[str, Any], out: Path) -> list[str]:
    """The tables an earlier audit's check wrote; audits before winnow recorded them are read
    by the file-naming convention (`leaks.csv` for leak, `<check>[_…].parquet`)."""
    if "tables" in info:
        return list(info["tables"])
    stems = [p.stem for p in out.glob("*.parquet")] + (["leaks"] if name == "leak" else [])
    return [s for s in stems if s == name or s.startswith(f"{name}_") or s == f"{name}s"]


def _table_path(out: Path, name: str) -> Path:
    return out / ("leaks.csv" if name == "leaks" else f"{name}.parquet")


def _write_table(out: Path, name: str, table: pd.DataFrame) -> None:
    path = _table_path(out, name)
    if name == "leaks":
        atomic_write_bytes(path, table.to_csv(index=False).encode())
    else:
        atomic_write_table(pa.Table.from_pandas(table, preserve_index=False), path)


def read_table(out: Path, name: str) -> pd.DataFrame | None:
    path = _table_path(out, name)
    if not path.exists():
        return None
    return pd.read_csv(path) if name == "leaks" else pd.read_parquet(path)


def _forward(progress: CheckProgress, report: Callable | None) -> Callable | None:
    """The `on_progress` a check sees: its own reports (anything with `done`, `total` and
    perhaps `description`) become its CheckProgress."""
    if report is None:
        return None

    def forward(state: Any) -> None:
        detail = getattr(state, "description", "") or ""
        report(
            dataclasses.replace(
                progress,
                done=getattr(state, "done", None),
                total=getattr(state, "total", None),
                detail=detail.removeprefix(f"{progress.check}: "),
            )
        )

    return forward


def _run_checks(
    ordered: list[Check], context: AuditContext
) -> tuple[list[CheckOutcome], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    outcomes, tables, columns = [], {}, {}
    frame = context.frame
    report = context.on_progress
    for position, check in enumerate(ordered, start=1):
        progress = CheckProgress(check.name, position, len(ordered))
        missing = [need for need in check.needs if need not in frame.columns]
        if missing:  # a check it depends on failed
            outcomes.append(CheckOutcome(check.name, "skipped", error=f"needs {missing}"))
            if report:
                report(dataclasses.replace(progress, state="skipped"))
            continue
        if report:
            report(progress)
        started = time.perf_counter()
        context = dataclasses.replace(context, on_progress=_forward(progress, report))
        try:
            result = check.run(context)
            validate_result(check, frame, result)
        except Exception as exc:  # noqa: BLE001 - one failing check must not stop the others
            log.warning("check %s failed: %s", check.name, exc)
            seconds = time.perf_counter() - started
            outcomes.append(
                CheckOutcome(
                    check.name,
                    "failed",
                    seconds,
                    error=f"{type(exc).__name__}: {exc}",
                    summary={"traceback": traceback.format_exc(limit=4)},
                )
            )
            if report:
                report(dataclasses.replace(progress, state="failed", seconds=seconds))
            continue
        columns[check.name] = result.columns
        frame = pd.concat([frame, result.columns], axis=1)
        context = dataclasses.replace(context, frame=frame)
        tables.update(result.tables)
        issues = int(result.columns[check.issue_column].sum())
        seconds = round(time.perf_counter() - started, 3)
        outcomes.append(
            CheckOutcome(
                check.name,
                "ok",
                seconds,
                issues,
                {**result.summary, "tables": sorted(result.tables)},
            )
        )
        if report:
            report(dataclasses.replace(progress, state="ok", seconds=seconds, issues=issues))
    return outcomes, tables, columns
