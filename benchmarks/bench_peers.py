"""Duplicate finders side by side on the benchmark training folder: winnow, cleanvision and
imagededup (PHash), each run as a user would, timed with the peak RSS of its process tree.

- winnow: `winnow scan DATA --out RUN` then `winnow audit RUN --checks
  exact_duplicate,near_duplicate`, on a fresh RUN (the time is both commands together).
- the peers: benchmarks/peers_dedup.py in `.bench/peers-venv` (pinned in
  peers-requirements.txt; created on first use). A peer that crashes on the raw folder is
  recorded with its error and run again on a copy (hard links) without the files that
  winnow's scan found unreadable; if it crashes again, without those and the pictures over
  Pillow's decompression-bomb limit too (legitimate large clipart), so it still gets a
  recall.

Scoring, the same for every tool, against the planted ground truth (truth.json):
- exact recall: renamed byte-identical copies the tool links to their source;
- near recall: planted near copies (resized, cropped, re-encoded, brightness-shifted)
  linked to their source;
- pairs unknown to the truth: every other pair the tool reports; "not identical" leaves
  out pairs whose decoded pixels are identical (natural exact duplicates: never false).
  Openclipart has natural near duplicates too, so these are not all false; for winnow a
  random 50 of them are judged by eye (bench_audit's contact sheet).

Usage: python benchmarks/bench_peers.py [--tools cleanvision imagededup winnow]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from bench_results import save_result
from bench_scan import _run_measured, list_files, warm_page_cache, winnow_exe
from venvs import venv_python

ROOT = Path(".bench")
VENV = ROOT / "peers-venv"
HERE = Path(__file__).parent
TOOLS = ("winnow", "cleanvision", "imagededup")
PIL_BOMB_LIMIT = 2 * 89_478_485  # Pillow raises DecompressionBombError above this


def peers_python() -> Path:
    requirements = HERE / "peers-requirements.txt"
    return venv_python(
        VENV, ["--no-deps", "-r", str(requirements)], "peers' (cleanvision, imagededup)"
    )


def run_winnow(data: Path, tmp: Path) -> dict:
    from winnow.data.manifest import read_manifest

    run = tmp / "winnow-run"
    exe = winnow_exe()
    scan_s, scan_rss, _ = _run_measured([exe, "scan", str(data), "--out", str(run)])
    checks = "exact_duplicate,near_duplicate"
    audit_s, audit_rss, _ = _run_measured([exe, "audit", str(run), "--checks", checks])
    frame = read_manifest(run)
    pixels = frame["width"].astype("float64") * frame["height"].astype("float64")
    pairs: set[tuple[str, str]] = set()
    for column in ("exact_duplicate_group", "duplicate_group"):
        for _, members in frame.dropna(subset=[column]).groupby(column)["path"]:
            pairs.update(itertools.combinations(sorted(members), 2))
    near = pd.read_parquet(run / "audit" / "near_duplicate_pairs.parquet")
    pairs.update(tuple(sorted(p)) for p in zip(near.path_a, near.path_b, strict=True))
    return {
        "tool": "winnow",
        "error": None,
        "seconds": round(scan_s + audit_s, 2),
        "scan_seconds": round(scan_s, 2),
        "audit_seconds": round(audit_s, 2),
        "peak_rss_mb": round(max(scan_rss, audit_rss) / 2**20),
        "pairs": sorted(pairs),
        "bad_files": sorted(frame.loc[frame["status"] != "ok", "path"]),
        "bomb_files": sorted(frame.loc[pixels > PIL_BOMB_LIMIT, "path"]),
        "pixel_hash": dict(zip(frame["path"], frame["pixel_sha256"], strict=True)),
    }


def run_peer(tool: str, data: Path, tmp: Path) -> dict:
    out = tmp / f"{tool}.json"
    command = [str(peers_python()), str(HERE / "peers_dedup.py"), tool, str(data), str(out)]
    wall, rss, _ = _run_measured(command)
    result = json.loads(out.read_text())
    result["seconds_inside"] = result["seconds"]  # without interpreter start and imports
    result["seconds"] = round(wall, 2)
    result["peak_rss_mb"] = round(rss / 2**20)
    return result


def without_bad_files(data: Path, bad: list[str], dest: Path) -> Path:
    """A hard-linked copy of `data` without the files in `bad` (paths relative to data)."""
    skip = set(bad)
    for source in data.rglob("*"):
        relative = source.relative_to(data).as_posix()
        if source.is_file() and relative not in skip:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
    return dest


def score(result: dict, truth: dict, pixel_hash: dict[str, str]) -> dict:
    pairs = {tuple(p) for p in result["pairs"]}

    def strip(path: str) -> str:
        return path.split("/", 1)[1]

    def linked(items: list) -> int:
        return sum(tuple(sorted((strip(a), strip(b)))) in pairs for a, b, *_ in items)

    planted = {
        tuple(sorted((strip(a), strip(b))))
        for a, b, *_ in truth["renamed_copies"] + truth["near_pairs"]
    }
    unknown = pairs - planted
    different = [p for p in unknown if pixel_hash.get(p[0], p[0]) != pixel_hash.get(p[1], p[1])]
    return {
        "exact_recall": round(linked(truth["renamed_copies"]) / len(truth["renamed_copies"]), 3),
        "near_recall": round(linked(truth["near_pairs"]) / len(truth["near_pairs"]), 3),
        "reported_pairs": len(pairs),
        "pairs_unknown_to_truth": len(unknown),
        "unknown_not_identical": len(different),
    }


def bench_peers(data: Path, truth: dict, tools: tuple[str, ...] = TOOLS) -> dict:
    warm_page_cache(list_files(data))
    results = {}
    with tempfile.TemporaryDirectory(prefix="winnow-peers-") as tmp_name:
        tmp = Path(tmp_name)
        ours = run_winnow(data, tmp)  # its scan also names the unreadable and huge files
        bad, bombs = ours["bad_files"], ours["bomb_files"]
        retries = [
            (bad, f"without the {len(bad)} unreadable files"),
            (bad + bombs, f"without those and the {len(bombs)} pictures over Pillow's limit"),
        ]
        for tool in tools:
            if tool == "winnow":
                result = ours
            else:
                print(f"running {tool} …", flush=True)
                result = run_peer(tool, data, tmp)
                crashes = []
                for attempt, (skip, why) in enumerate(retries):
                    if not result["error"]:
                        break
                    crashes.append(result["error"])
                    folder = without_bad_files(data, skip, tmp / f"{tool}-retry{attempt}")
                    result = {**run_peer(tool, folder, tmp), "note": f"re-run {why}"}
                result["crashes"] = crashes
            drop = ("pairs", "exact_pairs", "bad_files", "bomb_files", "pixel_hash")
            summary = {k: v for k, v in result.items() if k not in drop}
            results[tool] = {**summary, **score(result, truth, ours["pixel_hash"])}
    return {"files": len(list_files(data)), "tools": results}


def report(result: dict) -> str:
    lines = [
        f"duplicate finders on the benchmark training folder ({result['files']} files)",
        f"  {'tool':<12} {'seconds':>8} {'peak RSS':>9} {'exact rec':>9} {'near rec':>9} "
        f"{'pairs':>9} {'unknown':>9} {'not ident':>9}",
    ]
    notes = []
    for tool, r in result["tools"].items():
        lines.append(
            f"  {tool:<12} {r['seconds']:8.1f} {r['peak_rss_mb']:6d} MB {r['exact_recall']:9.3f} "
            f"{r['near_recall']:9.3f} {r['reported_pairs']:9d} "
            f"{r['pairs_unknown_to_truth']:9d} {r['unknown_not_identical']:9d}"
        )
        for crash in r.get("crashes", []):
            notes.append(f"  {tool} crashed: {crash[:110]}")
        if r.get("note"):
            notes.append(f"  {tool}: {r['note']}")
        if r.get("error"):
            notes.append(f"  {tool} failed: {r['error'][:110]}")
    return "\n".join(lines + notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    args = parser.parse_args()
    data = ROOT / "clipart"
    truth = json.loads((data / "truth.json").read_text())
    result = bench_peers(data / "training", truth, tuple(args.tools))
    save_result("peers", result)
    print(report(result))
