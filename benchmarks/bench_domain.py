"""Ablation of the out_of_domain check on the benchmark: which evidence finds the photographs.

For each feature, each feature family, the learned representation
(`winnow.audit.style.denoiser`: the noise a denoiser trained on the benchmark's own detail
crops finds) and the combinations:
AUROC of the score, and precision / recall at the automatic threshold (`tail_mixture`). For
the combination, the decision rules are compared too (tail mixture, isolation forest,
K-means split). A supervised model trained on the labels, on the same evidence, gives the
ceiling any unsupervised decision could reach. Drawings saved as JPEG are counted apart:
the share of them each score flags (ringing must not read as photographic noise). Ground
truth is truth.json's `photos` (drawings judged by eye were excluded when it was built).

The shipped decision lets copies share their style (`winnow.audit.style.domain.shared_by_copies`,
with the duplicate groups of the run's last audit): on this benchmark every drawing saved as
JPEG is a planted copy of a PNG drawing, so that row's JPEG column measures the rule, not
how the statistics read JPEG; the row above it (features alone) does.

Both ways (`both_ways`): the shipped decision (`winnow.audit.style.domain.verdict`, dominant style
detected) on subsets of the same images — the drawings alone and the photographs alone
(a clean dataset: what it flags is lost for nothing), and the photographs with 3, 10 and
20 % drawings mixed in (3 random draws each), where the drawings are out of domain.

Drawings saved as JPEG with no lossless twin (`jpeg_without_twins`): the benchmark's own JPEG
drawings are all planted copies of PNG drawings, which the shipped rule clears through
their duplicate group. So 300 PNG drawings that belong to no duplicate group are
re-encoded as JPEG at their own size (quality 60–90, white under transparency), scanned
like the run, and put in place of their originals; the share of them flagged is what a
crawled folder's JPEG drawings face.

Usage: python benchmarks/bench_domain.py [--run RUN] [--truth TRUTH_JSON]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from bench_results import save_result
from winnow.audit.checks.out_of_domain import OutOfDomainSettings
from winnow.audit.style.denoiser import fit_denoiser, noise_level, training_sample
from winnow.audit.style.domain import (
    Verdict,
    isolation_forest,
    kmeans_split,
    median_likeness,
    robust_z,
    tail_mixture,
    verdict,
)
from winnow.audit.style.features import FAMILY_FEATURES, FEATURES, photo_like_features
from winnow.audit.style.selftrain import cache_loader, self_trained
from winnow.data.cache import PixelCache
from winnow.data.manifest import cache_positions, longer_sides, read_manifest


def _row(
    name: str,
    truth: np.ndarray,
    score: np.ndarray | None,
    flags: np.ndarray,
    jpeg: np.ndarray,
    top: int = 0,
) -> dict:
    """One line of the ablation. With `top` (the shipped decision's flag count), also the
    precision of the `top` highest scores: every score judged at the same flag count, where
    its own automatic threshold flags nothing or far too much."""
    drawings_jpeg = jpeg & ~truth
    at_top = None
    if score is not None and top:
        at_top = round(float(truth[np.argsort(-score, kind="stable")[:top]].mean()), 3)
    return {
        "evidence": name,
        "auroc": round(float(roc_auc_score(truth, score)), 4) if score is not None else None,
        "precision_at_shipped_count": at_top,
        "flagged": int(flags.sum()),
        "precision": round(float(precision_score(truth, flags, zero_division=0)), 3),
        "recall": round(float(recall_score(truth, flags)), 3),
        # evaluation only: the format is never evidence
        "jpeg_drawings_flagged": _share(flags, drawings_jpeg),
        # crawled photographs are mostly JPEG, the benchmark's mostly PNG: recall for each
        "recall_jpeg_photos": _share(flags, truth & jpeg),
        "recall_png_photos": _share(flags, truth & ~jpeg),
    }


def _share(values: np.ndarray, where: np.ndarray) -> float | None:
    """The share of `values` that is true among `where` (None when `where` is empty)."""
    return round(float(values[where].mean()), 3) if where.any() else None


def supervised_ceiling(features: np.ndarray, truth: np.ndarray, seed: int = 0) -> dict:
    """What the evidence allows at best: gradient boosting *trained on the labels* (5-fold,
    each image scored by a model that did not see it) on the same features. A ceiling for
    any unsupervised decision on these features, not a detector: the check never sees labels.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    score = cross_val_predict(model, features, truth, cv=folds, method="predict_proba")[:, 1]
    ranked = truth[np.argsort(-score, kind="stable")]
    found = np.cumsum(ranked)
    precision = found / np.arange(1, len(ranked) + 1)
    at_recall = precision[np.searchsorted(found, 0.9 * truth.sum())]
    reach = found[precision >= 0.9]
    recall_at = float(reach.max() / truth.sum()) if len(reach) else 0.0
    return {
        "auroc": round(float(roc_auc_score(truth, score)), 4),
        "precision_at_recall_0.9": round(float(at_recall), 3),
        "recall_at_precision_0.9": round(recall_at, 3),
    }


def what_clean_does(shipped: Verdict, truth: np.ndarray) -> dict:
    """The shipped flags split as `winnow clean` acts on them: sure ones (probability at
    least `out_of_domain_sure`) are dropped, borderline ones sent to review."""
    sure_from = OutOfDomainSettings().sure
    sure = shipped.probability >= sure_from
    review = shipped.flagged & ~sure
    return {
        "sure_from": sure_from,
        "dropped": int(sure.sum()),
        "dropped_precision": _share(truth, sure),
        "dropped_recall": _share(sure, truth),
        "review": int(review.sum()),
        "review_photographs": int((review & truth).sum()),
    }


def _other_style_scores(odd: np.ndarray, score: np.ndarray, flags: np.ndarray) -> dict:
    """AUROC of `score` (larger = more like the other style) and precision / recall of
    `flags` for the items of the other style (`odd`)."""
    return {
        "auroc": round(float(roc_auc_score(odd, score)), 3),
        "precision": round(float(precision_score(odd, flags, zero_division=0)), 3),
        "recall": round(float(recall_score(odd, flags)), 3),
    }


DRAWING_SHARES = (0.03, 0.10, 0.20)
DRAWS = 3


def default_decision(
    features: pd.DataFrame,
    rows: pd.DataFrame,
    cache: PixelCache,
    groups: pd.Series | None = None,
    swapped: dict[int, tuple[np.ndarray, np.ndarray, int]] | None = None,
) -> Verdict:
    """What the check decides with its default settings: the verdict, then self-training
    (`winnow.audit.style.selftrain`) on pixels read from `cache` for `rows` (aligned with
    `features`); `swapped` replaces some positions' pixels (detail crop, longer side)."""
    result = verdict(features, groups=groups)
    from_cache = cache_loader(cache, rows)

    def load(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pixels, detail, longer = (np.array(part) for part in from_cache(positions))
        for k, position in enumerate(positions):
            if swapped and int(position) in swapped:
                pixels[k], detail[k], longer[k] = swapped[int(position)]
        return pixels, detail, longer

    return self_trained(result, features, load, cache.background, groups)


def _subset(rows: pd.DataFrame, features: pd.DataFrame, pick: np.ndarray):
    return rows.iloc[pick].reset_index(drop=True), features.iloc[pick].reset_index(drop=True)


def both_ways(
    features: pd.DataFrame, truth: np.ndarray, rows: pd.DataFrame, cache: PixelCache
) -> list[dict]:
    """The shipped decision on clean subsets and on photo sets with drawings mixed in."""
    table = []
    for name, keep in (("drawings only", ~truth), ("photographs only", truth)):
        result = default_decision(*reversed(_subset(rows, features, np.flatnonzero(keep))), cache)
        table.append(
            {
                "set": name,
                "images": int(keep.sum()),
                "styles": [result.style],
                "flagged": [int(result.flagged.sum())],
            }
        )
    photos, drawings = np.flatnonzero(truth), np.flatnonzero(~truth)
    for share in DRAWING_SHARES:
        count = int(round(len(photos) * share / (1 - share)))
        row: dict = {"set": f"photographs + {share:.0%} drawings", "images": len(photos) + count}
        for seed in range(DRAWS):
            pick = np.r_[photos, np.random.default_rng(seed).choice(drawings, count, False)]
            result = default_decision(*reversed(_subset(rows, features, pick)), cache)
            odd = ~truth[pick]  # the drawings are out of domain here
            flags = result.flagged
            row.setdefault("styles", []).append(result.style)
            row.setdefault("flagged", []).append(int(flags.sum()))
            for key, value in _other_style_scores(odd, -result.likeness, flags).items():
                row.setdefault(key, []).append(value)
        table.append(row)
    return table


MINORITY_SHARES = (0.035, 0.10, 0.15, 0.20, 0.30, 0.40, 0.60, 0.70, 0.80, 0.90, 0.97)


def minority_sweep(
    features: pd.DataFrame, truth: np.ndarray, rows: pd.DataFrame, cache: PixelCache, seed: int = 0
) -> list[dict]:
    """The default decision (no duplicate groups) on folders with a growing share of
    photographs: all 261 with a random draw of the drawings (at 3.5 %, all of them: the
    benchmark itself). AUROC, precision and recall are of whichever style the decision calls
    the other one."""
    photos, drawings = np.flatnonzero(truth), np.flatnonzero(~truth)
    table = []
    for share in MINORITY_SHARES:
        count = int(round(len(photos) * (1 - share) / share))
        rng = np.random.default_rng(seed)
        drawn = drawings if count >= len(drawings) else rng.choice(drawings, count, False)
        pick = np.r_[photos, drawn]
        result = default_decision(*reversed(_subset(rows, features, pick)), cache)
        odd = truth[pick] if result.style == "drawing" else ~truth[pick]
        flags = result.flagged
        table.append(
            {
                "photo_share": round(float(truth[pick].mean()), 3),
                "images": int(len(pick)),
                "style": result.style,
                "rule": result.decision.rule,
                "flagged": int(flags.sum()),
                # direction × likeness: larger = more like the other style, either way
                **_other_style_scores(odd, result.direction * result.likeness, flags),
            }
        )
    return table


JPEG_SAMPLE = 300
JPEG_MAX_PIXELS = 4_000_000


def jpeg_without_twins(
    run: Path,
    rows: pd.DataFrame,
    features: pd.DataFrame,
    truth: np.ndarray,
    shipped: Verdict,
    seed: int = 0,
) -> dict:
    """The shipped decision (`shipped`, on the run as it is) with `JPEG_SAMPLE` twinless
    drawings swapped for JPEG re-encodes."""
    import tempfile

    from PIL import Image

    from winnow.data.config import ScanConfig
    from winnow.data.scan import scan

    data_dir = Path(json.loads((run / "scan_summary.json").read_text())["data_dir"])
    alone = rows["duplicate_group"].isna() if "duplicate_group" in rows else True
    small = rows["width"].astype(float) * rows["height"].astype(float) <= JPEG_MAX_PIXELS
    eligible = np.flatnonzero(~truth & (rows["format"] == "PNG").to_numpy() & alone & small)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, min(JPEG_SAMPLE, len(eligible)), replace=False))
    cache = PixelCache(run)
    with tempfile.TemporaryDirectory() as tmp:
        data, copies = Path(tmp) / "data", Path(tmp) / "run"
        for n, position in enumerate(chosen):
            with Image.open(data_dir / rows["path"].iloc[position]) as image:
                rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, cache.background)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            (data / "jpeg").mkdir(parents=True, exist_ok=True)
            flat.save(data / "jpeg" / f"{n:04d}.jpg", "JPEG", quality=int(rng.integers(60, 91)))
        scan(data, copies, ScanConfig.matching(cache.image_size, cache.background))
        scanned = read_manifest(copies).sort_values("path")
        scanned = scanned[scanned["status"] == "ok"]
        copy_cache = PixelCache(copies)
        where = cache_positions(scanned)
        jpeg_features = photo_like_features(
            copy_cache.take(*where),
            longer_sides(scanned),
            copy_cache.background,
            copy_cache.take_detail(*where),
        )
        jpeg_pixels = np.array(copy_cache.take(*where))
        jpeg_detail = np.array(copy_cache.take_detail(*where))
    positions = chosen[[int(Path(p).stem) for p in scanned["path"]]]
    swapped = features.copy()
    swapped.iloc[positions] = jpeg_features[list(features.columns)].to_numpy()
    longer = longer_sides(scanned)
    pixels = {
        int(p): (jpeg_pixels[k], jpeg_detail[k], int(longer[k])) for k, p in enumerate(positions)
    }
    groups = rows["duplicate_group"].reset_index(drop=True) if "duplicate_group" in rows else None
    result = default_decision(  # the 300: no group
        swapped, rows.reset_index(drop=True), cache, groups, pixels
    )
    flags = result.flagged
    return {
        "drawings": int(len(positions)),
        "flagged_as_png": round(float(shipped.flagged[positions].mean()), 3),
        "flagged_as_jpeg": round(float(flags[positions].mean()), 3),
        # the median's first pass alone, before the discriminant step
        "flagged_as_jpeg_by_the_median": round(float(result.first.flagged[positions].mean()), 3),
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
    where = cache_positions(rows)
    detail = cache.take_detail(*where)  # read once: the features and the denoiser use it
    features = photo_like_features(cache.take(*where), longer_sides(rows), cache.background, detail)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = fit_denoiser(detail[training_sample(len(detail))])
    learned_train = time.perf_counter() - started
    learned = noise_level(model, detail, cache.background)
    learned_seconds = time.perf_counter() - started
    jpeg = (rows["format"] == "JPEG").to_numpy()
    z = robust_z(features)
    # as the check decides: copies share their style when the run was audited
    groups = rows["duplicate_group"].reset_index(drop=True) if "duplicate_group" in rows else None
    shipped = verdict(features, groups=groups)
    started = time.perf_counter()
    default = default_decision(features, rows.reset_index(drop=True), cache, groups)
    self_training_seconds = time.perf_counter() - started
    median, first = median_likeness(z), shipped.first
    combined, decision = shipped.likeness, shipped.decision
    top = int(first.flagged.sum())
    table = []
    for column in FEATURES:
        flags = tail_mixture(z[column].to_numpy()).flagged
        table.append(_row(column, truth, z[column].to_numpy(), flags, jpeg, top))
    for family, members in FAMILY_FEATURES.items():
        score = median_likeness(z[list(members)])
        flags = tail_mixture(score).flagged
        table.append(_row(f"family: {family}", truth, score, flags, jpeg, top))
    flags = tail_mixture(learned).flagged
    table.append(_row("learned: denoiser noise", truth, learned, flags, jpeg, top))
    table.append(_row("combined: median (first pass)", truth, median, first.flagged, jpeg, top))
    table.append(
        _row("combined: + discriminant step", truth, combined, decision.flagged, jpeg, top)
    )
    if "duplicate_group" in rows:
        table.append(_row("+ copies share style", truth, combined, shipped.flagged, jpeg))
    table.append(
        _row("default: + self-training", truth, default.likeness, default.flagged, jpeg, top)
    )
    all_features = features.assign(learned_noise=learned)
    with_learned = verdict(all_features)
    table.append(
        _row(
            "combined + learned",
            truth,
            with_learned.likeness,
            with_learned.decision.flagged,
            jpeg,
            top,
        )
    )
    for name, flags in (
        ("combined: isolation forest", isolation_forest(z.to_numpy())),
        ("combined: K-means split", kmeans_split(z.to_numpy())),
    ):
        table.append(_row(name, truth, None, flags, jpeg))
    ceiling = {
        "features": supervised_ceiling(features.to_numpy(), truth),
        "features + learned": supervised_ceiling(all_features.to_numpy(), truth),
    }
    return {
        "images": int(len(rows)),
        "photographs": int(truth.sum()),
        "jpeg_photographs": int((truth & jpeg).sum()),
        "feature_seconds": round(seconds, 2),
        "learned_train_seconds": round(learned_train, 2),
        "learned_seconds": round(learned_seconds, 2),
        "self_training_seconds": round(self_training_seconds, 2),
        "contamination_estimate": round(decision.contamination, 4),
        "true_contamination": round(float(truth.mean()), 4),
        "table": table,
        "supervised_ceiling": ceiling,
        "clean": what_clean_does(default, truth),
        "both_ways": both_ways(features, truth, rows, cache),
        "minority_sweep": minority_sweep(features, truth, rows, cache),
        "jpeg_without_twins": jpeg_without_twins(run, rows, features, truth, default),
    }


def _pair(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{a:.3f} / {b:.3f}"


def report(result: dict) -> str:
    lines = [
        f"out_of_domain ablation: {result['images']} images, {result['photographs']} photographs "
        f"({result.get('jpeg_photographs', '?')} of them JPEG) "
        f"(features {result['feature_seconds']} s; contamination estimate "
        f"{100 * result['contamination_estimate']:.1f} % vs true "
        f"{100 * result['true_contamination']:.1f} %; learned denoiser "
        f"{result['learned_seconds']} s, of which training {result['learned_train_seconds']} s; "
        f"self-training {result.get('self_training_seconds')} s)",
        f"{'evidence':36s} {'AUROC':>6s} {'flagged':>8s} {'precision':>9s} {'recall':>7s} "
        f"{'JPEG drawings flagged':>21s} {'precision, top N':>16s} "
        f"{'recall: JPEG / PNG photos':>25s}",
    ]
    for row in result["table"]:
        auroc = f"{row['auroc']:.3f}" if row["auroc"] is not None else "—"
        jpeg = row.get("jpeg_drawings_flagged")
        top = row.get("precision_at_shipped_count")
        lines.append(
            f"{row['evidence']:36s} {auroc:>6s} {row['flagged']:>8d} "
            f"{row['precision']:>9.3f} {row['recall']:>7.3f} "
            f"{'—' if jpeg is None else f'{jpeg:.3f}':>21s} "
            f"{'—' if top is None else f'{top:.3f}':>16s} "
            f"{_pair(row.get('recall_jpeg_photos'), row.get('recall_png_photos')):>25s}"
        )
    lines.append(
        "precision, top N: of the N highest scores, N = the flags of 'combined: median' "
        "(each score judged at the same count; recall there = precision × N / photographs)"
    )
    lines.append("supervised ceiling (labels used; 5-fold gradient boosting on the same evidence):")
    for name, row in result["supervised_ceiling"].items():
        lines.append(
            f"  {name:34s} AUROC {row['auroc']:.3f}, precision at recall 0.9: "
            f"{row['precision_at_recall_0.9']:.3f}, recall at precision 0.9: "
            f"{row['recall_at_precision_0.9']:.3f}"
        )
    if "clean" in result:
        c = result["clean"]
        lines.append(
            f"what clean does with the shipped flags: drops {c['dropped']} sure ones "
            f"(probability ≥ {c['sure_from']}; precision {c['dropped_precision']}, recall "
            f"{c['dropped_recall']}), sends {c['review']} borderline to review "
            f"({c['review_photographs']} of them photographs)"
        )
    if "jpeg_without_twins" in result:
        jpeg = result["jpeg_without_twins"]
        lines.append(
            f"drawings saved as JPEG with no lossless twin: {jpeg['drawings']} twinless PNG "
            f"drawings flagged {100 * jpeg['flagged_as_png']:.1f} % as PNG, "
            f"{100 * jpeg['flagged_as_jpeg']:.1f} % re-encoded as JPEG (quality 60–90; "
            f"the median alone {100 * jpeg['flagged_as_jpeg_by_the_median']:.1f} %); "
            f"shipped precision / recall with them {jpeg['precision']:.3f} / {jpeg['recall']:.3f}"
        )
    lines.append(
        "both ways (the shipped decision, dominant style detected; 3 draws: mean [min–max]):"
    )
    for row in result.get("both_ways", []):
        text = (
            f"  {row['set']:30s} {row['images']:>5d} images, style "
            f"{'/'.join(sorted(set(row['styles'])))}, flagged {_spread(row['flagged'], 0)}"
        )
        if "auroc" in row:
            text += "".join(
                f", {key} {_spread(row[key], 3)}" for key in ("auroc", "precision", "recall")
            )
        lines.append(text)
    if "minority_sweep" in result:
        lines.append("how large a minority is found (features alone; the other style's P / R):")
        for row in result["minority_sweep"]:
            lines.append(
                f"  photographs {100 * row['photo_share']:5.1f} % of {row['images']:>5d}: style "
                f"{row['style']:7s} ({row['rule']}) flagged {row['flagged']:>4d}, "
                f"AUROC {row['auroc']:.3f}, "
                f"precision {row['precision']:.3f}, recall {row['recall']:.3f}"
            )
    return "\n".join(lines)


def _spread(values: list, digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(".bench/runs/train"))
    parser.add_argument("--truth", type=Path, default=Path(".bench/clipart/truth.json"))
    args = parser.parse_args()
    result = ablation(args.run, args.truth)
    save_result("domain", result)
    print(report(result))


if __name__ == "__main__":
    main()
