"""Build the photo-source benchmark: the project benchmark's drawings with photographs of
four kinds mixed in, each photograph's source recorded, for `bench_photo_sources.py`.

The project benchmark (`build_dataset.py`) plants one kind of photograph, Tux Paint's
cut-out stamps. A crawled illustration folder holds others. This one adds three more kinds,
all from Debian packages (`apt-get download` + `dpkg -x`, no root install), each picture
judged a photograph by eye on a contact sheet (renders, paintings and flat wallpapers left out):

    stamps      Tux Paint's cut-out photographs, as the project benchmark planted them
    wallpapers  full-frame desktop background photographs (landscapes, flowers, a dog, boats,
                architecture): mate-backgrounds' nature set, lomiri-wallpapers-16.04/-20.04,
                plasma-workspace-wallpapers
    vision      computer-vision test photographs (objects, fruit, animals, buildings, aerial
                views, textures, microscopy, astronomy): opencv-doc's sample data and
                python3-skimage's data folder
    faces       people: the 100 face thumbnails of scikit-image's Labeled Faces in the Wild
                subset (25 px, grayscale) resampled to 32–112 px, and crops of its
                astronaut and cameraman and of opencv's football and basketball photographs

Every new photograph is a random crop (60–1,000 px on its shorter side, aspect 0.6–1.6)
of its source picture, drawn again while it shows no content (`random_crop`); a third
are then resampled small (64–128 px on the longer side), a fifth turned grayscale, and
they alternate JPEG (quality 70–95) and PNG, so neither size nor format carries the
answer. They are filed under random classes with neutral names.
Everything else is the project benchmark's training folder, hard-linked.

Layout under .bench/ (git-ignored):
    debs/ raw/                    the packages and their unpacked files (shared)
    photos/training/<class>/      DATA for scan and audit
    photos/truth.json             every photograph: source, package, picture, crop, treatment

Usage: python benchmarks/build_photos.py [--root .bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from build_dataset import current as project_benchmark
from build_dataset import download

Image.MAX_IMAGE_PIXELS = None  # the wallpapers are up to 5,640 × 3,172, all trusted
PACKAGES = (
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "plasma-workspace-wallpapers",
    "opencv-doc",
    "python3-skimage",
)
BACKGROUNDS = "usr/share/backgrounds"
PLASMA = "usr/share/wallpapers"
OPENCV = "usr/share/doc/opencv-doc/examples"
SKIMAGE = "usr/lib/python3/dist-packages/skimage/data"
MATE_NATURE = (
    "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood "
    "YellowFlower"
).split()
LOMIRI = (
    "Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace "
    "Picture_1A_by_freespace Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi "
    "free_by_Peter_Nerlich friends_by_Aitzol_Berasategi life_by_Aitzol_Berasategi "
    "picosdeeuropa_by_Aitzol_Berasategi seeding_by_Clements_Engelhardt "
    "sunset_by_Aitzol_Berasategi Infinite-Sea_by_Aury88 Kleiber_by_Lukas_Baubkus"
).split()
PLASMA_PHOTOS = (
    "BytheWater ColdRipple DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path "
    "summer_1am"
).split()
OPENCV_PHOTOS = (
    "data/fruits.jpg data/baboon.jpg data/home.jpg data/building.jpg data/butterfly.jpg "
    "data/aero1.jpg data/aero3.jpg data/apple.jpg data/orange.jpg data/squirrel_cls.jpg "
    "data/leuvenA.jpg data/graf1.png data/box_in_scene.png data/box.png data/board.jpg "
    "data/left01.jpg data/aloeL.jpg data/stuff.jpg data/licenseplate_motion.jpg "
    "data/ela_original.jpg data/rubberwhale1.png data/chicky_512.png hfs/data/000.jpg "
    "hfs/data/001.jpg hfs/data/002.jpg alphamat/input_images/plant.jpg"
).split()
SKIMAGE_PHOTOS = (
    "brick.png cell.png chelsea.png coffee.png coins.png grass.png gravel.png "
    "hubble_deep_field.jpg ihc.png moon.png motorcycle_left.png"
).split()
PEOPLE = ("skimage:astronaut.png", "skimage:camera.png", "opencv:data/messi5.jpg",
          "opencv:data/basketball1.png", "opencv:data/basketball2.png")  # fmt: skip
CROPS = {"wallpapers": 5, "vision": 4, "people": 4}
SHORTER_SIDE = (60, 1000)
SMALL_SIDE = (64, 128)
FACE_SIDE = (32, 112)
SMALL_SHARE, GRAY_SHARE = 1 / 3, 1 / 5
MIN_CONTENT, TRIES = 16.0, 20  # grey levels of standard deviation a crop must show
SEED = 11
DATASET_VERSION = 1  # bump when the build changes


def fetch(root: Path) -> Path:
    """Download and unpack PACKAGES under root/raw (skipped when already there)."""
    raw, debs = root / "raw", root / "debs"
    marker = raw / ".photo-packages"
    if marker.exists():
        return raw
    download(debs, PACKAGES)
    raw.mkdir(exist_ok=True)
    for name in PACKAGES:
        (deb,) = sorted(debs.glob(f"{name}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(raw)], check=True)
    marker.write_text("\n".join(PACKAGES))
    return raw


def sources(raw: Path) -> dict[str, list[tuple[str, Path]]]:
    """(package, picture) per source kind; `people` becomes part of `faces`."""
    plasma = []
    for name in PLASMA_PHOTOS:
        images = sorted((raw / PLASMA / name / "contents/images").iterdir())
        largest = max(images, key=lambda p: p.stat().st_size)
        plasma.append(("plasma-workspace-wallpapers", largest))
    lomiri = [(raw / BACKGROUNDS / f"{name}.jpg") for name in LOMIRI]
    return {
        "wallpapers": [
            *[
                ("mate-backgrounds", raw / BACKGROUNDS / "mate/nature" / f"{name}.jpg")
                for name in MATE_NATURE
            ],
            *[("lomiri-wallpapers", path) for path in lomiri],
            *plasma,
        ],
        "vision": [
            *[("opencv-doc", raw / OPENCV / name) for name in OPENCV_PHOTOS],
            *[("python3-skimage", raw / SKIMAGE / name) for name in SKIMAGE_PHOTOS],
        ],
        "people": [
            ("python3-skimage", raw / SKIMAGE / spec.split(":")[1])
            if spec.startswith("skimage:")
            else ("opencv-doc", raw / OPENCV / spec.split(":")[1])
            for spec in PEOPLE
        ],
    }


def random_crop(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, list[int]]:
    """A random crop with visible content: one whose 64 px grey thumbnail varies less than
    `MIN_CONTENT` (clear sky, a blurred background, a bare wall) is drawn again, up to
    `TRIES` times; nobody could tell such a crop from a flat fill."""
    for _ in range(TRIES):
        crop, box = _any_crop(image, rng)
        thumbnail = crop.convert("L")
        thumbnail.thumbnail((64, 64))
        if np.asarray(thumbnail, dtype=np.float32).std() >= MIN_CONTENT:
            break
    return crop, box


def _any_crop(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, list[int]]:
    w, h = image.size
    shorter = min(w, h, int(np.exp(rng.uniform(*np.log(SHORTER_SIDE)))))
    aspect = rng.uniform(0.6, 1.6)
    if aspect >= 1:
        cw, ch = shorter, round(shorter * aspect)
    else:
        cw, ch = round(shorter / aspect), shorter
    cw, ch = min(cw, w), min(ch, h)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    box = [x0, y0, x0 + cw, y0 + ch]
    return image.crop(box), box


def treat(image: Image.Image, rng: np.random.Generator, side: tuple[int, int] | None) -> dict:
    """Resample small (always to `side` when given, else a third of the time), grayscale a
    fifth of the time; returns the image and what was done."""
    done: dict = {}
    if side is not None or rng.random() < SMALL_SHARE:
        longer = int(rng.integers(*(side or SMALL_SIDE), endpoint=True))
        scale = longer / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        method = [Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR][
            int(rng.integers(3))
        ]
        image = image.resize(size, method)
        done["resampled"] = list(size)
    if image.mode != "L" and rng.random() < GRAY_SHARE:
        image = image.convert("L")
        done["gray"] = True
    return {"image": image, **done}


def _save(image: Image.Image, target: Path, index: int, rng: np.random.Generator) -> dict:
    target.parent.mkdir(parents=True, exist_ok=True)
    if index % 2 == 0:
        quality = int(rng.integers(70, 96))
        image.save(target.with_suffix(".jpg"), "JPEG", quality=quality)
        return {"format": "JPEG", "quality": quality, "file": target.with_suffix(".jpg")}
    image.save(target.with_suffix(".png"), "PNG")
    return {"format": "PNG", "file": target.with_suffix(".png")}


def _link_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, destination)
            except OSError:
                shutil.copyfile(path, destination)


def build(root: Path) -> Path:
    out = root / "photos"
    truth_file = out / "truth.json"
    if truth_file.exists() and json.loads(truth_file.read_text()).get("version") == DATASET_VERSION:
        return out
    project = project_benchmark(root)
    raw = fetch(root)
    if out.exists():
        shutil.rmtree(out)
    training = out / "training"
    _link_tree(project / "training", training)
    classes = sorted(p.name for p in training.iterdir() if p.is_dir())
    project_truth = json.loads((project / "truth.json").read_text())
    photos: dict[str, dict] = {
        path: {"source": "stamps", "package": "tuxpaint-stamps-default"}
        for path in project_truth["photos"]
        if path.startswith("training/")
    }
    rng = np.random.default_rng(SEED)
    counter = 0

    def place(image: Image.Image, record: dict, side: tuple[int, int] | None = None) -> None:
        nonlocal counter
        treated = treat(image, rng, side)
        label = classes[int(rng.integers(len(classes)))]
        digest = hashlib.sha256(f"{SEED}-{counter}".encode()).hexdigest()[:10]
        saved = _save(treated.pop("image"), training / label / f"img_{digest}", counter, rng)
        path = saved.pop("file").relative_to(out).as_posix()
        photos[path] = {**record, **treated, **saved}
        counter += 1

    for kind, pictures in sources(raw).items():
        for package, picture in pictures:
            with Image.open(picture) as opened:
                image = opened.convert("RGB") if opened.mode != "L" else opened.copy()
            for _ in range(CROPS[kind]):
                crop, box = random_crop(image, rng)
                record = {
                    "source": "faces" if kind == "people" else kind,
                    "package": package,
                    "picture": picture.relative_to(raw).as_posix(),
                    "crop": box,
                }
                place(crop, record, SMALL_SIDE if kind == "people" else None)
    faces = np.load(raw / SKIMAGE / "lfw_subset.npy")[:100]  # the first 100 are faces
    for i, face in enumerate(faces):
        image = Image.fromarray(np.rint(face * 255).astype(np.uint8), "L")
        record = {"source": "faces", "package": "python3-skimage", "picture": f"lfw_subset[{i}]"}
        place(image, record, FACE_SIDE)
    truth = {
        "version": DATASET_VERSION,
        "drawings_from": str(project / "training"),
        "photos": photos,
        "bad": [p for p, _ in project_truth["bad"] if p.startswith("training/")],
    }
    truth_file.write_text(json.dumps(truth, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".bench"))
    out = build(parser.parse_args().root)
    photos = json.loads((out / "truth.json").read_text())["photos"]
    counts: dict[str, int] = {}
    for record in photos.values():
        counts[record["source"]] = counts.get(record["source"], 0) + 1
    print(f"{out}: photographs by source {counts}")


if __name__ == "__main__":
    main()
