"""Hand-crafted statistics that tell photographs from drawings, read from the pixel cache.

Drawings (clipart, icons, line art) are made of few colours, flat or perfectly smooth
regions and clean edges; photographs have many colours with a spread-out histogram, no
flat fills, and fine texture and sensor noise everywhere. Each statistic is measured on
the *foreground* (pixels that differ from the cache background, eroded twice so
anti-aliased outlines and thin lines do not count as texture), at three scales (`SCALES`
says which statistics each scale contributes):

- native: the largest of 128/64/32 px not above the image's own longer side, so a small
  icon that the cache upscaled is not mistaken for smooth photographic shading;
- half: the native view pooled 2×2, where faint noise is averaged away but real texture stays;
- detail: the cache's detail crop, a window of the image at its own resolution (see
  `winnow.data.decode.detail_crop`), where sensor noise and the continuous shading of a
  photograph survive that resizing to the cache size averages away.

Statistics (all oriented so that larger = more photo-like):
    colours           log(distinct 15-bit colours) / log(foreground pixels)
    colour_entropy    entropy (nats) of the 15-bit colour histogram
    palette_spread    share of the foreground outside its 8 commonest exact colours (native
                      and detail scales): near 0 for flat fills, near 1 for a photograph,
                      whose noise leaves hardly two pixels the same
    texture           share of foreground pixels with a visible Laplacian (≥ 3) away from edges
    noise_residual    share of foreground pixels whose luminance differs by 2–8 from its
                      3×3 median (separable median-of-medians; zero on flat areas and on
                      linear gradients, so vector shading does not count)
    incoherence       1 − mean orientation coherence of the 5×5 structure tensor where the
                      luminance gradient is weak (1–12 levels/px; native and detail scales):
                      isotropic fine detail (fur, foliage, sensor noise) reads high, the
                      oriented detail of a drawing (hatching, anti-aliased outlines) low

Why these: each was kept because the combination (the median of robust z-scores, then
the discriminant of `winnow.audit.style.domain`) separated photographs better with it than
without it, measured on the project benchmark with `benchmarks/bench_domain.py`
(docs/benchmarks.md has the numbers). Flat-region share, mid-gradient share, saturation
and edge sharpness were measured and left out: they lowered the combination.

- At the detail scale the noise residual is left out, and every counting statistic is
  robust to JPEG ringing only in this set: with all four counting statistics there, a
  drawing saved as JPEG reads as sensor noise far more often.
- Colours are counted in 15-bit bins: with exact 24-bit colours a drawing saved as JPEG
  at quality 90 looks as colourful as a photograph.
- palette_spread asks how much of the picture its few commonest colours cover, not how
  many colours there are: a glossy icon has many colours (its gradients) but still large
  fills, while a photograph's commonest colours cover a few % of it. It counts exact
  colours: JPEG noise multiplies a drawing's distinct colours but leaves the inside of
  its fills flat, so their coverage moves less.
- incoherence asks which way the fine detail runs: a drawing's detail (hatching, line
  art, outlines) is oriented, a photograph's is not. Weak alone and blind to the format,
  it is evidence the counting statistics do not have. On tiny drawings saved as JPEG at
  their analysis size it does not help (their ringing reads as incoherent as a photo).

No file format, name or metadata is used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winnow.data.decode import foreground_mask

FAMILIES: dict[str, tuple[str, ...]] = {
    "colour": ("colours", "colour_entropy", "palette_spread"),
    "texture": ("texture", "noise_residual", "incoherence"),
}
STATISTICS: tuple[str, ...] = tuple(name for names in FAMILIES.values() for name in names)
# which statistics each scale contributes (see the module text for why)
SCALES: dict[str, tuple[str, ...]] = {
    "native": STATISTICS,
    "half": ("colours", "colour_entropy", "texture", "noise_residual"),
    "detail": ("colours", "colour_entropy", "palette_spread", "texture", "incoherence"),
}
PALETTE_SIZE = 8  # palette_spread: the share of the foreground outside its 8 commonest colours
PALETTE_BITS = 8  # bits per channel that tell two colours apart in palette_spread
WEAK_GRADIENT = (1.0, 12.0)  # incoherence: luminance gradients in this range (grey levels/px)
TENSOR_WINDOW = 5  # incoherence: the structure tensor's neighbourhood (px)
FEATURES: tuple[str, ...] = tuple(
    f"{name}_{scale}" for scale, names in SCALES.items() for name in names
)
FAMILY_FEATURES: dict[str, tuple[str, ...]] = {
    family: tuple(f"{name}_{scale}" for scale in SCALES for name in names if name in SCALES[scale])
    for family, names in FAMILIES.items()
}
EROSION_STEPS = 2
_BATCH = 256


def native_scale(longer_side: np.ndarray, cache_size: int) -> np.ndarray:
    """The analysis side per image: the largest of size, size/2, size/4 not above its own."""
    sides = np.full(len(longer_side), cache_size // 4)
    for side in (cache_size // 2, cache_size):
        sides[np.asarray(longer_side) >= side] = side
    return sides


def _pool(pixels: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return pixels
    # the mean of each factor × factor block: its sum is exact in integers (and in float32,
    # as numpy's mean would take it), added block offset by block offset, not reduced over
    # two short axes per block (several times slower)
    wide = pixels.astype(np.uint16)
    total = sum(wide[:, i::factor, j::factor] for i in range(factor) for j in range(factor))
    pooled = total.astype(np.float32) / np.float32(factor * factor)
    return np.rint(pooled).astype(np.uint8)


def _foreground(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    mask = foreground_mask(pixels, background)
    for _ in range(EROSION_STEPS):
        eroded = mask.copy()
        eroded[:, 1:] &= mask[:, :-1]
        eroded[:, :-1] &= mask[:, 1:]
        eroded[:, :, 1:] &= mask[:, :, :-1]
        eroded[:, :, :-1] &= mask[:, :, 1:]
        mask = eroded
    return mask


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _share(condition: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (condition & mask).sum(axis=(1, 2)) / np.maximum(mask.sum(axis=(1, 2)), 1)


def _texture(
    pixels: np.ndarray, foreground: np.ndarray, names: tuple[str, ...] = STATISTICS
) -> dict[str, np.ndarray]:
    wide = pixels.astype(np.int32)
    luminance = ((wide[..., 0] * 77 + wide[..., 1] * 150 + wide[..., 2] * 29) >> 8).astype(np.int16)
    inner = foreground[:, 1:-1, 1:-1]
    centre = luminance[:, 1:-1, 1:-1]
    laplacian = np.abs(
        4 * centre
        - luminance[:, :-2, 1:-1]
        - luminance[:, 2:, 1:-1]
        - luminance[:, 1:-1, :-2]
        - luminance[:, 1:-1, 2:]
    )
    gradient = np.maximum(
        np.abs(luminance[:, 1:-1, 2:] - luminance[:, 1:-1, :-2]),
        np.abs(luminance[:, 2:, 1:-1] - luminance[:, :-2, 1:-1]),
    )
    out = {"texture": _share((laplacian >= 3) & (gradient <= 24), inner)}
    if "noise_residual" in names:  # not at the detail scale (`SCALES`): skip its median
        rows = _median3(luminance[:, :, :-2], luminance[:, :, 1:-1], luminance[:, :, 2:])
        median = _median3(rows[:, :-2], rows[:, 1:-1], rows[:, 2:])
        residual = np.abs(centre - median)
        out["noise_residual"] = _share((residual >= 2) & (residual <= 8), inner)
    if "incoherence" in names:
        out["incoherence"] = _incoherence(pixels, foreground)
    return out


def _incoherence(pixels: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """1 − mean orientation coherence of the structure tensor where the luminance gradient is
    weak (`WEAK_GRADIENT`): isotropic fine detail (fur, foliage, sensor noise) reads high;
    the oriented detail of a drawing (hatching, anti-aliased lines) reads low. JPEG ringing
    is not reliably oriented: tiny drawings saved as JPEG read as high as photographs (see
    the module text)."""
    from scipy.ndimage import uniform_filter

    wide = pixels.astype(np.float32)
    luminance = wide[..., 0] * 0.299 + wide[..., 1] * 0.587 + wide[..., 2] * 0.114
    gx = np.zeros_like(luminance)
    gy = np.zeros_like(luminance)
    gx[:, :, 1:-1] = (luminance[:, :, 2:] - luminance[:, :, :-2]) / 2
    gy[:, 1:-1] = (luminance[:, 2:] - luminance[:, :-2]) / 2
    window = (1, TENSOR_WINDOW, TENSOR_WINDOW)
    jxx = uniform_filter(gx * gx, size=window)
    jyy = uniform_filter(gy * gy, size=window)
    jxy = uniform_filter(gx * gy, size=window)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / np.maximum(jxx + jyy, 1e-6)
    magnitude = np.sqrt(gx * gx + gy * gy)
    weak = foreground & (magnitude >= WEAK_GRADIENT[0]) & (magnitude < WEAK_GRADIENT[1])
    counted = weak.sum(axis=(1, 2))
    mean = (coherence * weak).sum(axis=(1, 2)) / np.maximum(counted, 1)
    return np.where(counted > 10, 1.0 - mean, 0.0)


def _colour_codes(pixels: np.ndarray, bits: int) -> np.ndarray:
    wide = pixels.astype(np.int32) >> (8 - bits)
    return wide[..., 0] << (2 * bits) | wide[..., 1] << bits | wide[..., 2]


def _colour(
    pixels: np.ndarray, foreground: np.ndarray, names: tuple[str, ...] = STATISTICS
) -> dict[str, np.ndarray]:
    n = len(pixels)
    codes = _colour_codes(pixels, 5)
    palette = _colour_codes(pixels, PALETTE_BITS) if "palette_spread" in names else None
    colours = np.zeros(n)
    entropy = np.zeros(n)
    spread = np.zeros(n)
    for i in range(n):
        counts = np.bincount(codes[i][foreground[i]], minlength=1)
        counts = counts[counts > 0]
        total = counts.sum()
        if total > 1:
            colours[i] = np.log1p(len(counts)) / np.log1p(total)
            share = counts / total
            entropy[i] = float(-(share * np.log(share)).sum())
            if palette is not None:
                exact = np.unique(palette[i][foreground[i]], return_counts=True)[1]
                spread[i] = 1.0 - np.sort(exact)[-PALETTE_SIZE:].sum() / total
    return {"colours": colours, "colour_entropy": entropy, "palette_spread": spread}


_FAMILY_STATISTICS = {"colour": _colour, "texture": _texture}


def _statistics(
    pixels: np.ndarray, background: tuple[int, int, int], names: tuple[str, ...] = STATISTICS
) -> dict[str, np.ndarray]:
    """The statistics `names` for a batch (n, s, s, 3) uint8 at one scale; a family none of
    whose statistics is asked for is not computed."""
    foreground = _foreground(pixels, background)
    out: dict[str, np.ndarray] = {}
    for family, members in FAMILIES.items():
        if any(name in names for name in members):
            out.update(_FAMILY_STATISTICS[family](pixels, foreground, names))
    return {name: out[name] for name in names}


def photo_like_features(
    pixels: np.ndarray,
    longer_side: np.ndarray,
    background: tuple[int, int, int],
    detail: np.ndarray,
) -> pd.DataFrame:
    """One row per image, the columns of `FEATURES`.

    pixels: (n, size, size, 3) uint8 cache images (size divisible by 4).
    longer_side: each image's original longer side in pixels (to choose its native scale).
    detail: (n, d, d, 3) uint8 detail crops of the same images (`PixelCache.take_detail`).
    """
    size = pixels.shape[1]
    scales = native_scale(longer_side, size)
    out = {name: np.zeros(len(pixels)) for name in FEATURES}
    for side in np.unique(scales):
        rows = np.flatnonzero(scales == side)
        for start in range(0, len(rows), _BATCH):
            batch = rows[start : start + _BATCH]
            view = _pool(np.asarray(pixels[batch]), size // int(side))
            for scale, image in (("native", view), ("half", _pool(view, 2))):
                for name, values in _statistics(image, background, SCALES[scale]).items():
                    out[f"{name}_{scale}"][batch] = values
    for start in range(0, len(detail), _BATCH):
        crops = np.asarray(detail[start : start + _BATCH])
        for name, values in _statistics(crops, background, SCALES["detail"]).items():
            out[f"{name}_detail"][start : start + _BATCH] = values
    return pd.DataFrame(out)
