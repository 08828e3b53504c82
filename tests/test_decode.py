"""Decoding every kind of input: the right status, a readable reason, correct pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from factory import KINDS, gradient, write_kind
from winnow.data.config import ScanConfig
from winnow.data.decode import decode_file, prepare_worker
from winnow.data.inspection import inspect_file
from winnow.data.walk import FoundFile

prepare_worker()


def _found(path: Path) -> FoundFile:
    st = path.stat()
    return FoundFile(path.name, "x", str(path), st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_gets_its_status(tmp_path: Path, kind: str) -> None:
    row, pixels, _detail = inspect_file(
        _found(write_kind(tmp_path, kind)), ScanConfig(image_size=32)
    )
    assert row["status"] == KINDS[kind], row.get("error")
    if row["status"] == "ok":
        assert row["error"] is None
        assert pixels is not None and pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
        assert isinstance(row["phash"], int) and isinstance(row["dhash"], int)
        assert len(row["sha256"]) == 64
    else:
        assert pixels is None
        assert row["error"] and len(row["error"]) > 10  # a sentence, not a code


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_inference_decode_skips_fingerprints_not_pixels(tmp_path: Path, kind: str) -> None:
    """predict and serve decode without hashes or detail crop: same status, reason, pixels."""
    prepare_worker()
    path = str(write_kind(tmp_path, kind))
    config = ScanConfig(image_size=32)
    full, lean = decode_file(path, config), decode_file(path, config, fingerprints=False)
    assert (lean.status, lean.error) == (full.status, full.error)
    if full.status == "ok":
        assert np.array_equal(lean.pixels, full.pixels)
        assert full.phash is not None and full.detail is not None
        assert lean.phash is None and lean.dhash is None and lean.detail is None
        assert lean.pixel_sha256 is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG (vector)"),
        (b"\xef\xbb\xbf<!DOCTYPE html><html><body>403 Forbidden</body></html>", "an HTML page"),
        (b"<HTML><HEAD><TITLE>Not Found</TITLE></HEAD></HTML>", "an HTML page"),
        ("고양이 사진 설명\n".encode(), ": text"),
        (bytes(range(256)) * 4, "image format"),
    ],
)
def test_a_file_that_is_no_image_says_what_it_is(tmp_path: Path, content: bytes, says: str) -> None:
    """A crawled folder's classic failure is an HTML error page saved as .jpg; a clipart
    folder's, SVG drawings that need rendering. The reason says which, from the content."""
    path = tmp_path / "picture.jpg"
    path.write_bytes(content)
    decoded = decode_file(str(path), ScanConfig(image_size=24))
    assert decoded.status == "not_image"
    assert decoded.error.startswith("content is not a recognised image format")
    assert says in decoded.error
    if says == "image format":  # binary junk: nothing more to say
        assert decoded.error == "content is not a recognised image format"


def test_transparency_is_composited_on_the_chosen_background(tmp_path: Path) -> None:
    path = write_kind(tmp_path, "png_rgba_transparent")
    white = decode_file(str(path), ScanConfig(image_size=24))
    black = decode_file(str(path), ScanConfig(image_size=24, background="black"))
    assert white.has_alpha and black.has_alpha
    assert white.pixels[0, 0].tolist() == [255, 255, 255]
    assert black.pixels[0, 0].tolist() == [0, 0, 0]
    assert white.pixels[12, 12].tolist() == [0, 0, 0]  # the glyph itself stays black
    assert white.phash != black.phash  # the glyph is visible only on white


def test_palette_transparency_is_honoured(tmp_path: Path) -> None:
    result = decode_file(
        str(write_kind(tmp_path, "png_palette_transparent")), ScanConfig(image_size=24)
    )
    assert result.has_alpha
    assert result.pixels[0, 0].tolist() == [255, 255, 255]
    assert result.pixels[12, 12].tolist() == [0, 0, 255]


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    result = decode_file(str(write_kind(tmp_path, "png_16bit_gray")), ScanConfig(image_size=24))
    assert result.pixels[5, 2].tolist() == [127, 127, 127]
    assert result.pixels[5, 20].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    result = decode_file(str(write_kind(tmp_path, "jpeg_exif_rotated")), ScanConfig(image_size=32))
    assert (result.width, result.height) == (16, 32)  # as displayed
    column = result.pixels[:, 16, 0].astype(int)  # red ramps along the stored x axis
    assert column[2] < 40 and column[-3] > 200
    assert result.pixels[16, 1].tolist() == [255, 255, 255]  # letterbox bar at the side


def test_first_frame_of_animation(tmp_path: Path) -> None:
    result = decode_file(str(write_kind(tmp_path, "gif_animated")), ScanConfig(image_size=24))
    assert result.n_frames == 3
    assert result.pixels[5, 5].tolist() == [255, 0, 0]


def test_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    result = decode_file(str(write_kind(tmp_path, "jpeg_named_png")), ScanConfig())
    assert result.status == "ok" and result.format == "JPEG"


def test_aspect_is_kept_with_letterbox(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (100, 50), (255, 0, 0)).save(path)
    pixels = decode_file(str(path), ScanConfig(image_size=32, background="blue")).pixels
    assert pixels[16, 16].tolist() == [255, 0, 0]
    assert pixels[2, 16].tolist() == [0, 0, 255] and pixels[29, 16].tolist() == [0, 0, 255]


@pytest.mark.parametrize("pixels_over_cap", [1.2, 1.9, 2.5])
def test_oversized_is_refused_above_the_cap_including_pillows_warning_band(
    tmp_path: Path, pixels_over_cap: float
) -> None:
    cap = 10_000
    side = int((cap * pixels_over_cap) ** 0.5) + 1
    path = tmp_path / "big.png"
    Image.new("RGB", (side, side), "white").save(path)
    result = decode_file(str(path), ScanConfig(max_pixels=cap))
    assert result.status == "oversized"
    assert f"{side}×{side}" in result.error and "max_pixels" in result.error
    assert result.width == side  # header facts are still recorded


def test_images_over_the_memory_budget_are_streamed_by_libvips(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    gradient(400, 300).save(path)
    small_budget = ScanConfig(image_size=64, decode_memory_mb=1)  # 400×300×12 B > 1 MB
    streamed = decode_file(str(path), small_budget)
    in_memory = decode_file(str(path), ScanConfig(image_size=64))
    assert streamed.status == "ok" and streamed.decoder == "vips"
    assert in_memory.decoder == "pillow"
    assert (streamed.width, streamed.height) == (400, 300)
    difference = np.abs(streamed.pixels.astype(int) - in_memory.pixels.astype(int))
    assert difference.mean() < 3  # same picture, different resampler


def test_streamed_truncated_file_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "large_cut.png"
    noisy = np.random.default_rng(0).integers(0, 255, (400, 300, 3), np.uint8)
    Image.fromarray(noisy).save(path)
    path.write_bytes(path.read_bytes()[:50_000])
    result = decode_file(str(path), ScanConfig(decode_memory_mb=1))
    assert result.status == "truncated", result.error


def test_permission_denied_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_kind(tmp_path, "png_rgb")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    row, pixels, _detail = inspect_file(_found(path), ScanConfig())
    assert row["status"] == "unreadable" and "permission" in row["error"]
    assert pixels is None


def test_file_cut_inside_a_chunk_before_the_pixels_is_truncated(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 5000)
    path = tmp_path / "header_cut.png"
    gradient(64, 64).save(path, pnginfo=info)
    path.write_bytes(path.read_bytes()[:2000])  # inside the text chunk
    row, _, _ = inspect_file(_found(path), ScanConfig())
    assert row["status"] == "truncated", row["error"]


def test_image_signature_without_a_readable_header_is_corrupt_not_a_non_image(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stub.png"
    gradient(64, 64).save(path)
    path.write_bytes(path.read_bytes()[:40])  # signature and IHDR, then nothing
    row, _, _ = inspect_file(_found(path), ScanConfig())
    assert row["status"] == "corrupt" and "starts like a PNG" in row["error"]


def test_evaluation_can_skip_the_file_hash_but_keeps_the_pixel_hashes(tmp_path: Path) -> None:
    path = write_kind(tmp_path, "jpeg_exif_rotated")
    full, pixels, _ = inspect_file(_found(path), ScanConfig(image_size=32))
    quick, same, _ = inspect_file(_found(path), ScanConfig(image_size=32), file_hash=False)
    assert full["sha256"] and quick.get("sha256") is None
    assert quick["pixel_sha256"] == full["pixel_sha256"] and quick["phash"] == full["phash"]
    assert np.array_equal(pixels, same)


def test_the_detail_crop_keeps_fine_texture_at_the_images_own_resolution(tmp_path: Path) -> None:
    # a transparent 400×300 canvas with a 1-px checkerboard patch near one corner
    rgba = np.zeros((300, 400, 4), np.uint8)
    checker = (np.indices((50, 50)).sum(axis=0) % 2 * 255).astype(np.uint8)
    rgba[230:280, 320:370, :3] = checker[..., None]
    rgba[230:280, 320:370, 3] = 255
    path = tmp_path / "patch.png"
    Image.fromarray(rgba, "RGBA").save(path)
    decoded = decode_file(str(path), ScanConfig(image_size=64, detail_size=32))
    assert decoded.detail.shape == (32, 32, 3)
    # the crop lies inside the patch: every pixel pure black or white, and alternating
    grey = decoded.detail[..., 0].astype(int)
    assert set(np.unique(grey)) == {0, 255}
    assert (np.abs(np.diff(grey, axis=1)) == 255).all()
    # the resized cache image has blurred the same checkerboard into mid greys
    patch = decoded.pixels[45:52, 50:57, 0].astype(int)
    assert ((patch > 40) & (patch < 215)).mean() > 0.5


def test_an_image_smaller_than_the_detail_crop_is_kept_whole_and_centred(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 10), (200, 30, 30)).save(path)
    detail = decode_file(str(path), ScanConfig(image_size=32, detail_size=32)).detail
    red = (detail == [200, 30, 30]).all(axis=-1)
    assert red.sum() == 200
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (11, 20, 6, 25)
    assert (detail[~red] == 255).all()  # the rest is the background
