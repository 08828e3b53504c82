"""What rejecting each reported pair the ground truth does not know would cost in recall.

For every such pair (the pairs `bench_audit.py` draws its precision sheet from) and every
pixel test of verification, this counts the planted copies that pass every test today and
would fail if that test's limit were moved just far enough to reject the pair; the pair's
*cost* is the least of those counts, with the test that gives it. A false pair of cost 0
could go for free; one of cost 40 only by losing 40 planted copies (12 % of them) — by
moving one limit; rules that combine tests are not explored here.

Reads the latest audit of the benchmark run (run `bench_audit.py` or `make bench` first);
about a minute on 2 cores. Not part of `make bench`. Writes precision_cost.csv, one line per
pair, cheapest first.

Usage: python benchmarks/bench_precision_cost.py [--root .bench]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench_audit import _representatives, _strip
from bench_results import save_result
from bench_series_bound import SERIES
from winnow.cache import PixelCache
from winnow.duplicates import (
    Items,
    NearDuplicateSettings,
    Test,
    full_side,
    full_side_test,
    verification_tests,
)
from winnow.manifest import longer_sides, read_manifest
from winnow.similarity import pair_similarity, verification_view

COST_BUCKETS = (0, 2, 5, 10, 20)
# every unknown pair of the session-19 audit judged by eye: same (the same picture),
# lookalike (different files nobody can tell apart at 128 px), different
JUDGED = Path(__file__).parent / "judged_pairs.csv"


def test_values(
    items: Items, pairs: np.ndarray, settings: NearDuplicateSettings
) -> dict[str, Test]:
    """Every verification test on (first, second) row pairs, as `verify_pairs` runs them
    (the full-side changed area included, here for every pair, not only those that pass)."""
    views = [np.stack([verification_view(r) for r in items.regions(pairs[:, k])]) for k in (0, 1)]
    frame = items.frame
    resolution = np.minimum(
        longer_sides(frame.iloc[pairs[:, 0]]), longer_sides(frame.iloc[pairs[:, 1]])
    )
    tests = verification_tests(pair_similarity(*views, resolution=resolution), settings)
    tests["max_changed_area_full"] = full_side_test(
        full_side(*views, settings.batch_pairs // 4), settings
    )
    return tests


def lost_to_reject(planted: Test, value: float) -> int:
    """Planted copies (values of one test, all passing today) that a limit moved to reject
    `value` would reject too."""
    if planted.at_least:
        return int((planted.values <= value).sum())
    return int((planted.values >= value).sum())


def _precision(verdicts: pd.Series, kinds: tuple[str, ...]) -> float | None:
    """Share of the judged pairs whose verdict is one of `kinds`."""
    judged = verdicts[verdicts != "unjudged"]
    return round(float(judged.isin(kinds).mean()), 3) if len(judged) else None


def _tightened(
    kept: dict[str, Test], unknown: dict[str, Test], table: pd.DataFrame, most: int
) -> dict:
    """Every limit moved just far enough to reject each unknown pair whose cost is at most
    `most` by its cheapest test, all at once: the planted copies still passing every test,
    and the unknown pairs still reported with their verdicts."""
    planted_pass = np.ones(len(next(iter(kept.values())).values), bool)
    unknown_pass = np.ones(len(table), bool)
    for name in kept:
        chosen = table.index[(table["cost"] <= most) & (table["test"] == name)]
        if len(chosen) == 0:
            continue
        rejected = unknown[name].values[chosen]
        at_least = kept[name].at_least
        # strictly beyond the most lenient of the chosen pairs' values
        edge = rejected.max() if at_least else rejected.min()
        for passing, values in (
            (planted_pass, kept[name].values),
            (unknown_pass, unknown[name].values),
        ):
            passing &= values > edge if at_least else values < edge
    left = table["verdict"][unknown_pass]
    return {
        "rejecting_pairs_of_cost_at_most": most,
        "planted_pairs_still_passing": int(planted_pass.sum()),
        "unknown_pairs_left": int(unknown_pass.sum()),
        "verdicts_left": left.value_counts().to_dict(),
        "precision_same_or_lookalike": _precision(left, ("same", "lookalike")),
    }


def precision_cost(root: Path) -> tuple[dict, pd.DataFrame]:
    run = root / "runs" / "train"
    truth = json.loads((root / "clipart" / "truth.json").read_text())
    frame = read_manifest(run)
    settings = NearDuplicateSettings()
    items = Items(frame, PixelCache(run), np.zeros((0, 1)), np.zeros((0, 1)))
    row = {p: i for i, p in enumerate(frame["path"].astype(str))}
    rep_of = _representatives(frame.set_index("path"))

    table = pd.read_parquet(run / "audit" / "near_duplicate_pairs.parquet")
    reported = {tuple(sorted(p)) for p in zip(table.path_a, table.path_b, strict=True)}
    known = {
        tuple(sorted((rep_of[_strip(c)], rep_of[_strip(s)]))) for c, s, *_ in truth["near_pairs"]
    }
    unknown = sorted(reported - known)
    planted = np.array([(row[_strip(c)], row[_strip(s)]) for c, s, *_ in truth["near_pairs"]])

    planted_tests = test_values(items, planted, settings)
    passing = np.logical_and.reduce([t.passed() for t in planted_tests.values()])
    kept = {name: Test(t.values[passing], t.limit, t.at_least) for name, t in planted_tests.items()}
    unknown_tests = test_values(items, np.array([(row[a], row[b]) for a, b in unknown]), settings)

    lines = []
    for j, (a, b) in enumerate(unknown):
        costs = {
            name: lost_to_reject(kept[name], float(unknown_tests[name].values[j])) for name in kept
        }
        cheapest = min(costs, key=costs.get)
        lines.append(
            {
                "path_a": a,
                "path_b": b,
                "both_stars": SERIES in a and SERIES in b,
                "cost": costs[cheapest],
                "test": cheapest,
                "value": round(float(unknown_tests[cheapest].values[j]), 4),
                "limit": kept[cheapest].limit,
            }
        )
    table = pd.DataFrame(lines)
    judged = pd.read_csv(JUDGED).set_index(["path_a", "path_b"])["verdict"]
    table["verdict"] = [judged.get((a, b), "unjudged") for a, b in unknown]
    frontier = [_tightened(kept, unknown_tests, table, k) for k in COST_BUCKETS]
    table = table.sort_values(["cost", "path_a"], kind="stable")
    result = {
        "verdicts": table["verdict"].value_counts().to_dict(),
        "precision_same": _precision(table["verdict"], ("same",)),
        "precision_same_or_lookalike": _precision(table["verdict"], ("same", "lookalike")),
        "tightened": frontier,
        "unknown_pairs": len(unknown),
        "planted_pairs_passing_every_test": int(passing.sum()),
        "pairs_rejectable_at_cost": {
            f"<= {k}": int((table["cost"] <= k).sum()) for k in COST_BUCKETS
        },
        "star_pairs_cheapest_cost": int(table.loc[table.both_stars, "cost"].min())
        if table.both_stars.any()
        else None,
    }
    return result, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    result, table = precision_cost(args.root)
    out = args.root / "results"
    table.to_csv(out / "precision_cost.csv", index=False)
    save_result("precision_cost", result, results=out)
    for key, value in result.items():
        print(f"{key}: {value}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.head(40).to_string(index=False))


if __name__ == "__main__":
    main()
