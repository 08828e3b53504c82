"""Decode one image robustly: every failure becomes a status code and a sentence.

Status codes (the manifest's `status` column):

==============  ==========================================================================
ok              decoded; pixels and hashes are present
empty           the file has zero bytes
truncated       the data stops before the image ends (found by a full decode, not verify())
not_image       the content is not an image format we can read (the extension is ignored)
corrupt         an image header, but the data is damaged (bad checksum, bad compression)
oversized       more pixels than `max_pixels` (decompression-bomb guard); no decode attempted
unreadable      the file can't be opened (permissions, broken link, I/O error)
==============  ==========================================================================

Images whose in-memory decode would exceed `decode_memory_mb` are decoded by libvips in a
streaming, shrink-as-you-go pass, so legitimately huge drawings (600 MP clipart exists)
are kept without running out of memory.

Besides the letterboxed `image_size` square, every decode keeps a `detail_size` crop of the
image at its own resolution (`detail_crop`): where the image has the most foreground, not
resized. Checks that need fine texture (photographs have sensor noise and continuous
shading that a downscale averages away) read it from the cache. JPEGs are decoded at the
DCT-reduced scale (at least twice `image_size`) and streamed huge images at four times
`image_size`, so for those the crop is at that scale.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from winnow.data.config import ScanConfig
from winnow.data.hashing import perceptual_hashes

# The names images usually have. Never evidence of what a file is (its content decides);
# used to find images in a folder for `predict`, and to report a file named like an image
# whose content is none (an HTML page saved as .png) among the broken ones.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})

# Bytes a decode needs per pixel: the decoded frame, a mode conversion and a hashing copy.
_BYTES_PER_PIXEL_IN_FLIGHT = 12
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
FOREGROUND_TOLERANCE = 6  # a pixel this close to the background colour is background
_STREAMING_SCALE = 4  # streamed images are shrunk to this × image_size before the crop
DRAFT_SIDE = 2  # a JPEG is decoded at a reduced scale (Pillow's draft) to ≥ this × image_size


@dataclass(frozen=True)
class Decoded:
    """What one decode pass learns about one file."""

    status: str
    error: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    n_frames: int | None = None
    has_alpha: bool | None = None
    decoder: str | None = None
    pixel_sha256: str | None = None
    phash: int | None = None
    dhash: int | None = None
    pixels: np.ndarray | None = None  # (size, size, 3) uint8, letterboxed
    detail: np.ndarray | None = None  # (detail_size, detail_size, 3) uint8, unresized crop


def prepare_worker() -> None:
    """Process-wide settings for decoding: our own pixel cap replaces Pillow's warning band."""
    Image.MAX_IMAGE_PIXELS = None
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        import pyvips

        pyvips.cache_set_max(0)
        pyvips.concurrency_set(1)
    except (ImportError, OSError, AttributeError):  # pragma: no cover - optional speed-up
        pass


EMPTY_REASON = "file has zero bytes"


def decode_file(path: str, config: ScanConfig, fingerprints: bool = True) -> Decoded:
    """Decode `path` into cache pixels and hashes, or explain why it can't be. Without
    `fingerprints` (inference: predict, serve) the pixel digest, the perceptual hashes and
    the detail crop are skipped; the pixels are the same."""
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        head = _head(path)  # read once: what its first bytes announce, or look like
        if not head:
            return Decoded("empty", EMPTY_REASON)
        signature = _known_signature(head)
        if signature:
            message = f"starts like a {signature} file but its header can't be read"
            return Decoded("corrupt", message)
        return Decoded("not_image", _not_an_image(head))
    except PermissionError:
        return Decoded("unreadable", "permission denied")
    except FileNotFoundError:
        return Decoded("unreadable", "file vanished during the scan")
    except Image.DecompressionBombError as exc:  # only if a caller left Pillow's cap on
        return Decoded("oversized", str(exc))
    except OSError as exc:
        return _failure(exc, {})
    except (SyntaxError, ValueError) as exc:
        return Decoded("corrupt", f"cannot parse image header: {exc}")
    with image:
        return _decode_opened(image, path, config, fingerprints)


def _decode_opened(
    image: Image.Image, path: str, config: ScanConfig, fingerprints: bool = True
) -> Decoded:
    facts = {
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "n_frames": getattr(image, "n_frames", 1),
    }
    pixels = image.width * image.height
    if pixels > config.max_pixels:
        return Decoded(
            "oversized",
            f"{image.width}×{image.height} = {pixels / 1e6:.0f} MP is over the limit of "
            f"{config.max_pixels / 1e6:.0f} MP (max_pixels); not decoded",
            **facts,
        )
    if pixels * _BYTES_PER_PIXEL_IN_FLIGHT > config.decode_memory_mb * 2**20:
        return _decode_streaming(path, config, facts, fingerprints)
    try:
        if image.format == "JPEG":
            side = config.image_size * DRAFT_SIDE
            image.draft("RGB", (side, side))
        image.load()
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in (5, 6, 7, 8):
            facts["width"], facts["height"] = facts["height"], facts["width"]  # as displayed
        if orientation in (2, 3, 4, 5, 6, 7, 8):  # else exif_transpose would only copy
            image = ImageOps.exif_transpose(image)
        rgb = _to_rgb_or_rgba(image)
    except Image.DecompressionBombError as exc:
        return Decoded("oversized", str(exc), **facts)
    except OSError as exc:
        return _failure(exc, facts)
    except (SyntaxError, ValueError, EOFError) as exc:
        return Decoded("corrupt", f"image data is damaged: {exc}", **facts)
    pixel_sha = _pixel_digest(rgb) if fingerprints else None
    return _finish(rgb, config, facts, "pillow", pixel_sha, fingerprints)


_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _head(path: str, size: int = 2048) -> bytes:
    """A file's first bytes (none when it can't be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _known_signature(head: bytes) -> str | None:
    """The image format a file's first bytes announce, if any (RIFF/WEBP checked apart)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _SIGNATURES.items() if head.startswith(magic)), None)


def describe_content(head: bytes) -> str:
    """What a file's first bytes say it is, in words: 'a PNG image', or why it is none."""
    if not head:
        return "an empty file"
    known = _known_signature(head)
    if known is not None:
        return f"a {known} image"
    return _non_image_kind(head) or "data of no format winnow knows"


def _not_an_image(head: bytes) -> str:
    """Why a file is not an image, in words a user can act on: what its first bytes look
    like (an SVG drawing to render, an HTML page a crawler saved instead of the picture,
    plain text) or that its content is no image format at all."""
    reason = "content is not a recognised image format"
    kind = _non_image_kind(head)
    return f"{reason}: {kind}" if kind else reason


def _non_image_kind(head: bytes) -> str | None:
    """What a file that is no image looks like (SVG, HTML, text), or None when unknown."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text:
        return "an SVG (vector) drawing; render it to PNG to use it (rsvg-convert)"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:512]:
        return "an HTML page (a download that saved an error page?)"
    if head and b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:  # cut in the middle of a character: still text
            if exc.start < len(head) - 3:
                return None
        return "text"
    return None


def _failure(exc: OSError, facts: dict) -> Decoded:
    message = str(exc)
    if isinstance(exc, PermissionError):
        return Decoded("unreadable", "permission denied", **facts)
    if any(word in message.lower() for word in ("truncated", "end of file")):
        return Decoded("truncated", f"file ends before the image does ({message})", **facts)
    return Decoded("corrupt", f"image data is damaged: {message}", **facts)


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """Normalise any mode to 8-bit RGB, or RGBA when the image has real transparency."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        gray = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            return rgba
        return rgba.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _pixel_digest(image: Image.Image) -> str:
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _decode_streaming(
    path: str, config: ScanConfig, facts: dict, fingerprints: bool = True
) -> Decoded:
    """Shrink a huge image with libvips without holding it in memory (no pixel digest)."""
    try:
        import pyvips
    except (ImportError, OSError):
        need = facts["width"] * facts["height"] * _BYTES_PER_PIXEL_IN_FLIGHT / 2**20
        return Decoded(
            "oversized",
            f"{facts['width']}×{facts['height']} needs ~{need:.0f} MB to decode, over "
            f"decode_memory_mb={config.decode_memory_mb}, and libvips is not installed",
            **facts,
        )
    size = config.image_size * _STREAMING_SCALE
    try:
        thumb = pyvips.Image.thumbnail(path, size, height=size, size="down", fail_on="truncated")
        if thumb.format != "uchar" or thumb.interpretation not in ("srgb", "b-w"):
            thumb = thumb.colourspace("srgb")
        array = thumb.numpy()
        width, height = facts["width"], facts["height"]
        if width != height and (thumb.width > thumb.height) != (width > height):
            facts = {**facts, "width": height, "height": width}  # vips applied EXIF rotation
    except pyvips.Error as exc:
        message = str(exc).strip().replace("\n", " ")
        status = "truncated" if "read error" in message or "truncat" in message else "corrupt"
        return Decoded(status, f"streaming decode failed: {message}", **facts)
    if array.ndim == 2:
        array = array[:, :, None]
    bands = array.shape[2]
    if bands in (1, 2):
        gray = np.repeat(array[:, :, :1], 3, axis=2)
        array = np.concatenate([gray, array[:, :, 1:]], axis=2) if bands == 2 else gray
    mode = "RGBA" if array.shape[2] == 4 else "RGB"
    image = Image.fromarray(np.ascontiguousarray(array[:, :, :4]), mode)
    return _finish(image, config, facts, "vips", None, fingerprints)


def draft_reduces(
    formats: np.ndarray, widths: np.ndarray, heights: np.ndarray, image_size: int
) -> np.ndarray:
    """Per file, whether the scan decoded it at a reduced scale (a JPEG at least twice
    DRAFT_SIDE × image_size on both sides: Pillow's draft then halves it or more). Its cache
    view was made from that reduction, not from the full picture, so it is not resampled the
    way a same-size PNG is."""
    side = image_size * DRAFT_SIDE
    jpeg = np.asarray(formats, dtype=object) == "JPEG"
    widths, heights = np.asarray(widths, np.float64), np.asarray(heights, np.float64)
    return jpeg & (np.minimum(widths // side, heights // side) >= 2)


def fit_inside(image: Image.Image, size: int) -> Image.Image:
    """A copy scaled (down or up) so the longer side is `size`, keeping the aspect ratio;
    `image` itself is left as it is (the detail crop is cut from it afterwards)."""
    scale = size / max(image.size)
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if target == image.size:
        return image
    gap = 3.0 if scale < 1 else None
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=gap)


def _finish(
    image: Image.Image,
    config: ScanConfig,
    facts: dict,
    decoder: str,
    pixel_sha: str | None,
    fingerprints: bool = True,
) -> Decoded:
    """Resize to fit, composite transparency, hash, letterbox into the cache square; crop
    the detail window from the unresized image."""
    size = config.image_size
    background = config.background_rgb()
    has_alpha = image.mode == "RGBA"
    full = image
    image = fit_inside(full, size)
    if has_alpha:
        image = _flatten(image, background)
    hashes = perceptual_hashes(image) if fingerprints else {"phash": None, "dhash": None}
    detail = (
        detail_crop(full, np.asarray(image), config.detail_size, background)
        if fingerprints
        else None
    )
    return Decoded(
        "ok",
        None,
        has_alpha=has_alpha,
        decoder=decoder,
        pixel_sha256=pixel_sha,
        phash=hashes["phash"],
        dhash=hashes["dhash"],
        pixels=_letterbox(image, size, background),
        detail=detail,
        **facts,
    )


def _flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    flat = Image.new("RGB", image.size, background)
    flat.paste(image, mask=image.getchannel("A"))
    return flat


def _letterbox(image: Image.Image, side: int, background: tuple[int, int, int]) -> np.ndarray:
    """`image` (RGB, no side longer than `side`) centred on a `side` square of background."""
    canvas = Image.new("RGB", (side, side), background)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def foreground_mask(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """True where a pixel of (..., 3) uint8 `pixels` differs from `background` by more than
    `FOREGROUND_TOLERANCE` in any channel."""
    distance = np.abs(pixels.astype(np.int16) - np.asarray(background, dtype=np.int16))
    over = distance > FOREGROUND_TOLERANCE
    return over[..., 0] | over[..., 1] | over[..., 2]


def detail_crop(
    full: Image.Image, fitted: np.ndarray, side: int, background: tuple[int, int, int]
) -> np.ndarray:
    """The `side` × `side` window of `full` (unresized) with the most foreground.

    The window is chosen on `fitted` (the image resized to the cache size, transparency
    already flattened), where counting foreground (`foreground_mask`) is cheap, and cut
    from `full`. An image smaller than `side` is kept whole, centred on the background.
    """
    width, height = full.size
    crop_w, crop_h = min(side, width), min(side, height)
    scale = fitted.shape[1] / width
    window_w = min(fitted.shape[1], max(1, round(crop_w * scale)))
    window_h = min(fitted.shape[0], max(1, round(crop_h * scale)))
    foreground = foreground_mask(fitted, background)
    summed = np.zeros((foreground.shape[0] + 1, foreground.shape[1] + 1), dtype=np.int32)
    summed[1:, 1:] = foreground.cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
    counts = (
        summed[window_h:, window_w:]
        - summed[:-window_h, window_w:]
        - summed[window_h:, :-window_w]
        + summed[:-window_h, :-window_w]
    )
    # of the windows with the most foreground, the one nearest the middle of their range:
    # on a large object that is well inside it, away from the anti-aliased rim
    tops, lefts = np.nonzero(counts == counts.max())
    middle_top, middle_left = (tops.min() + tops.max()) / 2, (lefts.min() + lefts.max()) / 2
    nearest = np.argmin(np.abs(tops - middle_top) + np.abs(lefts - middle_left))
    top, left = int(tops[nearest]), int(lefts[nearest])
    x = min(max(0, round(left / scale)), width - crop_w)
    y = min(max(0, round(top / scale)), height - crop_h)
    window = full.crop((x, y, x + crop_w, y + crop_h))
    if window.mode == "RGBA":
        window = _flatten(window, background)
    return _letterbox(window, side, background)


def detail_region(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a detail crop that holds the picture: a picture smaller than the crop is
    centred on the background (`detail_crop`)."""
    side = pixels.shape[0]
    crop_w, crop_h = min(side, width), min(side, height)
    x0, y0 = (side - crop_w) // 2, (side - crop_h) // 2
    return pixels[y0 : y0 + crop_h, x0 : x0 + crop_w]
