"""out_of_domain per kind of photograph, with one source held back (`build_photos.py`).

The shipped decision (`winnow.audit.style.domain.verdict`, dominant style detected, copies
sharing their style when the run was audited) on:

- the whole benchmark (drawings + every source): AUROC, precision and recall overall, and
  per source the AUROC of its photographs against the drawings and the share found;
- one source at a time (the drawings + that source only): what a folder whose only
  photographs are of that kind sees;
- the drawings alone, and the demo dataset without its photographs: the share flagged
  (nothing is there to find);
- the time: computing the statistics and deciding, against the scan's time.

`--hold-back SOURCE` keeps that source's numbers out of the printout (they are still
computed and saved, under `held_back`), so that a session tuning the detector never sees
them; `make bench` passes none.

Usage: python benchmarks/bench_photo_sources.py [--root .bench] [--hold-back vision]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from bench_results import save_result
from build_photos import build
from winnow.audit.style.domain import verdict
from winnow.audit.style.features import photo_like_features
from winnow.audit.style.selftrain import cache_loader, self_trained
from winnow.data.cache import PixelCache
from winnow.data.manifest import cache_positions, longer_sides, read_manifest
from winnow.data.scan import scan

SOURCES = ("stamps", "wallpapers", "vision", "faces")


def scanned(data: Path, run: Path) -> float | None:
    """Scan `data` into `run` unless done; the scan's seconds when it ran here."""
    if (run / "manifest.parquet").exists():
        return None
    started = time.perf_counter()
    scan(data, run)
    return time.perf_counter() - started


def features_of(run: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The readable rows of a scanned run, their photo statistics, and the seconds taken."""
    frame = read_manifest(run)
    rows = frame[(frame["status"] == "ok") & frame["cache_shard"].notna()].reset_index(drop=True)
    cache = PixelCache(run)
    started = time.perf_counter()
    where = cache_positions(rows)
    features = photo_like_features(
        cache.take(*where), longer_sides(rows), cache.background, cache.take_detail(*where)
    )
    return rows, features, time.perf_counter() - started


def _groups(rows: pd.DataFrame, keep: np.ndarray) -> pd.Series | None:
    if "duplicate_group" not in rows:
        return None
    return rows.loc[keep, "duplicate_group"].reset_index(drop=True)


SELF_TRAINING = True  # off with --statistics-only: the decision before self-training


def shipped(features: pd.DataFrame, groups: pd.Series | None, run: Path, rows: pd.DataFrame):
    """What the check decides with its default settings (`self_training` on)."""
    result = verdict(features, groups=groups)
    if not SELF_TRAINING:
        return result
    cache = PixelCache(run)
    return self_trained(result, features, cache_loader(cache, rows), cache.background, groups)


def judged(
    features: pd.DataFrame, rows: pd.DataFrame, keep: np.ndarray, truth: np.ndarray, run: Path
):
    """The shipped decision on the rows `keep`, with its overall numbers."""
    chosen = features[keep].reset_index(drop=True)
    started = time.perf_counter()
    result = shipped(chosen, _groups(rows, keep), run, rows[keep].reset_index(drop=True))
    seconds = time.perf_counter() - started
    flags, photos = result.flagged, truth[keep]
    numbers = {
        "images": int(keep.sum()),
        "photographs": int(photos.sum()),
        "style": result.style,
        "flagged": int(flags.sum()),
        "self_trained_seeds": result.self_trained,
        "decide_seconds": round(seconds, 2),
    }
    if 0 < photos.sum() < len(photos):
        numbers |= {
            "auroc": round(float(roc_auc_score(photos, result.likeness)), 4),
            "precision": round(float(precision_score(photos, flags, zero_division=0)), 3),
            "recall": round(float(recall_score(photos, flags)), 3),
        }
    return result, numbers


def per_source(result, source: np.ndarray, keep: np.ndarray) -> dict[str, dict]:
    """Per source among `keep`: its photographs' AUROC against the drawings, and recall."""
    kinds, likeness, flags = source[keep], result.likeness, result.flagged
    drawings = kinds == ""
    out = {}
    for kind in SOURCES:
        mine = kinds == kind
        if not mine.any():
            continue
        pair = mine | drawings
        out[kind] = {
            "photographs": int(mine.sum()),
            "auroc": round(float(roc_auc_score(mine[pair], likeness[pair])), 4),
            "found": int(flags[mine].sum()),
            "recall": round(float(flags[mine].mean()), 3),
        }
    return out


def supervised_ceiling(
    features: pd.DataFrame, truth: np.ndarray, source: np.ndarray, picture: np.ndarray
) -> dict:
    """What the same statistics allow when the labels are used (5-fold gradient boosting,
    out-of-fold scores; the crops of one source picture stay in one fold, so a crop is never
    judged by a model that saw its neighbours): AUROC per source against the drawings and
    the recall of each source at the threshold where overall precision reaches 0.9. Where
    this is high and the shipped decision low, the unsupervised decision is the limit, not
    the statistics."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import precision_recall_curve
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    score = cross_val_predict(
        model, features.to_numpy(), truth, cv=folds, method="predict_proba", groups=picture
    )
    score = score[:, 1]
    precision, _, cuts = precision_recall_curve(truth, score)
    cut = cuts[np.flatnonzero(precision[:-1] >= 0.9)[0]]
    out = {"auroc": round(float(roc_auc_score(truth, score)), 4)}
    out["recall_at_precision_0.9"] = round(float((score[truth] >= cut).mean()), 3)
    for kind in SOURCES:
        mine = source == kind
        if mine.any():
            pair = mine | ~truth
            out[kind] = {
                "auroc": round(float(roc_auc_score(mine[pair], score[pair])), 4),
                "recall_at_precision_0.9": round(float((score[mine] >= cut).mean()), 3),
            }
    return out


def demo_without_photos() -> dict:
    """The demo dataset with its photo-like images removed, scanned and audited as `winnow
    audit` does (near_duplicate first, so copies share their style)."""
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import run_audit
    from winnow.workflows.demo import make_demo_dataset

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        truth = make_demo_dataset(root / "demo")
        data = root / "demo" / "training"
        for name in truth["photo"]:
            (data / name).unlink()
        run = root / "run"
        scanned(data, run)
        checks = ["exact_duplicate", "near_duplicate", "out_of_domain"]
        run_audit(run, AuditConfig(checks=checks))
        frame = read_manifest(run)
        readable = frame[frame["status"] == "ok"]
        flagged = readable["is_out_of_domain_issue"].astype(bool)
        return {"images": len(readable), "flagged": int(flagged.sum())}


def benchmark(root: Path, hold_back: str | None = None) -> dict:
    """Every number of the module text; with `hold_back`, the supervised ceiling leaves that
    source out (the rest is computed on everything and hidden by `report`)."""
    out = build(root)
    truth_file = json.loads((out / "truth.json").read_text())
    run = root / "runs" / "photos"
    scan_seconds = scanned(out / "training", run)
    if "duplicate_group" not in read_manifest(run):  # as `winnow audit` decides: copies first
        from winnow.audit.config import AuditConfig
        from winnow.audit.runner import run_audit

        run_audit(run, AuditConfig(checks=["exact_duplicate", "near_duplicate"]))
    rows, features, feature_seconds = features_of(run)
    photos = truth_file["photos"].items()
    kinds = {path.split("/", 1)[1]: record["source"] for path, record in photos}
    source = rows["path"].map(kinds).fillna("").to_numpy()
    truth = source != ""
    everything = np.ones(len(rows), dtype=bool)
    result, overall = judged(features, rows, everything, truth, run)
    overall["per_source"] = per_source(result, source, everything)
    alone = {}
    for kind in SOURCES:
        keep = (source == kind) | ~truth
        single, numbers = judged(features, rows, keep, truth, run)
        alone[kind] = numbers
    drawings = judged(features, rows, ~truth, truth, run)[1]
    shown = source != hold_back if hold_back else np.ones(len(rows), dtype=bool)
    pictures = {path.split("/", 1)[1]: record.get("picture", path) for path, record in photos}
    picture = rows["path"].map(pictures).fillna(rows["path"]).to_numpy()
    ceiling = supervised_ceiling(features[shown], truth[shown], source[shown], picture[shown])
    manifest = read_manifest(run)
    return {
        "data": str(out / "training"),
        "audited": "duplicate_group" in rows,
        "whole": overall,
        "one_source": alone,
        "drawings_only": drawings,
        "supervised_ceiling": ceiling,
        "demo_without_photos": demo_without_photos(),
        "seconds": {
            "statistics": round(feature_seconds, 1),
            "decide": overall["decide_seconds"],
            "scan": None if scan_seconds is None else round(scan_seconds, 1),
        },
        "files": len(manifest),
    }


def report(result: dict, hidden: str | None) -> str:
    whole = result["whole"]
    lines = [
        f"{result['data']}: {whole['images']} readable images, {whole['photographs']} "
        f"photographs (audited, copies share style: {result['audited']})",
        # the overall numbers include every source: not shown while one is held back
        f"whole: style {whole['style']}, AUROC {whole['auroc']:.3f}, precision "
        f"{whole['precision']:.3f}, recall {whole['recall']:.3f}, flagged {whole['flagged']}"
        if not hidden
        else f"whole: style {whole['style']}",
        "source        photos  AUROC  found (recall) in the whole   alone: AUROC  P / R",
    ]
    for kind in SOURCES:
        if kind == hidden or kind not in whole["per_source"]:
            continue
        mine, alone = whole["per_source"][kind], result["one_source"][kind]
        lines.append(
            f"{kind:12s} {mine['photographs']:>6d}  {mine['auroc']:.3f}  {mine['found']:>4d} "
            f"({mine['recall']:.3f})            {alone['auroc']:.3f}  "
            f"{alone['precision']:.3f} / {alone['recall']:.3f}"
        )
    if hidden:
        lines.append(f"({hidden}: held back, not shown)")
    ceiling = result["supervised_ceiling"]
    lines.append(
        f"supervised ceiling (labels used, 5-fold gradient boosting on the same statistics): "
        f"AUROC {ceiling['auroc']:.3f}, recall at precision 0.9 "
        f"{ceiling['recall_at_precision_0.9']:.3f}; per source AUROC / recall: "
        + ", ".join(
            f"{kind} {ceiling[kind]['auroc']:.3f} / {ceiling[kind]['recall_at_precision_0.9']:.2f}"
            for kind in SOURCES
            if kind in ceiling and kind != hidden
        )
    )
    drawings, demo = result["drawings_only"], result["demo_without_photos"]
    lines.append(
        f"no photographs: drawings alone {drawings['flagged']} of {drawings['images']} flagged "
        f"({100 * drawings['flagged'] / drawings['images']:.2f} %); demo without its photos "
        f"{demo['flagged']} of {demo['images']}"
    )
    seconds = result["seconds"]
    lines.append(
        f"time: statistics {seconds['statistics']} s + decision {seconds['decide']} s; "
        f"scan {seconds['scan'] if seconds['scan'] is not None else '(scanned earlier)'} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".bench"))
    parser.add_argument("--hold-back", choices=SOURCES, default=None)
    parser.add_argument(
        "--statistics-only", action="store_true", help="the decision without self-training"
    )
    args = parser.parse_args()
    global SELF_TRAINING
    SELF_TRAINING = not args.statistics_only
    result = benchmark(args.root, args.hold_back)
    if args.hold_back:
        result["held_back"] = args.hold_back
    result["self_training"] = SELF_TRAINING
    save_result("photo_sources" if SELF_TRAINING else "photo_sources_statistics_only", result)
    print(report(result, args.hold_back))


if __name__ == "__main__":
    main()
