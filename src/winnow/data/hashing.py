"""Perceptual hashes (imagehash) as signed 64-bit integers, ready for a parquet column."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASHES = ("phash", "dhash")


def hash_to_int(bits: np.ndarray) -> int:
    """Pack a 64-bit boolean hash into a signed int64 (bit order: row-major, MSB first)."""
    value = int(np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def perceptual_hashes(image: Image.Image) -> dict[str, int]:
    """phash (DCT) and dhash (gradient) of an RGB image, each 64 bits."""
    return {
        "phash": hash_to_int(imagehash.phash(image).hash),
        "dhash": hash_to_int(imagehash.dhash(image).hash),
    }


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between int64 hashes (vectorised)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return np.bitwise_count(x.view(np.uint64)).astype(np.int64)
