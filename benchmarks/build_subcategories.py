"""Build the held-out training benchmark: openclipart's second-level categories as classes.

The project benchmark (`build_dataset.py`) files openclipart under its top-level
categories, and the training recipe's defaults were chosen on it. This folder asks the
same question of a different task from the same package, the shape of the assignment's
folders: the `CLASSES` largest second-level categories (`animals/birds`, `computer/icons`,
`shapes/stars`, ...), each class named `category-sub` and holding every PNG under that
folder, flattened (`sub__sub__name.png`). Nothing is planted: the folder's own mess stays
(exact copies filed under two categories, the 1,378 look-alike spirograph stars, two
623-megapixel PNGs, a class 30 times another). The test folder takes 15 % of each class by
file-name hash, as the project benchmark does.

It is a held-out check: report it once, after the recipe is chosen; never tune on it.

Layout under .bench/ (git-ignored):
    debs/ raw/                            the packages and their unpacked files (shared)
    subcategories/training/<class>/       DATA for scan/audit/train
    subcategories/test/<class>/           the held-out folder
    subcategories/truth.json              classes and their file counts

Usage: python benchmarks/build_subcategories.py [--root .bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from build_dataset import _in_test, _place, fetch

CLASSES = 20
VERSION = 1


def categories(clipart: Path) -> list[tuple[str, list[Path], Path]]:
    """Every second-level category as (class name, its PNGs recursively, its folder),
    largest first (ties by name)."""
    found = []
    for top in sorted(p for p in clipart.iterdir() if p.is_dir()):
        for sub in sorted(p for p in top.iterdir() if p.is_dir()):
            files = sorted(sub.rglob("*.png"))
            if files:
                found.append((f"{top.name}-{sub.name}", files, sub))
    found.sort(key=lambda item: (-len(item[1]), item[0]))
    return found


def build(root: Path) -> Path:
    raw = fetch(root)
    out = root / "subcategories"
    if out.exists():
        shutil.rmtree(out)
    chosen = categories(raw / "usr/share/openclipart/png")[:CLASSES]
    counts = {}
    for name, files, folder in chosen:
        counts[name] = {"training": 0, "test": 0}
        for source in files:
            flat = "__".join(source.relative_to(folder).parts)
            split = "test" if _in_test(flat) else "training"
            _place(source, out / split / name / flat)
            counts[name][split] += 1
    truth = {"version": VERSION, "classes": [name for name, *_ in chosen], "counts": counts}
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return out


def current(root: Path) -> Path:
    """root/subcategories, built when missing or of another VERSION."""
    truth = root / "subcategories" / "truth.json"
    if not truth.exists() or json.loads(truth.read_text()).get("version") != VERSION:
        return build(root)
    return root / "subcategories"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    out = build(args.root)
    truth = json.loads((out / "truth.json").read_text())
    training = sum(c["training"] for c in truth["counts"].values())
    test = sum(c["test"] for c in truth["counts"].values())
    print(
        f"held-out benchmark: {out} ({training} training, {test} test files, "
        f"{len(truth['classes'])} classes)"
    )


if __name__ == "__main__":
    main()
