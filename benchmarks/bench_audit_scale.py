"""The exact and near-duplicate stages end to end at 10k / 100k / 1M synthetic images.

A folder of N small generated drawings (48 × 48 px PNGs: 3–6 random shapes in random
colours on white, in 10 class folders) with planted copies: 2 % byte-identical copies
under another name, 5 % near copies (resized 0.6–0.9×, cropped 1–4 % a side, brightness
±10–25, PNG or JPEG q80). `winnow scan` (32-px pixel cache, 16-px detail crops: a million
images' cache is 3.8 GB instead of 61 GB at the default 128 px) then `winnow audit
--checks exact_duplicate,near_duplicate` with every other default, each in this process,
timed, with the peak of the summed RSS of the process and its workers; recall of the
planted copies and the pairs reported that were not planted.

    python benchmarks/bench_audit_scale.py --items 10000      # one size per process
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from PIL import Image, ImageDraw, ImageEnhance

from bench_results import save_result
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.data.config import ScanConfig
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan

ROOT = Path(".bench") / "synthetic"
SIDE = 48
CLASSES = 10
EXACT_SHARE, NEAR_SHARE = 0.02, 0.05
PER_TASK = 5_000  # pictures generated per worker task


def drawing(rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 7)):
        x0, y0 = rng.integers(0, SIDE - 8, 2)
        x1, y1 = x0 + rng.integers(6, SIDE - x0 + 1), y0 + rng.integers(6, SIDE - y0 + 1)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            points = [tuple(int(v) for v in rng.integers(0, SIDE, 2)) for _ in range(3)]
            draw.polygon(points, fill=colour)
    return image


def near_copy(image: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    width, height = image.size
    crop = rng.uniform(0.01, 0.04, 4)
    box = (
        int(crop[0] * width),
        int(crop[1] * height),
        width - int(crop[2] * width),
        height - int(crop[3] * height),
    )
    copy = image.crop(box)
    scale = rng.uniform(0.6, 0.9)
    copy = copy.resize((max(8, int(copy.width * scale)), max(8, int(copy.height * scale))))
    copy = ImageEnhance.Brightness(copy).enhance(1 + rng.choice([-1, 1]) * rng.uniform(0.04, 0.1))
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        copy.save(buffer, "JPEG", quality=80)
        return buffer.getvalue(), "jpg"
    copy.save(buffer, "PNG")
    return buffer.getvalue(), "png"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _generate(task: tuple[Path, int, int, int]) -> dict:
    """Pictures first..first+count of folder `data` (seeded by their index)."""
    data, first, count, total = task
    truth: dict = {"exact": [], "near": []}
    for index in range(first, first + count):
        rng = np.random.default_rng(index)
        label = f"class_{index % CLASSES}"
        image = drawing(rng)
        name = f"{label}/pic_{index:07d}.png"
        (data / name).write_bytes(_png(image))
        draw = rng.random()
        if draw < EXACT_SHARE:
            copy = f"class_{(index + 1) % CLASSES}/copy_{index:07d}.png"
            (data / copy).write_bytes((data / name).read_bytes())
            truth["exact"].append([name, copy])
        elif draw < EXACT_SHARE + NEAR_SHARE:
            payload, suffix = near_copy(image, rng)
            copy = f"{label}/near_{index:07d}.{suffix}"
            (data / copy).write_bytes(payload)
            truth["near"].append([name, copy])
    return truth


def build(items: int, root: Path = ROOT) -> tuple[Path, dict]:
    """The folder of `items` drawings (and their planted copies), built once."""
    folder = root / str(items)
    data, truth_path = folder / "data", folder / "truth.json"
    if truth_path.exists():
        return data, json.loads(truth_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    for label in range(CLASSES):
        (data / f"class_{label}").mkdir(parents=True)
    tasks = [(data, s, min(PER_TASK, items - s), items) for s in range(0, items, PER_TASK)]
    truth: dict = {"exact": [], "near": []}
    with multiprocessing.get_context("forkserver").Pool() as pool:
        for part in pool.imap(_generate, tasks):
            truth["exact"] += part["exact"]
            truth["near"] += part["near"]
    truth_path.write_text(json.dumps(truth))
    return data, truth


class TreePeak:
    """The largest summed RSS of this process and all its descendants (the decoders and
    audit workers are children of multiprocessing's fork server), sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def bench_scale(items: int, root: Path = ROOT) -> dict:
    started = time.perf_counter()
    data, truth = build(items, root)
    built = time.perf_counter() - started
    run = root / str(items) / "run"
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    with TreePeak() as scan_peak:
        summary = scan(data, run, ScanConfig(image_size=32, detail_size=16))
    scan_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with TreePeak() as audit_peak:
        audit = run_audit(run, AuditConfig(checks=["exact_duplicate", "near_duplicate"]))
    audit_seconds = time.perf_counter() - started
    frame = read_manifest(run).set_index("path")
    groups = frame["duplicate_group"]

    def together(pairs: list) -> float:  # share of planted pairs found in one group
        found = []
        for a, b in pairs:
            first, second = groups.get(a), groups.get(b)
            found.append(bool(pd.notna(first) and pd.notna(second) and first == second))
        return round(float(np.mean(found)), 4) if found else float("nan")

    near = audit["checks"]["near_duplicate"]
    return {
        "items": items,
        "files": summary.files,
        "build_seconds": round(built, 1),
        "scan_seconds": round(scan_seconds, 1),
        "scan_peak_mb": round(scan_peak.peak),
        "audit_seconds": round(audit_seconds, 1),
        "check_seconds": {k: v["seconds"] for k, v in audit["checks"].items()},
        "audit_peak_mb": round(audit_peak.peak),
        "own_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "exact_recall": together(truth["exact"]),
        "near_recall": together(truth["near"]),
        "candidate_pairs": near["candidate_pairs"],
        "verified_pairs": near["verified_pairs"],
        "planted_near_pairs": len(truth["near"]),
    }


def report(result: dict) -> str:
    return (
        f"{result['items']:,} drawings ({result['files']:,} files): scan "
        f"{result['scan_seconds']} s, audit (exact + near) {result['audit_seconds']} s "
        f"{result['check_seconds']}, peak {result['audit_peak_mb']} MB; recall exact "
        f"{result['exact_recall']}, near {result['near_recall']}; "
        f"{result['candidate_pairs']:,} candidates → {result['verified_pairs']:,} verified "
        f"({result['planted_near_pairs']:,} near copies planted)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, required=True)
    args = parser.parse_args()
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    outcome = bench_scale(args.items)
    save_result(f"audit_scale_{args.items}", outcome, when)
    print(report(outcome), flush=True)
