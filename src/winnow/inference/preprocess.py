"""The one preprocessing path shared by training, evaluation, prediction and ONNX.

An image becomes model input in three fixed steps, recorded in every checkpoint:
1. decode and letterbox onto `background` at `cache_size` (exactly what `scan` caches);
2. resize that square to `image_size` with a box filter (Pillow);
3. scale to [0, 1] and normalise with the training set's per-channel `mean` / `std`.
Steps 1–2 give uint8 pixels; step 3 happens in the model's dtype. No torch here, so ONNX
prediction runs without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    cache_size: int
    image_size: int
    background: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            cache_size=int(data["cache_size"]),
            image_size=int(data["image_size"]),
            background=tuple(int(v) for v in data["background"]),  # type: ignore[arg-type]
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
        )


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """(n, s, s, 3) or (s, s, 3) uint8 → the same at `size`, box filter."""
    if pixels.shape[-2] == size:
        return np.ascontiguousarray(pixels)
    if pixels.ndim == 3:
        return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BOX))
    out = np.empty((len(pixels), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        out[i] = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX))
    return out


def channel_stats(pixels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (n, h, w, 3) uint8 pixels, in [0, 1] units."""
    sample = pixels[:: max(1, len(pixels) // 2000)].reshape(-1, 3).astype(np.float64) / 255
    std = np.maximum(sample.std(axis=0), 1e-3)
    return tuple(float(v) for v in sample.mean(axis=0)), tuple(float(v) for v in std)


def to_input(pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """(n, s, s, 3) uint8 at image_size → (n, 3, s, s) float32 normalised (numpy path)."""
    mean = np.asarray(preprocessing.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(preprocessing.std, dtype=np.float32)[:, None, None]
    images = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return (images - mean) / std
