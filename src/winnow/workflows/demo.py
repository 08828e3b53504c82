"""A small, deliberately messy demo dataset drawn with Pillow, and the demo pipeline.

Classes are procedural illustrations (flat colours, outlines, white or transparent
backgrounds) with strong imbalance. The mess is the kind crawled folders have: exact and
near duplicates, a duplicate filed under two classes, a test image leaked from training,
photo-like images, a blank render, a truncated PNG, an empty file, a text file named .jpg,
a JPEG named .png, and a Korean file name with spaces. `DEMO_TRUTH` records what was planted.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_COUNTS = {"circle": 40, "star": 30, "house": 24, "tree": 16, "car": 10, "fish": 6}
TEST_PER_CLASS = 5
IMAGE_SIDE = 96


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 230, size=3))  # type: ignore[return-value]


def _canvas(rng: np.random.Generator, side: int) -> Image.Image:
    if rng.random() < 0.3:
        return Image.new("RGBA", (side, side), (0, 0, 0, 0))  # transparent clipart
    return Image.new("RGBA", (side, side), (255, 255, 255, 255))


def draw_circle(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    r = side * rng.uniform(0.2, 0.4)
    cx, cy = side * rng.uniform(0.4, 0.6, size=2)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_colour(rng), outline=(0, 0, 0), width=2)


def draw_star(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    cx, cy = side * rng.uniform(0.4, 0.6, size=2)
    outer, inner = side * rng.uniform(0.3, 0.45), side * rng.uniform(0.12, 0.2)
    turn = rng.uniform(0, math.pi)
    points = [
        (
            cx + (outer if k % 2 == 0 else inner) * math.cos(turn + k * math.pi / 5),
            cy + (outer if k % 2 == 0 else inner) * math.sin(turn + k * math.pi / 5),
        )
        for k in range(10)
    ]
    draw.polygon(points, fill=_colour(rng), outline=(0, 0, 0))


def draw_house(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    w, h = side * rng.uniform(0.4, 0.6), side * rng.uniform(0.3, 0.4)
    x0, y0 = (side - w) / 2, side * 0.45
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=_colour(rng), outline=(0, 0, 0), width=2)
    draw.polygon([(x0 - 6, y0), (x0 + w + 6, y0), (side / 2, y0 - h * 0.9)], fill=_colour(rng))
    draw.rectangle([side / 2 - 5, y0 + h - 16, side / 2 + 5, y0 + h], fill=(90, 50, 20))


def draw_tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    trunk = side * rng.uniform(0.06, 0.1)
    draw.rectangle(
        [side / 2 - trunk, side * 0.55, side / 2 + trunk, side * 0.9], fill=(110, 70, 30)
    )
    r = side * rng.uniform(0.22, 0.32)
    green = (int(rng.integers(20, 80)), int(rng.integers(120, 200)), int(rng.integers(20, 80)))
    draw.ellipse([side / 2 - r, side * 0.5 - 2 * r, side / 2 + r, side * 0.55], fill=green)


def draw_car(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    y = side * rng.uniform(0.45, 0.6)
    body = _colour(rng)
    draw.rounded_rectangle([side * 0.12, y, side * 0.88, y + side * 0.2], 6, fill=body)
    draw.rectangle([side * 0.3, y - side * 0.14, side * 0.7, y], fill=body)
    for x in (0.3, 0.7):
        draw.ellipse(
            [side * x - 8, y + side * 0.14, side * x + 8, y + side * 0.14 + 16], fill=(20, 20, 20)
        )


def draw_fish(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    cy = side * rng.uniform(0.4, 0.6)
    colour = _colour(rng)
    draw.ellipse([side * 0.15, cy - side * 0.15, side * 0.7, cy + side * 0.15], fill=colour)
    draw.polygon(
        [(side * 0.65, cy), (side * 0.9, cy - side * 0.15), (side * 0.9, cy + side * 0.15)],
        fill=colour,
    )
    draw.ellipse([side * 0.25, cy - 6, side * 0.25 + 6, cy], fill=(0, 0, 0))


DRAWERS: dict[str, Callable[[ImageDraw.ImageDraw, np.random.Generator, int], None]] = {
    "circle": draw_circle,
    "star": draw_star,
    "house": draw_house,
    "tree": draw_tree,
    "car": draw_car,
    "fish": draw_fish,
}


def _doodles(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """A few small random strokes and dots: what makes two drawings of a class distinct."""
    for _ in range(int(rng.integers(2, 5))):
        x, y = (float(v) for v in rng.uniform(0.05, 0.95, size=2) * side)
        if rng.random() < 0.5:
            dx, dy = (float(v) for v in rng.uniform(-0.25, 0.25, size=2) * side)
            draw.line([x, y, x + dx, y + dy], fill=_colour(rng), width=int(rng.integers(1, 4)))
        else:
            r = float(rng.uniform(2, 6))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng))


def illustration(label: str, rng: np.random.Generator, side: int = IMAGE_SIDE) -> Image.Image:
    image = _canvas(rng, side)
    DRAWERS[label](ImageDraw.Draw(image), rng, side)
    _doodles(ImageDraw.Draw(image), rng, side)
    angle = float(rng.uniform(-25, 25))
    return image.rotate(angle, Image.Resampling.BICUBIC, fillcolor=image.getpixel((0, 0)))


def photo_like(rng: np.random.Generator, side: int = IMAGE_SIDE) -> Image.Image:
    """Continuous tones, texture and sensor-like noise: what a small photograph looks like."""
    coarse = rng.uniform(0, 255, size=(6, 6, 3)).astype(np.uint8)
    smooth = Image.fromarray(coarse, "RGB").resize((side, side), Image.Resampling.BICUBIC)
    array = np.asarray(smooth, dtype=np.float32) + rng.normal(0, 12, size=(side, side, 3))
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")
    return image.filter(ImageFilter.GaussianBlur(0.6))


def _save(image: Image.Image, path: Path, fmt: str = "PNG", **options: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **options)


def make_demo_dataset(root: Path, seed: int = 0) -> dict[str, list]:
    """Write DATA folders `root/training` and `root/test`; return what was planted."""
    rng = np.random.default_rng(seed)
    training, test = Path(root) / "training", Path(root) / "test"
    for folder in (training, test):
        if folder.exists():
            shutil.rmtree(folder)
    truth: dict[str, list] = {
        key: [] for key in ("exact", "near", "conflict", "leak", "photo", "blank", "bad")
    }
    for label, count in CLASS_COUNTS.items():
        for i in range(count):
            _save(illustration(label, rng), training / label / f"{label}_{i:03d}.png")
        for i in range(TEST_PER_CLASS):
            _save(illustration(label, rng), test / label / f"{label}_test_{i:02d}.png")

    shutil.copyfile(training / "circle/circle_000.png", training / "circle/circle_000 copy.png")
    truth["exact"].append(["circle/circle_000.png", "circle/circle_000 copy.png"])
    source = Image.open(training / "star/star_001.png").convert("RGB")
    near = source.resize((72, 72), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    near.save(buffer, "JPEG", quality=75)  # a JPEG that calls itself .png
    (training / "star/star_001_small.png").write_bytes(buffer.getvalue())
    truth["near"].append(["star/star_001.png", "star/star_001_small.png"])
    shutil.copyfile(training / "house/house_002.png", training / "tree/house_002.png")
    truth["conflict"].append(["house/house_002.png", "tree/house_002.png"])
    shutil.copyfile(training / "fish/fish_001.png", test / "fish/fish_from_training.png")
    truth["leak"].append(["fish/fish_from_training.png", "fish/fish_001.png"])
    shutil.copyfile(training / "tree/tree_003.png", training / "tree/나무 그림 03.png")
    truth["exact"].append(["tree/tree_003.png", "tree/나무 그림 03.png"])
    for i, label in enumerate(["circle", "house", "star", "car"]):
        name = f"{label}/photo_{i}.jpg"
        _save(photo_like(rng), training / name, "JPEG", quality=90)
        truth["photo"].append(name)

    # a render that failed: a transparent PNG with nothing drawn on it
    Image.new("RGBA", (IMAGE_SIDE, IMAGE_SIDE), (0, 0, 0, 0)).save(
        training / "house/house_render_failed.png"
    )
    truth["blank"].append("house/house_render_failed.png")

    good = (training / "house/house_000.png").read_bytes()
    (training / "house/house_truncated.png").write_bytes(good[: len(good) // 2])
    (training / "car/empty.png").write_bytes(b"")
    (training / "fish/notes.jpg").write_text("this is not an image\n", encoding="utf-8")
    (training / "circle/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    truth["bad"] += [
        ["house/house_truncated.png", "truncated"],
        ["car/empty.png", "empty"],
        ["fish/notes.jpg", "not_image"],
    ]
    (Path(root) / "DEMO_TRUTH.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False))
    return truth


def check_against_truth(run_dir: Path, truth: dict[str, list]) -> dict[str, dict]:
    """What the run found of each planted problem, and what it flagged that was not planted,
    read from the run's manifest: the demo checks itself (`winnow demo` prints it).

    Per kind: `planted`, `found` and, for the checks that flag single images (blank,
    out_of_domain, leak, label_conflict), `unplanted`: the paths flagged beyond the truth.
    """
    from winnow.data.manifest import read_manifest

    rows = read_manifest(run_dir).set_index("path")

    def same_group(column: str, first: str, second: str) -> bool:
        a, b = rows.at[first, column], rows.at[second, column]
        return bool(a == a and a == b)  # a == a: not NaN

    issues = {
        check: set(rows.index[rows[f"is_{check}_issue"].fillna(False).astype(bool)])
        for check in ("blank", "out_of_domain", "leak", "label_conflict")
    }
    # the kinds whose check flags single images: (check, the images it should flag)
    planted_items = {
        "conflict": ("label_conflict", {path for pair in truth["conflict"] for path in pair}),
        "leak": ("leak", {train for _, train in truth["leak"]}),  # the training copy
        "blank": ("blank", set(truth["blank"])),
        "photo": ("out_of_domain", set(truth["photo"])),
    }
    found = {
        "bad": sum(rows.at[path, "status"] == reason for path, reason in truth["bad"]),
        "exact": sum(same_group("exact_duplicate_group", *pair) for pair in truth["exact"]),
        "near": sum(same_group("duplicate_group", *pair) for pair in truth["near"]),
        "conflict": sum(
            a in issues["label_conflict"] and b in issues["label_conflict"]
            for a, b in truth["conflict"]
        ),
        "leak": sum(train in issues["leak"] for _, train in truth["leak"]),
        "blank": len(issues["blank"] & planted_items["blank"][1]),
        "photo": len(issues["out_of_domain"] & planted_items["photo"][1]),
    }
    result = {}
    for kind, count in found.items():
        result[kind] = {"planted": len(truth[kind]), "found": int(count)}
        if kind in planted_items:
            check, planted = planted_items[kind]
            result[kind]["unplanted"] = sorted(issues[check] - planted)
    return result


def describe_check(result: dict[str, dict]) -> list[str]:
    """`check_against_truth` as lines for the terminal."""
    lines = [
        "planted and found: "
        + ", ".join(f"{kind} {row['found']}/{row['planted']}" for kind, row in result.items())
    ]
    for kind, row in result.items():
        if row.get("unplanted"):
            lines.append(f"flagged as {kind} but not planted: " + ", ".join(row["unplanted"]))
    return lines
