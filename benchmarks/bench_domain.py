"""Ablation of the out_of_domain check on the benchmark: which evidence finds the photographs.

For each feature, each feature family and their combination: AUROC of the score, and
precision / recall at the automatic threshold (`tail_mixture`). For the combination, the
decision rules are compared too (tail mixture, isolation forest, K-means split). Ground
truth is truth.json's `photos` (drawings judged by eye were excluded when it was built).

Usage: python benchmarks/bench_domain.py [--run RUN] [--truth TRUTH_JSON]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from winnow.cache import PixelCache
from winnow.domain import isolation_forest, kmeans_split, photo_likeness, robust_z, tail_mixture
from winnow.manifest import longer_sides, read_manifest
from winnow.photo_features import FAMILY_FEATURES, FEATURES, photo_like_features


def _row(name: str, truth: np.ndarray, score: np.ndarray | None, flags: np.ndarray) -> dict:
    return {
        "evidence": name,
        "auroc": round(float(roc_auc_score(truth, score)), 4) if score is not None else None,
        "flagged": int(flags.sum()),
        "precision": round(float(precision_score(truth, flags, zero_division=0)), 3),
        "recall": round(float(recall_score(truth, flags)), 3),
    }


def ablation(run: Path, truth_file: Path) -> dict:
    frame = read_manifest(run)
    rows = frame[(frame["status"] == "ok") & frame["cache_shard"].notna()]
    photos = {p.split("/", 1)[1] for p in json.loads(truth_file.read_text())["photos"]}
    truth = rows["path"].isin(photos).to_numpy()
    cache = PixelCache(run)
    started = time.perf_counter()
    where = (rows["cache_shard"].to_numpy(np.int64), rows["cache_index"].to_numpy(np.int64))
    longer = longer_sides(rows)
    features = photo_like_features(
        cache.take(*where), longer, cache.background, cache.take_detail(*where)
    )
    seconds = time.perf_counter() - started
    z = robust_z(features)
    table = []
    for column in FEATURES:
        table.append(
            _row(column, truth, z[column].to_numpy(), tail_mixture(z[column].to_numpy()).flagged)
        )
    for family, members in FAMILY_FEATURES.items():
        score = photo_likeness(z[list(members)])
        table.append(_row(f"family: {family}", truth, score, tail_mixture(score).flagged))
    combined = photo_likeness(z)
    decision = tail_mixture(combined)
    table.append(_row("combined (shipped): tail mixture", truth, combined, decision.flagged))
    table.append(_row("combined: isolation forest", truth, None, isolation_forest(z.to_numpy())))
    table.append(_row("combined: K-means split", truth, None, kmeans_split(z.to_numpy())))
    return {
        "images": int(len(rows)),
        "photographs": int(truth.sum()),
        "feature_seconds": round(seconds, 2),
        "contamination_estimate": round(decision.contamination, 4),
        "true_contamination": round(float(truth.mean()), 4),
        "table": table,
    }


def report(result: dict) -> str:
    lines = [
        f"out_of_domain ablation: {result['images']} images, {result['photographs']} photographs "
        f"(features {result['feature_seconds']} s; contamination estimate "
        f"{100 * result['contamination_estimate']:.1f} % vs true "
        f"{100 * result['true_contamination']:.1f} %)",
        f"{'evidence':36s} {'AUROC':>6s} {'flagged':>8s} {'precision':>9s} {'recall':>7s}",
    ]
    for row in result["table"]:
        auroc = f"{row['auroc']:.3f}" if row["auroc"] is not None else "—"
        lines.append(
            f"{row['evidence']:36s} {auroc:>6s} {row['flagged']:>8d} "
            f"{row['precision']:>9.3f} {row['recall']:>7.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(".bench/runs/train"))
    parser.add_argument("--truth", type=Path, default=Path(".bench/clipart/truth.json"))
    args = parser.parse_args()
    result = ablation(args.run, args.truth)
    print(report(result))


if __name__ == "__main__":
    main()
