"""What an audit found, as summary.json holds it, and how the CLI and report say its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.data.scan import companions


@dataclass
class CheckOutcome:
    name: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    issues: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def kept_checks(summary: dict[str, Any]) -> list[str]:
    """The checks an audit kept from an earlier one instead of running them."""
    return [name for name, info in summary["checks"].items() if info.get("from_earlier_audit")]


def audit_time(summary: dict[str, Any]) -> str:
    """How long the audit took, as the report's header and the CLI say it: this audit's own
    wall time and, when it kept checks from an earlier audit, which ones it ran and the time
    of the audit as a whole (the kept checks' recorded times added), so "0.1 s" after
    `--checks odd_size` does not read as the cost of finding the duplicates."""
    checks = summary["checks"]
    kept = kept_checks(summary)
    on = f" on {summary['engine']}" if summary.get("engine", "local") != "local" else ""
    if not kept:
        return f"{summary['seconds']} s{on}"
    ran = [name for name in checks if name not in kept]
    earlier = sum(float(checks[name].get("seconds") or 0.0) for name in kept)
    return (
        f"this audit {summary['seconds']} s{on}, re-ran {', '.join(ran) or 'no check'}; "
        f"{len(kept)} kept from an earlier audit ({earlier:.1f} s when they ran; "
        f"{summary['seconds'] + earlier:.1f} s in all)"
    )


def dataset_summary(frame: pd.DataFrame) -> dict[str, Any]:
    ok = frame[frame["status"] == "ok"]
    counts = ok["label"].value_counts()
    sides = np.minimum(ok["width"].to_numpy(float), ok["height"].to_numpy(float))
    return {
        "files": int(len(frame)),
        "ok": int(len(ok)),
        "status_counts": frame["status"].value_counts().to_dict(),
        # not images and not named like images (text, sound, vector files): companions
        "other_files": int(companions(frame).sum()),
        "classes": int(len(counts)),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "imbalance_ratio": float(counts.max() / counts.min()) if len(counts) else None,
        "min_side_quantiles": {
            q: float(np.quantile(sides, float(q))) for q in ("0.01", "0.5", "0.99")
        }
        if len(sides)
        else {},
    }


def audit_summary(
    frame: pd.DataFrame,
    outcomes: list[CheckOutcome],
    against: str | None,
    seconds: float,
    run_dir: Path,
    engine: str = "local",
) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "seconds": round(seconds, 2),
        "engine": engine,  # where the per-image work ran (winnow.data.engine)
        "against": against,
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
