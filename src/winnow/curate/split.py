"""`winnow split`: stratified by label, grouped by duplicate group, deterministic for a seed.

Members of one duplicate group (exact or near copies, kept or not) always land in the
same split, so a copy can never sit in train while its twin is in test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from winnow.data.io import atomic_write_bytes
from winnow.data.lock import ManifestGuard, run_lock
from winnow.data.manifest import manifest_path, read_manifest, write_manifest
from winnow.errors import WinnowError


class SplitError(WinnowError, RuntimeError):
    """Split can't proceed; the message says why."""


def assign_splits(
    labels: np.ndarray,
    groups: np.ndarray,
    val: float,
    test: float,
    seed: int,
    counted: np.ndarray | None = None,
) -> np.ndarray:
    """'train'/'val'/'test' per item; items sharing a group id share a split.

    Groups are dealt per label (a group's label is its most common one among its counted
    items), largest first, each to the split furthest below its target share: stratified
    and exact up to one group per label and split. `counted` (default: every item) marks
    the items that will keep the split: a group weighs as many items as it has counted,
    so copies that `clean` dropped travel with their group without taking a place in the
    shares (a small class keeps its share of training images however many copies it had).
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise SplitError(f"val ({val}) and test ({test}) must be fractions with val + test < 1.")
    rng = np.random.default_rng(seed)
    weight = np.ones(len(labels), dtype=np.int64) if counted is None else counted.astype(np.int64)
    frame = pd.DataFrame({"label": labels, "group": groups, "weight": weight})
    sizes = frame.groupby("group")["weight"].sum()
    counted_rows = frame[frame["weight"] > 0]
    group_label = frame.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    group_label.update(
        counted_rows.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    )
    targets = {"train": 1 - val - test, "val": val, "test": test}
    assignment: dict[object, str] = {}
    for label in sorted(group_label.unique(), key=str):
        ids = group_label.index[group_label == label].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        ids = ids[np.argsort(-sizes.loc[ids].to_numpy(), kind="stable")]
        total = sizes.loc[ids].sum()
        filled = dict.fromkeys(targets, 0)
        for group_id in ids:
            deficit = {s: targets[s] * total - filled[s] for s in targets if targets[s] > 0}
            chosen = max(deficit, key=lambda s: (deficit[s], s == "train"))
            assignment[group_id] = chosen
            filled[chosen] += int(sizes.loc[group_id])
    return frame["group"].map(assignment).to_numpy(dtype=object)


def _group_keys(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """A key per row that duplicates share, and which column gave it.

    The audit's `duplicate_group` (exact and near copies) when the near-duplicate check
    ran; otherwise the exact-copy groups, or the scan's file digest, so byte copies at
    least never straddle splits. The split summary says which was used.
    """
    column = next(c for c in ("duplicate_group", "exact_duplicate_group", "sha256") if c in frame)
    digest = column == "sha256"
    shared = frame[column].astype(object if digest else "Int64")
    # a row without a shared value is a group of its own
    prefix = "s" if digest else "g"
    keys = np.where(shared.notna(), prefix + shared.astype(str), "r" + frame.index.astype(str))
    return keys, column


def run_split(run_dir: Path, val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict:
    """Add the `split` column to RUN's cleaned manifest; RUN's write lock is held."""
    run_dir = Path(run_dir)
    if not manifest_path(run_dir).exists():
        raise SplitError(
            f"No manifest at {manifest_path(run_dir)}. Run 'winnow scan DATA --out {run_dir}', "
            f"'winnow audit {run_dir}' and 'winnow clean {run_dir}' first."
        )
    with run_lock(run_dir, "split"):
        return _run_split(run_dir, val, test, seed)


def _run_split(run_dir: Path, val: float, test: float, seed: int) -> dict:
    guard = ManifestGuard.of(manifest_path(run_dir))
    frame = read_manifest(run_dir)
    if "keep" not in frame:
        if (run_dir / "clean_summary.json").exists():
            raise SplitError(
                f"The audit of {run_dir} changed since the last clean (an audit replaces the "
                f"clean's decisions). Run 'winnow clean {run_dir}' again, then split."
            )
        raise SplitError(f"{run_dir} has not been cleaned. Run 'winnow clean {run_dir}' first.")
    frame = frame.drop(columns=[c for c in ("split",) if c in frame])
    # every member of a duplicate group shares a split, dropped copies included
    usable = frame["status"] == "ok"
    group_key, grouped_by = _group_keys(frame)
    labels = frame["final_label"].astype(str).to_numpy()
    split = pd.Series(pd.NA, index=frame.index, dtype=object)
    keeps = frame["keep"].fillna(False).astype(bool).to_numpy()
    split[usable] = assign_splits(
        labels[usable], group_key[usable], val, test, seed, counted=keeps[usable.to_numpy()]
    )
    frame["split"] = split.where(frame["keep"].fillna(False), None)
    write_manifest(run_dir, frame, guard)
    kept = frame[frame["split"].notna()]
    summary = {
        "grouped_by": grouped_by,
        "seed": seed,
        "val": val,
        "test": test,
        "counts": kept["split"].value_counts().to_dict(),
        "per_class": {
            str(k): v
            for k, v in kept.groupby("final_label")["split"]
            .value_counts()
            .unstack(fill_value=0)
            .to_dict("index")
            .items()
        },
    }
    atomic_write_bytes(
        run_dir / "split_summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    return summary
