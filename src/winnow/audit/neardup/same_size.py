"""Pixel-for-pixel comparison of two files of the same width and height (`same_size_change`),
where no resize or crop lies between their cache views, and what it and the blank check
call ink: distance from a picture's dominant colour (`distance_from_dominant`)."""

from __future__ import annotations

import numpy as np

from winnow.audit.neardup.resample import channel_max, channel_mean, range_along
from winnow.audit.neardup.similarity import CHANGE_THRESHOLD

SAME_SIZE_INK = 16.0  # grey levels from a picture's dominant colour that make a pixel ink
SAME_SIZE_CONTRAST = 0.5  # a change must reach this share of the fainter picture's contrast
_UNCLIPPED = (4.0, 251.0)  # channel values a brightness shift cannot have clipped


def same_size_change(first: np.ndarray, second: np.ndarray, reach: int = 0) -> float:
    """The share of ink that differs between two pictures that no resize or crop lies
    between: cache views (h, w, 3) of two files with the same width and height, decoded the
    same way. `reach` = 1 forgives a pixel that lies within the range of its 3 × 3
    neighbourhood in the other picture (JPEG ringing around edges).

    `pair_similarity` must forgive a pixel of misalignment and blur both pictures, because
    a resized copy is resampled; that also forgives a hairline moved by a pixel, which is
    all that tells one spirograph star from the next. Between same-size pictures nothing
    needs forgiving but the tones: a pixel has changed when its luminance is more than
    CHANGE_THRESHOLD from what the best of three tone maps predicts from the other picture
    (an offset per channel, a gain and offset per channel fitted on all pixels, and one
    fitted on the pixels that no brightness shift can have clipped), in either direction.
    "More than" is relative for faint drawings: half the contrast of the fainter picture
    (the 90th percentile of its ink's distance from its dominant colour), between
    SAME_SIZE_INK and CHANGE_THRESHOLD, so that light-grey hairlines that moved count.
    The share is of the pixels that are ink in either picture (more than SAME_SIZE_INK from
    its dominant colour): a moved hairline is a large share of a thin drawing's ink and a
    negligible share of its pixels. Two pictures without ink are unchanged."""
    a, b = first.astype(np.float32), second.astype(np.float32)
    (ink_a, contrast_a), (ink_b, contrast_b) = _ink(a), _ink(b)
    ink = ink_a | ink_b
    if not ink.any():
        return 0.0
    threshold = float(
        np.clip(SAME_SIZE_CONTRAST * min(contrast_a, contrast_b), SAME_SIZE_INK, CHANGE_THRESHOLD)
    )
    best = 1.0
    for fit in ("offset", "all", "unclipped"):
        changed = _untoned(a, b, fit, reach, threshold) | _untoned(b, a, fit, reach, threshold)
        best = min(best, float(changed[ink].mean()))
    return best


def distance_from_dominant(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's distance from the picture's dominant colour (the per-channel median):
    its largest channel difference, (h, w) float32; and that colour, (3,). A pixel far
    from it is ink (here and in the blank check)."""
    dominant = np.median(rgb.reshape(-1, 3), axis=0)
    return channel_max(np.abs(rgb.astype(np.float32, copy=False) - dominant)), dominant


def _ink(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Where a picture has ink (more than SAME_SIZE_INK from its dominant colour,
    `distance_from_dominant`), and its contrast: the 90th percentile of that distance over
    the ink (255 for a picture without ink, which then sets no limit)."""
    distance, _ = distance_from_dominant(rgb)
    ink = distance > SAME_SIZE_INK
    return ink, float(np.percentile(distance[ink], 90)) if ink.any() else 255.0


def _untoned(
    source: np.ndarray, target: np.ndarray, fit: str, reach: int, threshold: float
) -> np.ndarray:
    """Where `target`'s luminance is more than `threshold` from `source` mapped onto it by
    the tone map `fit` (see `same_size_change`); (h, w) bool."""
    predicted = np.empty_like(source)
    for channel in range(3):
        s, t = source[..., channel], target[..., channel]
        if fit == "offset":
            gain, offset = 1.0, float(np.median(t - s))
        else:
            use = np.ones(s.shape, bool)
            if fit == "unclipped":
                low, high = _UNCLIPPED
                use = (s > low) & (s < high) & (t > low) & (t < high)
                if use.sum() < 16:  # too few to fit on: all pixels
                    use = np.ones(s.shape, bool)
            su, tu = s[use], t[use]
            spread = float(su.var())
            gain = float(((su - su.mean()) * (tu - tu.mean())).mean()) / spread if spread else 1.0
            offset = float(tu.mean()) - gain * float(su.mean())
        predicted[..., channel] = np.clip(gain * s + offset, 0, 255)
    low = high = channel_mean(predicted)[None]
    if reach:
        low = range_along(range_along(low, 1, reach, np.minimum), 2, reach, np.minimum)
        high = range_along(range_along(high, 1, reach, np.maximum), 2, reach, np.maximum)
    actual = channel_mean(target)[None]
    return (np.maximum(low - actual, actual - high) > threshold)[0]
