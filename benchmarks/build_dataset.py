"""Build the project benchmark: real clipart classes with real photographs and bad files mixed in.

Sources are Debian packages (fetched with `apt-get download`, unpacked with `dpkg -x`, no
root install): `openclipart-png` gives the classes (its top-level categories), and
`tuxpaint-stamps-default` gives cut-out photographs. Not every stamp is a photograph: its
`cartoon/`, `symbols/`, road-sign and flag folders hold drawings, a stamp that ships an SVG
is a drawing, and `NOT_PHOTOGRAPHS` lists the other drawings (and a few renders and glow
effects nobody would call either), judged by eye on a contact sheet of all 403 candidates.
Where a central opaque rectangle exists, up to half of the chosen photographs are cropped
to a full frame, saved alternately as JPEG and PNG (format must not be evidence).

Layout under .bench/ (git-ignored):
    debs/ raw/                      the packages and their unpacked files
    clipart/training/<class>/       DATA for scan/audit/train
    clipart/test/<class>/           a held-out folder (15 % of each class, by file-name hash)
    clipart/truth.json              what was planted: photos, bad files, renamed copies

Usage: python benchmarks/build_dataset.py [--root .bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGES = ("openclipart-png", "tuxpaint-stamps-default")
MIN_CLASS_SIZE = 15
EXCLUDED_CATEGORIES = {"unsorted"}  # a bin, not a class
PHOTOS = 300
DRAWING_FOLDERS = ("symbols/", "town/roadsigns/", "town/flags/")
NOT_PHOTOGRAPHS = frozenset(
    """
    animals/fish/shrimp animals/mammals/hedgehog clothes/button clothes/t_baseballcap
    clothes/t_glove clothes/t_jacket clothes/t_pants clothes/t_poloshirt clothes/t_scarf
    clothes/t_shirt clothes/t_sock clothes/t_tshirt food/pizza medical/tooth
    naturalforces/explosion naturalforces/fire naturalforces/lightningbolt people/body_parts/eye
    seasonal/christmas/Santa seasonal/christmas/bow seasonal/christmas/hard_candy
    seasonal/christmas/lamp seasonal/christmas/santahat seasonal/christmas/star
    seasonal/christmas/stocking seasonal/christmas/tree seasonal/christmas/xmas_tp_bulb
    seasonal/easter/bluebird seasonal/easter/bunny seasonal/easter/bunny-egg
    seasonal/easter/bunny-head seasonal/easter/butterfly seasonal/easter/chick
    seasonal/easter/chick-hatched seasonal/easter/chick-in-egg seasonal/easter/daffodil
    seasonal/easter/wrapped_chocolate_easter_egg seasonal/easter/wrapped_chocolate_easter_egg_2
    seasonal/halloween/bat_left seasonal/halloween/blackcat seasonal/halloween/ghost
    seasonal/halloween/grave-c seasonal/halloween/skull seasonal/halloween/spider
    seasonal/hanukkah/dreydl seasonal/hanukkah/dreydl-gimmel seasonal/hanukkah/dreydl-gimmel_mirror
    seasonal/hanukkah/dreydl-hay seasonal/hanukkah/dreydl-hay_mirror seasonal/hanukkah/dreydl-nun
    seasonal/hanukkah/dreydl-nun_mirror seasonal/hanukkah/dreydl-shin
    seasonal/hanukkah/dreydl-shin_mirror seasonal/hanukkah/holiday_candle
    seasonal/hanukkah/menorah seasonal/newyears/confetti seasonal/newyears/fireworks
    seasonal/newyears/fireworks2 seasonal/newyears/party-hat seasonal/newyears/party-horn-in
    seasonal/newyears/party-horn-out space/planets/0_sun space/planets/6_saturn
    space/planets/7_uranus space/planets/8_neptune town/monuments/inukshuk-outline
    vehicles/7spoke256 vehicles/emergency/sedan_police vehicles/emergency/sedan_police_mirror
    """.split()
)
NEAR_COPIES = 300  # same class
CONFLICT_COPIES = 40  # filed under another class
LEAK_COPIES = 100  # training image copied into the test folder
MAX_SOURCE_PIXELS = 16_000_000  # transform only images that decode quickly
warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we only read sizes
TEST_FRACTION = 0.15
SEED = 7
DATASET_VERSION = 2  # bump when the build changes: `make bench` rebuilds older data


def download(debs: Path, packages: tuple[str, ...]) -> None:
    """`apt-get download` the packages into `debs` (updating the package lists once if the
    first try fails)."""
    debs.mkdir(parents=True, exist_ok=True)
    command = ["apt-get", "download", *packages]
    if subprocess.run(command, cwd=debs).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(command, cwd=debs, check=True)


def fetch(root: Path) -> Path:
    raw = root / "raw"
    if (raw / "usr/share/openclipart/png").exists() and (raw / "usr/share/tuxpaint").exists():
        return raw
    debs = root / "debs"
    download(debs, PACKAGES)
    raw.mkdir(exist_ok=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(raw)], check=True)
    return raw


def _in_test(name: str) -> bool:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < TEST_FRACTION


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source.resolve(), target)
    except OSError:
        shutil.copyfile(source.resolve(), target)


def _opaque_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest fully opaque rectangle (of a few sizes) around the alpha centroid."""
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha == 255)
    if len(ys) == 0:
        return None
    cy, cx = ys.mean(), xs.mean()
    for fraction in (0.6, 0.5, 0.4, 0.3, 0.25):
        bw, bh = int(w * fraction), int(h * fraction)
        x0 = int(np.clip(cx - bw / 2, 0, w - bw))
        y0 = int(np.clip(cy - bh / 2, 0, h - bh))
        if bw >= 48 and bh >= 48 and alpha[y0 : y0 + bh, x0 : x0 + bw].min() == 255:
            return x0, y0, x0 + bw, y0 + bh
    return None


def _full_frame(source: Path, target: Path, fmt: str) -> bool:
    """Crop an opaque region of a cut-out photo into a full-frame picture."""
    with Image.open(source) as image:
        rgba = image.convert("RGBA")
    box = _opaque_box(np.asarray(rgba.getchannel("A")))
    if box is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    rgba.crop(box).convert("RGB").save(target, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return True


def photograph_stamps(stamps: Path) -> list[Path]:
    """The stamps that are photographs (see the module docstring for how they were judged)."""
    chosen = []
    for path in sorted(stamps.rglob("*.png")):
        relative = path.relative_to(stamps).with_suffix("").as_posix()
        if (
            relative.startswith(DRAWING_FOLDERS)
            or "/cartoon/" in f"/{relative}"
            or relative in NOT_PHOTOGRAPHS
            or path.with_suffix(".svg").exists()
        ):
            continue
        chosen.append(path)
    return chosen


def near_copy(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str, dict]:
    """A resized, slightly cropped, brightness-shifted copy and the format to save it in."""
    image = image.convert("RGBA")
    w, h = image.size
    fractions = rng.uniform(0.01, 0.05, size=4)
    box = (
        int(w * fractions[0]),
        int(h * fractions[1]),
        w - int(w * fractions[2]),
        h - int(h * fractions[3]),
    )
    scale = float(rng.uniform(0.5, 0.9))
    copy = image.crop(box)
    copy = copy.resize((max(8, int(copy.width * scale)), max(8, int(copy.height * scale))))
    shift = int(rng.choice([-1, 1]) * rng.integers(10, 31))
    rgb = np.asarray(copy, dtype=np.int16)
    rgb[..., :3] = np.clip(rgb[..., :3] + shift, 0, 255)
    copy = Image.fromarray(rgb.astype(np.uint8), "RGBA")
    fmt = "JPEG" if rng.random() < 0.6 else "PNG"
    quality = int(rng.integers(60, 91))
    if fmt == "JPEG":
        flat = Image.new("RGB", copy.size, (255, 255, 255))
        flat.paste(copy, mask=copy.getchannel("A"))
        copy = flat
    recipe = {
        "crop": [round(float(f), 3) for f in fractions],
        "scale": round(scale, 3),
        "brightness": shift,
        "format": fmt,
        "quality": quality if fmt == "JPEG" else None,
    }
    return copy, fmt, recipe


def _plant_near_duplicates(
    out: Path, classes: list[str], rng: np.random.Generator, truth: dict
) -> None:
    training = out / "training"
    photos = set(truth["photos"])
    sources = []
    for path in sorted(training.rglob("*.png")):
        relative = str(path.relative_to(out))
        if relative in photos or path.is_symlink():
            continue
        try:
            with Image.open(path) as image:
                if image.width * image.height <= MAX_SOURCE_PIXELS and min(image.size) >= 32:
                    sources.append(path)
        except Exception:  # noqa: BLE001 - planted bad files are not sources
            continue
    order = rng.permutation(len(sources))
    wanted = NEAR_COPIES + CONFLICT_COPIES + LEAK_COPIES
    truth["near_pairs"], truth["leaks"] = [], []
    for n, index in enumerate(order[:wanted]):
        source = sources[int(index)]
        with Image.open(source) as image:
            copy, fmt, recipe = near_copy(image, rng)
        suffix = ".jpg" if fmt == "JPEG" else ".png"
        label = source.parent.name
        if n < NEAR_COPIES:
            target = source.with_name(f"{source.stem}_nd{n}{suffix}")
            kind = "near"
        elif n < NEAR_COPIES + CONFLICT_COPIES:
            other = [c for c in classes if c != label][int(rng.integers(len(classes) - 1))]
            target = training / other / f"{source.stem}_conflict{n}{suffix}"
            kind = "conflict"
        else:
            target = out / "test" / label / f"{source.stem}_leak{n}{suffix}"
            kind = "leak"
        target.parent.mkdir(parents=True, exist_ok=True)
        copy.save(target, fmt, **({"quality": recipe["quality"]} if fmt == "JPEG" else {}))
        pair = [str(target.relative_to(out)), str(source.relative_to(out)), kind, recipe]
        (truth["leaks"] if kind == "leak" else truth["near_pairs"]).append(pair)


def current(root: Path) -> Path:
    """root/clipart, built only when missing or of an older DATASET_VERSION (a rebuild
    removes what was made from it, such as the clean test folder)."""
    truth_file = root / "clipart" / "truth.json"
    version = json.loads(truth_file.read_text()).get("version") if truth_file.exists() else None
    if version != DATASET_VERSION:
        return build(root)
    return root / "clipart"


def build(root: Path) -> Path:
    raw = fetch(root)
    out = root / "clipart"
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(SEED)
    clipart = raw / "usr/share/openclipart/png"
    classes = []
    for category in sorted(p for p in clipart.iterdir() if p.is_dir()):
        files = sorted(category.rglob("*.png"))
        if len(files) >= MIN_CLASS_SIZE and category.name not in EXCLUDED_CATEGORIES:
            classes.append(category.name)
            for source in files:
                relative = source.relative_to(category)
                name = "__".join(relative.parts)  # flatten sub-categories into the file name
                split = "test" if _in_test(name) else "training"
                _place(source, out / split / category.name / name)

    truth: dict = {
        "version": DATASET_VERSION,
        "classes": classes,
        "photos": [],
        "bad": [],
        "renamed_copies": [],
    }
    stamps = raw / "usr/share/tuxpaint/stamps"
    photos = photograph_stamps(stamps)
    photo_rng = np.random.default_rng([SEED, 1])  # photos don't shift the other draws
    chosen = photo_rng.choice(len(photos), size=min(PHOTOS, len(photos)), replace=False)
    full_frames = 0
    for index in sorted(chosen):
        source = photos[index]
        label = classes[int(photo_rng.integers(len(classes)))]
        stem = "photo_" + "_".join(source.relative_to(stamps).with_suffix("").parts)
        split = "test" if _in_test(stem) else "training"
        fmt, suffix = ("JPEG", ".jpg") if full_frames % 2 == 0 else ("PNG", ".png")
        target = out / split / label / f"{stem}_frame{suffix}"
        if full_frames < PHOTOS // 2 and _full_frame(source, target, fmt):
            full_frames += 1
            truth["photos"].append(str(target.relative_to(out)))
        else:
            _place(source, out / split / label / f"{stem}.png")
            truth["photos"].append(f"{split}/{label}/{stem}.png")

    training = out / "training"
    pngs = sorted(training.rglob("*.png"))
    picks = [pngs[int(i)] for i in rng.choice(len(pngs), size=12, replace=False)]
    for source in picks[:3]:
        target = source.with_name(source.stem + "_cut.png")
        data = source.read_bytes()
        target.write_bytes(data[: max(64, len(data) // 3)])
        truth["bad"].append([str(target.relative_to(out)), "truncated"])
    for source in picks[3:5]:
        target = source.with_name(source.stem + "_empty.png")
        target.write_bytes(b"")
        truth["bad"].append([str(target.relative_to(out)), "empty"])
    for source in picks[5:7]:
        target = source.with_name(source.stem + "_page.png")
        target.write_text("<html><body>404 Not Found</body></html>\n")
        truth["bad"].append([str(target.relative_to(out)), "not_image"])
    for k, source in enumerate(picks[7:12]):
        target = source.with_name(f"그림 복사본 {k}.png")  # Korean name with spaces
        shutil.copyfile(source, target)
        truth["renamed_copies"].append([str(target.relative_to(out)), str(source.relative_to(out))])
    _plant_near_duplicates(out, classes, rng, truth)
    (out / "truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    out = build(args.root)
    counts = {p.name: sum(1 for _ in p.iterdir()) for p in sorted((out / "training").iterdir())}
    print(f"benchmark data: {out} ({sum(counts.values())} training files in {len(counts)} classes)")


if __name__ == "__main__":
    main()
