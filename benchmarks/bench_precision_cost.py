"""What rejecting each reported pair the ground truth does not know would cost in recall.

For every such pair (the pairs `bench_audit.py` draws its precision sheet from) and every
pixel test of verification, this counts the planted copies that pass every test today and
would fail if that test's limit were moved just far enough to reject the pair; the pair's
*cost* is the least of those counts, with the test that gives it. A false pair of cost 0
could go for free; one of cost 40 only by losing 40 planted copies (12 % of them) — by
moving one limit. Then every limit moved at once, and a rule that combines every similarity
value, learned (logistic regression, cross-validated) from the pairs judged by eye.

Reads the latest audit of the benchmark run (run `bench_audit.py` or `make bench` first);
about 10 s on 2 cores. Not part of `make bench`. Writes precision_cost.csv, one line per
pair, cheapest first.

Usage: python benchmarks/bench_precision_cost.py [--root .bench]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench_audit import _representatives, _strip, reported_pairs
from bench_results import save_result
from bench_series_bound import SERIES
from winnow.audit.neardup.alignment import verification_view
from winnow.audit.neardup.search import Items, NearDuplicateSettings
from winnow.audit.neardup.similarity import PairSimilarity, pair_similarity
from winnow.audit.neardup.verify import Test, full_side, full_side_test, verification_tests
from winnow.data.cache import PixelCache
from winnow.data.manifest import longer_sides, read_manifest

COST_BUCKETS = (0, 2, 5, 10, 20)
# every unknown pair of the session-19 audit judged by eye: same (the same picture),
# lookalike (different files nobody can tell apart at 128 px), different
JUDGED = Path(__file__).parent / "judged_pairs.csv"


def similarities(
    items: Items, pairs: np.ndarray, settings: NearDuplicateSettings
) -> tuple[PairSimilarity, PairSimilarity]:
    """(row, row) pairs compared as `verify_pairs` compares them: at the verification side
    and, here for every pair (not only those that pass), at the cache's full side."""
    views = [np.stack([verification_view(r) for r in items.regions(pairs[:, k])]) for k in (0, 1)]
    frame = items.frame
    resolution = np.minimum(
        longer_sides(frame.iloc[pairs[:, 0]]), longer_sides(frame.iloc[pairs[:, 1]])
    )
    alike = pair_similarity(*views, resolution=resolution)
    return alike, full_side(*views, settings.batch_pairs // 4, colour=True)


def test_values(
    alike: PairSimilarity, sharp: PairSimilarity, settings: NearDuplicateSettings
) -> dict[str, Test]:
    """Every verification test, the full-side changed area included."""
    tests = verification_tests(alike, settings)
    tests["max_changed_area_full"] = full_side_test(sharp, settings)
    return tests


def combined_rule(planted: np.ndarray, same: np.ndarray, different: np.ndarray) -> list[dict]:
    """A logistic regression on every similarity value at both sides (and their logs),
    cross-validated (5 folds): how many pairs judged different it rejects when it may
    lose 1, 2 or 5 % of the pairs it must keep (planted copies that pass every test, and
    pairs judged the same picture)."""
    keep = np.vstack([planted, same])
    features = np.vstack([keep, different])
    features = np.c_[features, np.log1p(100 * np.abs(features))]
    wanted = np.r_[np.ones(len(keep)), np.zeros(len(different))]
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000)
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    score = cross_val_predict(model, features, wanted, cv=folds, method="predict_proba")[:, 1]
    rows = []
    for share in (0.01, 0.02, 0.05):
        edge = np.quantile(score[wanted == 1], share)
        rows.append(
            {
                "may_lose": share,
                "different_rejected": int((score[wanted == 0] < edge).sum()),
                "different": len(different),
                "planted_lost": int((score[: len(planted)] < edge).sum()),
            }
        )
    return rows


def _features(alike: PairSimilarity, sharp: PairSimilarity) -> np.ndarray:
    return np.stack(list(alike) + list(sharp), axis=1).astype(np.float64)


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

    _, unknown = reported_pairs(run, rep_of, truth)
    planted = np.array([(row[_strip(c)], row[_strip(s)]) for c, s, *_ in truth["near_pairs"]])

    planted_alike = similarities(items, planted, settings)
    planted_tests = test_values(*planted_alike, settings)
    passing = np.logical_and.reduce([t.passed() for t in planted_tests.values()])
    kept = {name: Test(t.values[passing], t.limit, t.at_least) for name, t in planted_tests.items()}
    unknown_alike = similarities(items, np.array([(row[a], row[b]) for a, b in unknown]), settings)
    unknown_tests = test_values(*unknown_alike, settings)

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
    values = _features(*unknown_alike)
    combined = combined_rule(
        _features(*planted_alike)[passing],
        values[(table["verdict"] == "same").to_numpy()],
        values[(table["verdict"] == "different").to_numpy()],
    )
    table = table.sort_values(["cost", "path_a"], kind="stable")
    result = {
        "verdicts": table["verdict"].value_counts().to_dict(),
        "precision_same": _precision(table["verdict"], ("same",)),
        "precision_same_or_lookalike": _precision(table["verdict"], ("same", "lookalike")),
        "tightened": frontier,
        "combined_rule": combined,
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
