"""How much near-duplicate recall a series of look-alikes allows: the planted copies of
spirograph stars, each verified against *every* star of the benchmark (not only its
candidates) and ranked as the series rule ranks them (detail at FULL_SIDE, less the ink
difference).

A copy whose source is not the best-ranked star even then cannot be told from its siblings
by the verification at all: no candidate search can find it. The count of those bounds
the pair recall the audit can reach on this benchmark. Exhaustive, so slow (about 5
minutes on 2 cores); not part of `make bench`.

Usage: python benchmarks/bench_series_bound.py [--run RUN] [--truth TRUTH_JSON]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from winnow.audit.checks.near_duplicate import representatives
from winnow.audit.neardup.alignment import verification_view
from winnow.audit.neardup.search import Items
from winnow.audit.neardup.verify import full_side, series_score
from winnow.data.cache import PixelCache
from winnow.data.manifest import read_manifest

SERIES = "stars__star_"  # openclipart's spirograph stars: 1,250 look-alikes


def series_bound(run: Path, truth_file: Path, batch: int = 96) -> dict:
    frame = read_manifest(run)
    reps, _ = representatives(frame)
    items = Items(reps, PixelCache(run), np.zeros((0, 1)), np.zeros((0, 1)))
    paths = reps["path"].astype(str).to_numpy()
    where = {p: i for i, p in enumerate(paths)}
    truth = json.loads(truth_file.read_text())
    copies = {c.split("/", 1)[1] for c, *_ in truth["near_pairs"]}
    copies |= {t.split("/", 1)[1] for t, *_ in truth["leaks"]}
    # the series: every star that is not itself a planted copy
    members = np.array([i for i, p in enumerate(paths) if SERIES in p and p not in copies])
    views = np.stack([verification_view(r) for r in items.regions(members)])
    planted = [
        (where[c.split("/", 1)[1]], where[s.split("/", 1)[1]])
        for c, s, *_ in truth["near_pairs"]
        if SERIES in s and c.split("/", 1)[1] in where and s.split("/", 1)[1] in where
    ]
    started = time.perf_counter()
    ranks = []
    for copy, source in planted:
        query = verification_view(items.regions(np.array([copy]))[0])
        score = series_score(full_side(np.broadcast_to(query, views.shape), views, batch))
        own = score[int(np.flatnonzero(members == source)[0])]
        ranks.append(int((score > own).sum()))
    ranks = np.array(ranks)
    return {
        "series_members": int(len(members)),
        "planted_copies": int(len(planted)),
        "source_ranked_first": int((ranks == 0).sum()),
        "source_not_first": int((ranks > 0).sum()),
        "ranks_when_not_first": sorted(ranks[ranks > 0].tolist()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path(".bench/runs/train"))
    parser.add_argument("--truth", type=Path, default=Path(".bench/clipart/truth.json"))
    args = parser.parse_args()
    result = series_bound(args.run, args.truth)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
