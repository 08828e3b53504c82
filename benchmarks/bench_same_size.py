"""Same-size copies: does the near-duplicate check still find copies that no resize lies
between, now that it compares same-size pictures pixel for pixel?

The planted copies of the main benchmark are all resized, so they never meet that
comparison. This benchmark takes `--originals` lossless pictures from the benchmark's
training folder (seeded) and writes, at the same width and height: a JPEG at quality 60 and
at 90, brightness shifted +12 % and −30 grey levels, 256- and 64-colour palettes, and the
quality-60 JPEG saved again as PNG (the format says lossless, the pixels are not). It scans
that folder, runs the near_duplicate check and reports, per kind of copy, the share of
(original, copy) pairs reported; and the share the same audit reports with the same-size
comparison switched off (`max_same_size_change: 1`), the recall it can at most keep.

    python benchmarks/bench_same_size.py [--originals 300]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from bench_results import save_result
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan

ROOT = Path(".bench")
KINDS = {  # name: (file suffix, how the copy is made from the flattened original)
    "jpeg_q60": (".jpg", lambda im, path: im.save(path, quality=60)),
    "jpeg_q90": (".jpg", lambda im, path: im.save(path, quality=90)),
    "brighter_12pc": (
        ".png",
        lambda im, path: ImageEnhance.Brightness(im).enhance(1.12).save(path),
    ),
    "darker_30": (".png", lambda im, path: im.point(lambda v: max(0, v - 30)).save(path)),
    "palette_256": (".png", lambda im, path: im.quantize(256).save(path)),
    "palette_64_dithered": (
        ".png",
        lambda im, path: im.quantize(64, dither=Image.Dither.FLOYDSTEINBERG).save(path),
    ),
    "jpeg_q60_as_png": (".png", None),  # made from the jpeg_q60 copy
}


def build(originals: int, folder: Path, seed: int = 0) -> list[str]:
    """The originals and their copies under folder/<kind>/NNN.ext; returns the sources."""
    frame = read_manifest(ROOT / "runs" / "train")
    frame = frame[
        (frame["status"] == "ok")
        & (frame["format"] == "PNG")
        & (frame["width"] * frame["height"] <= 4_000_000)
        & ~frame.get("is_blank_issue", pd.Series(False, index=frame.index)).fillna(False)
    ]
    chosen = frame.sample(originals, random_state=seed)["path"].tolist()
    if folder.exists():
        shutil.rmtree(folder)
    for kind in ["original", *KINDS]:
        (folder / kind).mkdir(parents=True)
    for i, path in enumerate(chosen):
        with Image.open(ROOT / "clipart" / "training" / path) as image:
            rgba = image.convert("RGBA")
        rgba.save(folder / "original" / f"{i:03d}.png")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        for kind, (suffix, make) in KINDS.items():
            if make is not None:
                make(flat, folder / kind / f"{i:03d}{suffix}")
        with Image.open(folder / "jpeg_q60" / f"{i:03d}.jpg") as jpeg:
            jpeg.save(folder / "jpeg_q60_as_png" / f"{i:03d}.png")
    return chosen


def recall(run: Path, config: AuditConfig, originals: int) -> dict[str, float]:
    run_audit(run, config)
    pairs = pd.read_parquet(run / "audit" / "near_duplicate_pairs.parquet")
    frame = read_manifest(run).set_index("path")
    groups = frame["duplicate_group"]
    reported = {tuple(sorted(p)) for p in zip(pairs.path_a, pairs.path_b, strict=True)}
    out = {}
    for kind, (suffix, _) in KINDS.items():
        found = 0
        for i in range(originals):
            source, copy = f"original/{i:03d}.png", f"{kind}/{i:03d}{suffix}"
            group, other = groups.get(source), groups.get(copy)
            grouped = pd.notna(group) and pd.notna(other) and group == other
            found += tuple(sorted((source, copy))) in reported or bool(grouped)
        out[kind] = round(found / originals, 4)
    return out


def bench_same_size(originals: int = 300) -> dict:
    folder = ROOT / "same-size" / "data"
    run = ROOT / "same-size" / "run"
    build(originals, folder)
    if run.exists():
        shutil.rmtree(run)
    scan(folder, run)
    started = time.perf_counter()
    shipped = recall(run, AuditConfig(checks=["exact_duplicate", "near_duplicate"]), originals)
    seconds = time.perf_counter() - started
    without = recall(
        run,
        AuditConfig(checks=["exact_duplicate", "near_duplicate"], max_same_size_change=1.0),
        originals,
    )
    return {
        "originals": originals,
        "recall": shipped,
        "recall_without_same_size_comparison": without,
        "mean_recall": round(float(np.mean(list(shipped.values()))), 4),
        "mean_recall_without": round(float(np.mean(list(without.values()))), 4),
        "audit_seconds": round(seconds, 1),
    }


def report(result: dict) -> str:
    lines = [f"same-size copies of {result['originals']} benchmark originals:"]
    lines.append(f"  {'copy':<22} {'reported':>9} {'without the rule':>17}")
    for kind, value in result["recall"].items():
        without = result["recall_without_same_size_comparison"][kind]
        lines.append(f"  {kind:<22} {value:>9.3f} {without:>17.3f}")
    lines.append(
        f"  {'mean':<22} {result['mean_recall']:>9.3f} {result['mean_recall_without']:>17.3f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=300)
    args = parser.parse_args()
    result = bench_same_size(args.originals)
    save_result("same_size", result, time.strftime("%Y-%m-%d %H:%M:%S"))
    print(report(result))


if __name__ == "__main__":
    main()
