"""Fixture factory: tiny images of every kind a crawled folder holds, each bad input included.

`write_kind(folder, kind)` writes one file and returns its path; `KINDS` maps each kind to
the status `winnow scan` must give it. Everything is generated: no network, no downloads.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIDE = 24


def gradient(width: int = SIDE, height: int = SIDE) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    array = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128, np.float32),
        ],
        axis=2,
    )
    return Image.fromarray(array.astype(np.uint8), "RGB")


def solid(colour: tuple[int, int, int] = (200, 30, 30), side: int = SIDE) -> Image.Image:
    return Image.new("RGB", (side, side), colour)


def transparent_glyph() -> Image.Image:
    """A black square on a fully transparent background (clipart's usual shape)."""
    image = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (8, 8, 16, 16))
    return image


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (SIDE, SIDE), 0)
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.paste(1, (4, 4, 20, 20))
    return _png(image, transparency=0)


def _la() -> bytes:
    image = Image.new("LA", (SIDE, SIDE), (0, 0))
    image.paste((90, 255), (6, 6, 18, 18))
    return _png(image)


def _cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (SIDE, SIDE), (0, 255, 255, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def _sixteen_bit_gray() -> bytes:
    array = np.full((SIDE, SIDE), 65535, dtype=np.uint16)
    array[:, : SIDE // 2] = 32768
    return _png(Image.fromarray(array))


def _gray() -> bytes:
    return _png(gradient().convert("L"))


def _exif_rotated_jpeg() -> bytes:
    """Stored 32×16 (wide), EXIF orientation 6: shown 16×32 (tall)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(gradient(32, 16), exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def _webp() -> bytes:
    buffer = io.BytesIO()
    gradient().save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def _truncated_png() -> bytes:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    data = _png(noisy)
    return data[: len(data) // 2]


def _truncated_jpeg() -> bytes:
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8))
    data = _jpeg(noisy, quality=95)
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    """A complete PNG whose image data was damaged (valid chunk CRC, broken zlib stream)."""
    data = bytearray(_png(gradient()))
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    payload = bytearray(data[start : start + length])
    payload[2:10] = b"\xff" * 8
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + payload) & 0xFFFFFFFF)
    return bytes(data[:start] + payload + crc + data[start + length + 4 :])


WRITERS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "png_rgb": ("gradient.png", lambda: _png(gradient())),
    "png_rgba_transparent": ("glyph.png", lambda: _png(transparent_glyph())),
    "png_palette_transparent": ("palette.png", _palette_with_transparency),
    "png_la": ("gray alpha.png", _la),
    "png_gray": ("gray.png", _gray),
    "png_16bit_gray": ("deep.png", _sixteen_bit_gray),
    "jpeg_cmyk": ("cmyk.jpg", _cmyk_jpeg),
    "jpeg_exif_rotated": ("rotated.jpg", _exif_rotated_jpeg),
    "jpeg_named_png": ("actually_jpeg.png", lambda: _jpeg(gradient())),
    "gif_animated": ("anim.gif", _animated_gif),
    "webp": ("lossless.webp", _webp),
    "korean_name": ("고양이 사진 01.png", lambda: _png(solid((10, 120, 200)))),
    "empty": ("empty.png", lambda: b""),
    "text_as_jpeg": ("notes.jpg", lambda: b"definitely not a picture\n"),
    "truncated_png": ("cut.png", _truncated_png),
    "truncated_jpeg": ("cut.jpg", _truncated_jpeg),
    "corrupt_png": ("damaged.png", _corrupt_png),
}

KINDS: dict[str, str] = {
    **{kind: "ok" for kind in WRITERS},
    "empty": "empty",
    "text_as_jpeg": "not_image",
    "truncated_png": "truncated",
    "truncated_jpeg": "truncated",
    "corrupt_png": "corrupt",
}


def write_kind(folder: Path, kind: str) -> Path:
    name, make = WRITERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(make())
    return path


def write_messy_dataset(root: Path, per_class: int = 4) -> dict[str, str]:
    """Two clean classes plus a class folder holding one file of every kind.

    Returns {relative path: expected status}.
    """
    expected: dict[str, str] = {}
    for label, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(per_class):
            path = root / label / f"{label}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            shade = tuple(max(0, c - 15 * i) for c in colour)
            path.write_bytes(_png(solid(shade)))  # type: ignore[arg-type]
            expected[f"{label}/{path.name}"] = "ok"
    for kind, status in KINDS.items():
        path = write_kind(root / "mixed", kind)
        expected[f"mixed/{path.name}"] = status
    (root / "red" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".hidden_folder").mkdir()
    (root / ".hidden_folder" / "x.png").write_bytes(_png(solid()))
    return expected


# look-alike drawings for the near-duplicate tests


def brightened(image: Image.Image, shift: int) -> Image.Image:
    """Every channel shifted by `shift`, clipped at 0 and 255 (a crawler's 'auto-level')."""
    array = np.asarray(image, np.int16) + shift
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def spirograph(points: int, step: int, side: int = 100) -> Image.Image:
    """openclipart's star series: `points` on a circle, each joined to the one `step` ahead,
    in hairlines; siblings one point apart look alike at a glance."""
    big = Image.new("RGB", (4 * side, 4 * side), (255, 255, 255))
    draw = ImageDraw.Draw(big)
    angles = 2 * np.pi * np.arange(points) / points
    corners = [
        (2 * side + 1.9 * side * np.cos(a), 2 * side + 1.9 * side * np.sin(a)) for a in angles
    ]
    for k in range(points):
        draw.line((corners[k], corners[(k + step) % points]), fill=(0, 0, 0), width=1)
    return big.resize((side, side), Image.LANCZOS)


def card(pip: str = "club") -> Image.Image:
    """A playing card of the openclipart decks: a rounded white card, two small pips in
    opposite corners and four large ones; the suit is only the pips' shape."""
    image = Image.new("RGB", (140, 190), (200, 220, 200))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((2, 2, 137, 187), radius=10, fill=(255, 255, 255), outline=(40, 40, 40))

    def pip_at(x: float, y: float, r: float) -> None:
        if pip == "club":
            for dx, dy in ((0, -0.55), (-0.55, 0.2), (0.55, 0.2)):
                cx, cy = x + dx * r, y + dy * r
                draw.ellipse((cx - 0.5 * r, cy - 0.5 * r, cx + 0.5 * r, cy + 0.5 * r), fill=0)
        else:  # spade: a pointed leaf
            draw.polygon([(x, y - r), (x - r, y + 0.3 * r), (x + r, y + 0.3 * r)], fill=0)
            draw.ellipse((x - r, y - 0.2 * r, x, y + 0.6 * r), fill=0)
            draw.ellipse((x, y - 0.2 * r, x + r, y + 0.6 * r), fill=0)
        draw.polygon([(x, y + 0.3 * r), (x - 0.3 * r, y + r), (x + 0.3 * r, y + r)], fill=0)

    for x, y, r in ((18, 30, 7), (122, 160, 7), (50, 60, 14), (90, 60, 14), (50, 130, 14)):
        pip_at(x, y, r)
    pip_at(90, 130, 14)
    return image


def fingerprint(root: Path) -> dict[str, tuple]:
    """Every entry under root: inode, link count, mode, size, mtime and content digest."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            key = str(path.relative_to(root))
            state[key] = (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state
