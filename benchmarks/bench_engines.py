"""Engines side by side: `winnow scan` and `winnow audit --against` on the project
benchmark with the local engine in one process (`--workers 1`), the local engine's worker
pool (the default) and `--engine ray` (a local Ray started by each command), each command
in a fresh process, one after the other; wall time and peak RSS per command, and whether
the three give the same manifest and audit tables.

    python benchmarks/bench_engines.py [--data .bench/clipart] [--out .bench/runs/engines]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench_results import save_result
from winnow.data.manifest import read_manifest

WINNOW = str(Path(sys.executable).parent / "winnow")
GNU_TIME = Path("/usr/bin/time")
PLACEMENT = ("cache_shard", "cache_index")  # where a row's pixels lie: decoding order decides
SETUPS = {
    "one process": ["--workers", "1"],
    "local pool": [],
    "ray": ["--engine", "ray"],
}


def _timed(command: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of one command, in its own process (GNU time; the
    peak is None where /usr/bin/time is missing)."""
    report = Path(tempfile.gettempdir()) / f"winnow-bench-engines-{time.time_ns()}.time"
    timer = ["/usr/bin/time", "-o", str(report), "-f", "%M"] if GNU_TIME.exists() else []
    started = time.perf_counter()
    done = subprocess.run([*timer, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    peak = None
    if timer:
        peak = round(int(report.read_text().split()[-1]) / 1024)
        report.unlink()
    return {"seconds": round(seconds, 1), "peak_mb": peak}


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    audit = run / "audit"
    tables = {path.name: pd.read_parquet(path) for path in audit.glob("*.parquet")}
    tables.update({path.name: pd.read_csv(path) for path in audit.glob("*.csv")})
    return tables


def same_results(first: Path, second: Path) -> dict:
    """Manifest columns (all but where pixels lie) and audit tables that differ."""
    a = read_manifest(first).set_index("path")
    b = read_manifest(second).set_index("path").loc[a.index]
    columns = [c for c in a.columns if c not in PLACEMENT]
    differing = [c for c in columns if not a[c].equals(b[c])]
    ta, tb = _tables(first), _tables(second)
    tables = {
        name: len(table)
        for name, table in ta.items()
        if name in tb and table.reset_index(drop=True).equals(tb[name].reset_index(drop=True))
    }
    return {
        "rows": len(a),
        "columns_compared": len(columns),
        "columns_differing": differing,
        "equal_tables": tables,
        "tables_differing": sorted(set(ta) ^ set(tb) | (set(ta) & set(tb)) - set(tables)),
    }


def bench_engines(data: Path, out: Path) -> dict:
    result: dict = {"setups": {}}
    for name, flags in SETUPS.items():
        run = out / name.replace(" ", "-")
        subprocess.run(["rm", "-rf", str(run)], check=True)
        scan = _timed([WINNOW, "scan", str(data / "training"), "--out", str(run), *flags])
        audit = _timed(
            [WINNOW, "audit", str(run), "--against", str(data / "test")]
            + ["--skip", "label_issue", *flags]
        )
        summary = json.loads((run / "audit" / "summary.json").read_text())
        checks = {k: v["seconds"] for k, v in summary["checks"].items()}
        result["setups"][name] = {
            "scan": scan,
            "audit": audit,
            "audit_files_per_second": round(summary["dataset"]["files"] / audit["seconds"], 1),
            "check_seconds": checks,
        }
        print(name, scan, audit, checks, flush=True)
    first = out / "one-process"
    result["equality"] = {
        name: same_results(first, out / name.replace(" ", "-")) for name in list(SETUPS)[1:]
    }
    return result


def report(result: dict) -> str:
    lines = ["engines (scan, audit --against, 2 cores):"]
    for name, setup in result["setups"].items():
        lines.append(
            f"  {name:<12} scan {setup['scan']['seconds']} s, audit {setup['audit']['seconds']} s "
            f"({setup['audit_files_per_second']} files/s, peak {setup['audit']['peak_mb']} MB)"
        )
    for name, same in result["equality"].items():
        differing = same["columns_differing"] + same["tables_differing"]
        verdict = f"DIFFER: {differing}" if differing else "identical"
        lines.append(f"  {name} vs one process: {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".bench/clipart"))
    parser.add_argument("--out", type=Path, default=Path(".bench/runs/engines"))
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    outcome = bench_engines(args.data, args.out)
    save_result("engines", outcome, started)
    print(report(outcome))
