"""Paired comparison of classifiers on one test folder: what difference the folder can tell.

Each system is one or more prediction files of the same test folder (one per seed):
winnow's `test_predictions.csv` (bench_train) or `predictions.csv` (`winnow evaluate`),
or a baseline's result JSON with a `predictions` mapping (plain_torch.py). The truth is
each file's class folder. For every system: macro- and micro-F1 (mean over its seeds),
and macro-F1 over the classes with at least --min-support test files. Against the first
system: the difference of each score and its 95 % interval by a paired bootstrap over the
test files (the same resampled files for every system and seed), so a difference whose
interval holds 0 is one this folder cannot tell from chance.

Usage: python benchmarks/paired.py TEST_DIR NAME=FILE[,FILE...] NAME=FILE[,FILE...] ...
           [--resamples 2000] [--min-support 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score


def truth(test_dir: Path) -> pd.Series:
    """Every file of TEST_DIR (path relative to it) → its class folder."""
    files = sorted(p for p in test_dir.rglob("*") if p.is_file())
    return pd.Series({p.relative_to(test_dir).as_posix(): p.parent.name for p in files})


def predictions(file: Path) -> pd.Series:
    """path → predicted class, from a winnow CSV or a baseline's JSON."""
    if file.suffix == ".json":
        return pd.Series(json.loads(file.read_text())["predictions"], dtype=object)
    frame = pd.read_csv(file)
    return frame.set_index("path")["predicted"].astype(object)


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list, frequent: list) -> np.ndarray:
    """(macro-F1, micro-F1, macro-F1 over the frequent classes) on the classes present."""
    return np.array(
        [
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
            f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0),
            f1_score(y_true, y_pred, labels=frequent, average="macro", zero_division=0),
        ]
    )


def compare(
    test_dir: Path, systems: dict[str, list[Path]], resamples: int, min_support: int
) -> pd.DataFrame:
    labels_of = truth(test_dir)
    runs = {name: [predictions(f) for f in files] for name, files in systems.items()}
    common = labels_of.index
    for preds in runs.values():
        for p in preds:
            common = common.intersection(p.index)
    y_true = labels_of[common].to_numpy()
    codes = {c: i for i, c in enumerate(sorted(set(labels_of)))}
    encoded_true = np.array([codes[c] for c in y_true])
    encoded = {
        name: [np.array([codes.get(c, -1) for c in p[common]]) for p in preds]
        for name, preds in runs.items()
    }
    counts = pd.Series(encoded_true).value_counts()
    labels = sorted(counts.index)
    frequent = sorted(counts.index[counts >= min_support])
    point = {
        name: np.mean([scores(encoded_true, p, labels, frequent) for p in preds], axis=0)
        for name, preds in encoded.items()
    }
    rng = np.random.default_rng(0)
    n = len(encoded_true)
    draws = {name: [] for name in encoded}
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        t = encoded_true[pick]
        for name, preds in encoded.items():
            draws[name].append(np.mean([scores(t, p[pick], labels, frequent) for p in preds], 0))
    first = next(iter(encoded))
    rows = []
    for name in encoded:
        row = {
            "system": name,
            "seeds": len(encoded[name]),
            "files": n,
            "macro_f1": point[name][0],
            "micro_f1": point[name][1],
            f"macro_f1_classes_ge_{min_support}": point[name][2],
        }
        if name != first:
            diff = np.array(draws[name]) - np.array(draws[first])
            low, high = np.percentile(diff, [2.5, 97.5], axis=0)
            delta = point[name] - point[first]
            for i, key in enumerate(("macro", "micro", "frequent_macro")):
                row[f"{key}_diff_vs_{first}"] = f"{delta[i]:+.3f} [{low[i]:+.3f}, {high[i]:+.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("systems", nargs="+", help="NAME=FILE[,FILE...]")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--min-support", type=int, default=10)
    args = parser.parse_args()
    systems = {}
    for spec in args.systems:
        name, _, files = spec.partition("=")
        systems[name] = [Path(f) for f in files.split(",") if f]
    table = compare(args.test_dir, systems, args.resamples, args.min_support)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
