"""Audit benchmark: recall against the planted ground truth, a by-eye precision sheet,
and the growth of the candidate search from 10k to 100k items.

Ground truth (benchmarks/build_dataset.py → truth.json):
- renamed_copies: byte-identical copies under Korean names → exact-duplicate recall;
- near_pairs: resized 0.5–0.9×, cropped 1–5 % a side, JPEG q60–90 or PNG, brightness
  ±10–30 copies (some filed under another class) → near-duplicate pair recall, counted
  strictly (copy and source in the same duplicate_group) and leniently (the verified
  pair is reported, whatever group it ended in);
- leaks: the same kind of copies placed in the test folder → leak recall, counted per pair
  (the planted test copy is paired with its own source) and per test item (the planted
  test copy is reported as leaked, whichever training picture it is paired with: what
  decides which test files to drop).
Each recall is also given for copies of the spirograph stars (openclipart's long series of
look-alikes) and of every other source apart (`recall_by_source`).
Precision: 50 reported pairs the ground truth does not know are drawn at random and saved
as a contact sheet (`unknown_pairs.png`) to be judged by eye; `bench_precision_cost.py`
reads every one of them with its judgement (`judged_pairs.csv`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from bench_results import save_result
from bench_series_bound import SERIES
from winnow.audit.checks.near_duplicate import representatives
from winnow.audit.config import AuditConfig
from winnow.audit.neardup.candidates import candidate_pairs
from winnow.audit.neardup.descriptors import DETAIL_COMPONENTS
from winnow.audit.neardup.search import NearDuplicateSettings
from winnow.audit.runner import run_audit
from winnow.data.cache import PixelCache
from winnow.data.manifest import read_manifest


def _strip(path: str) -> str:
    return path.split("/", 1)[1]


def audit_recall(run: Path, test_data: Path, truth: dict, results: Path) -> dict:
    started = time.perf_counter()
    summary = run_audit(run, AuditConfig(), against=test_data)
    seconds = time.perf_counter() - started
    frame = read_manifest(run).set_index("path")
    rep_of = _representatives(frame)
    reported, unknown = reported_pairs(run, rep_of, truth)

    exact_found = sum(
        frame.at[_strip(a), "exact_duplicate_group"] == frame.at[_strip(b), "exact_duplicate_group"]
        and pd.notna(frame.at[_strip(a), "exact_duplicate_group"])
        for a, b in truth["renamed_copies"]
    )

    found = planted_recalls(run, frame, reported, rep_of, truth)

    sheet = _contact_sheet(unknown, frame, PixelCache(run), results / "unknown_pairs.png")
    return {
        "audit_seconds": round(seconds, 1),
        "check_seconds": {k: v["seconds"] for k, v in summary["checks"].items()},
        "exact_recall": round(exact_found / len(truth["renamed_copies"]), 3),
        **found["all"],
        "recall_by_source": {k: v for k, v in found.items() if k != "all"},
        "reported_pairs": len(reported),
        "reported_pairs_unknown_to_truth": len(unknown),
        "duplicate_groups": summary["checks"]["near_duplicate"]["groups"],
        "precision_sheet": str(sheet),
    }


def reported_pairs(
    run: Path, rep_of: dict[str, str], truth: dict
) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    """The latest audit's near-duplicate pairs (sorted path tuples), and those of them the
    ground truth does not know (its planted pairs, each end by its exact group's
    representative), in order."""
    pairs = pd.read_parquet(run / "audit" / "near_duplicate_pairs.parquet")
    reported = {tuple(sorted(p)) for p in zip(pairs.path_a, pairs.path_b, strict=True)}
    known = {
        tuple(sorted((rep_of[_strip(a)], rep_of[_strip(b)]))) for a, b, *_ in truth["near_pairs"]
    }
    return reported, sorted(reported - known)


def planted_recalls(
    run: Path, frame: pd.DataFrame, reported: set, rep_of: dict[str, str], truth: dict
) -> dict[str, dict]:
    """Near-pair and leak recalls of the planted copies, for all of them and apart for
    copies of the spirograph stars and of every other source; `frame` indexed by path."""

    def same_group(copy: str, source: str) -> bool:
        group_a, group_b = frame.at[copy, "duplicate_group"], frame.at[source, "duplicate_group"]
        return bool(pd.notna(group_a) and pd.notna(group_b) and group_a == group_b)

    def pair_reported(copy: str, source: str) -> bool:
        pair = tuple(sorted((rep_of[copy], rep_of[source])))
        return pair in reported or rep_of[copy] == rep_of[source]

    leaks = pd.read_csv(run / "audit" / "leaks.csv")
    found_leaks = set(zip(leaks.test_path, leaks.train_path, strict=True))
    leaked_tests = set(leaks.test_path)
    near = [(_strip(c), _strip(s)) for c, s, *_ in truth["near_pairs"]]
    planted_leaks = [(_strip(t), _strip(s)) for t, s, *_ in truth["leaks"]]
    parts = {
        "all": lambda source: True,
        "spirograph_stars": lambda source: SERIES in source,
        "all_other_sources": lambda source: SERIES not in source,
    }
    recalls = {}
    for part, member in parts.items():
        pick_near = [p for p in near if member(p[1])]
        pick_leaks = [p for p in planted_leaks if member(p[1])]
        recalls[part] = {
            "near_pairs": len(pick_near),
            "near_pair_recall_same_group": _share(same_group, pick_near),
            "near_pair_recall_reported": _share(pair_reported, pick_near),
            "leaks": len(pick_leaks),
            "leak_recall": _share(lambda t, s: (t, s) in found_leaks, pick_leaks),
            "leak_recall_test_items": _share(lambda t, s: t in leaked_tests, pick_leaks),
        }
    return recalls


def _share(hit, pairs: list[tuple[str, str]]) -> float:
    """The share of (copy, source) pairs for which hit(copy, source) holds."""
    return round(sum(hit(*pair) for pair in pairs) / max(len(pairs), 1), 3)


def _representatives(frame: pd.DataFrame) -> dict[str, str]:
    """Each path → the path its exact group is represented by in the pairs table."""
    _, rep_of = representatives(frame.reset_index())
    paths = frame.reset_index()["path"]
    return dict(zip(paths.loc[rep_of.index], paths.loc[rep_of.to_numpy()], strict=True))


def _contact_sheet(unknown: list, frame: pd.DataFrame, cache: PixelCache, out: Path) -> Path:
    rng = np.random.default_rng(0)
    chosen = [
        unknown[i] for i in sorted(rng.choice(len(unknown), min(50, len(unknown)), replace=False))
    ]
    tile = 128
    sheet = Image.new("RGB", (5 * (2 * tile + 24), 10 * (tile + 22)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (a, b) in enumerate(chosen):
        x, y = (n % 5) * (2 * tile + 24), (n // 5) * (tile + 22)
        for k, path in enumerate((a, b)):
            row = frame.loc[path]
            sheet.paste(
                Image.fromarray(np.asarray(cache.get(row.cache_shard, row.cache_index))),
                (x + k * (tile + 4), y),
            )
        draw.text((x, y + tile + 2), f"{n:02d}", fill="black")
    sheet.save(out)
    (out.with_suffix(".txt")).write_text(
        "\n".join(f"{n:02d} {a} | {b}" for n, (a, b) in enumerate(chosen))
    )
    return out


CHUNK = 50_000  # rows generated at a time: float64 draws of a million rows would not fit


def _planted_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n unit vectors; the second half are noisy copies of the first half (made in chunks,
    float32 throughout, so a million 432-number rows take 1.7 GB and no more)."""
    x = np.empty((n, d), dtype=np.float32)
    half = n // 2
    for start in range(0, n - half, CHUNK):
        stop = min(start + CHUNK, n - half)
        x[start:stop] = rng.standard_normal((stop - start, d), dtype=np.float32)
    for start in range(0, half, CHUNK):
        stop = min(start + CHUNK, half)
        noise = rng.standard_normal((stop - start, d), dtype=np.float32)
        x[n - half + start : n - half + stop] = x[start:stop] + 0.1 * noise
    for start in range(0, n, CHUNK):
        block = x[start : start + CHUNK]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return x


def candidate_growth_one(n: int) -> dict:
    """The candidate search on n synthetic descriptors (432-number coarse and 129-number
    detail, as `describe` makes), with planted near copies: seconds, pairs, the share of
    copies paired with their original, the index used, and this process's peak RSS."""
    import resource

    from winnow.audit.neardup.search import Items

    rng = np.random.default_rng(0)
    coarse = _planted_vectors(rng, n, 432)
    detail = _planted_vectors(rng, n, DETAIL_COMPONENTS + 1)  # a projected descriptor
    items = Items(frame=pd.DataFrame(index=range(n)), cache=None, coarse=coarse, detail=detail)
    settings = NearDuplicateSettings()
    started = time.perf_counter()
    pairs = candidate_pairs(items, None, settings)
    seconds = time.perf_counter() - started
    half = n // 2
    copy = pairs[:, 1] - pairs[:, 0] == n - half
    found = np.unique(pairs[copy & (pairs[:, 0] < half), 0])
    index = (
        "exact"
        if n <= settings.exact_index_limit
        else "HNSW"
        if n <= settings.compressed_index_limit
        else "IVF-PQ"
    )
    return {
        "seconds": round(seconds, 2),
        "pairs": int(len(pairs)),
        "planted_found": round(len(found) / half, 4),
        "index": index,
        "descriptor_mb": round((coarse.nbytes + detail.nbytes) / 2**20),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def candidate_growth(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> dict:
    """`candidate_growth_one` at each size, each in a fresh process (its own peak RSS)."""
    import subprocess
    import sys

    timings = {}
    for n in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--candidate-growth", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        timings[n] = json.loads(done.stdout.strip().splitlines()[-1])
    return timings


def report(result: dict) -> str:
    lines = ["audit benchmark (after scan; --against the test folder):"]
    for key, value in result.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--candidate-growth"]:
        print(json.dumps(candidate_growth_one(int(sys.argv[2]))))
        raise SystemExit
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".bench")
    out = root / "results"
    out.mkdir(parents=True, exist_ok=True)
    truth = json.loads((root / "clipart" / "truth.json").read_text())
    result = audit_recall(root / "runs" / "train", root / "clipart" / "test", truth, out)
    result["candidate_search_growth"] = candidate_growth()
    save_result("audit", result, results=out)
    print(report(result))
