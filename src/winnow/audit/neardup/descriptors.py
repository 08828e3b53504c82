"""Candidate descriptors for near-duplicate search (the first of its two stages; pixel
verification is winnow.audit.neardup.similarity).

Two descriptors per picture, searched by faiss (winnow.audit.neardup.candidates): a coarse
colour thumbnail of the whole picture, and the fine detail of a *moment-normalised* view:
the picture re-framed around the centroid and spread of its "ink" (distance from its own
border colour), which undoes scale, margin crops and shifts, at 64 px, less its own blur
(so edges, not the overall shape, decide), projected on the dataset's principal components
(`Projection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.audit.neardup.resample import (
    blur_matrix,
    channel_mean,
    channel_sum,
    flat_rows,
    resize,
    sample_matrix,
)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Centred unit vectors. A flat picture (blank, or one colour) has no shape to centre:
    it gets the constant unit vector, which is orthogonal to every centred one, so flat
    pictures are each other's nearest neighbours and nobody else's."""
    vectors = vectors - vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = flat_rows(vectors, norms[:, 0])
    unit = vectors / np.maximum(norms, 1e-6)
    unit[flat] = 1 / np.sqrt(vectors.shape[1])
    return unit.astype(np.float32)


def coarse_descriptor(region: np.ndarray, side: int = 12) -> np.ndarray:
    return resize(region, side).ravel()


def moment_descriptor(region: np.ndarray, side: int = 32, spread: float = 2.2) -> np.ndarray:
    """Luminance re-framed around the ink centroid, ±`spread` standard deviations."""
    image = region.astype(np.float32)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    luminance = channel_mean(image)
    ink = channel_sum(np.abs(image - background))
    total = ink.sum()
    h, w = ink.shape
    if total < 1e-3 * 255 * h * w:  # flat picture: keep the whole frame
        cx, cy, sigma = w / 2, h / 2, max(w, h) / 4
    else:
        ys, xs = np.mgrid[0:h, 0:w]
        cx, cy = (ink * xs).sum() / total, (ink * ys).sum() / total
        sigma = np.sqrt((ink * ((xs - cx) ** 2 + (ys - cy) ** 2)).sum() / total / 2)
        sigma = max(float(sigma), 1.0)
    fill = float(background.mean())
    rows = sample_matrix(cy - spread * sigma, cy + spread * sigma, h, side)
    cols = sample_matrix(cx - spread * sigma, cx + spread * sigma, w, side)
    inside_rows, inside_cols = rows.sum(axis=1), cols.sum(axis=1)
    view = rows @ luminance @ cols.T
    view += fill * (1 - np.outer(inside_rows, inside_cols))  # outside the image: background
    return view.ravel()


DETAIL_VIEW_SIDE = 64  # side of the moment-normalised view whose detail is a descriptor
DETAIL_COMPONENTS = 128  # principal components kept of the detail descriptor
PROJECTION_SAMPLE = 4096  # pictures the projection is fitted on (a seeded sample)


def detail_descriptor(
    region: np.ndarray, side: int = DETAIL_VIEW_SIDE, blur: float = 0.7, sigma: float = 2.0
) -> np.ndarray:
    """Fine detail of the moment-normalised view at `side` px: the view blurred by `blur`
    (pixels) minus its blur at `sigma`.

    Why detail and not the view itself: in a series of look-alikes (1,250 spirograph stars
    on the benchmark, all a ring at 32 px), what tells a copy's source from its siblings is
    where the thin lines are. On the benchmark, with the coarse colour descriptor beside it,
    330 of the 340 planted pairs are among each other's 8 nearest neighbours (either way);
    with the whole view at 32 px, 321.
    """
    view = moment_descriptor(region, side).reshape(side, side)
    smooth, wide = blur_matrix(side, blur), blur_matrix(side, sigma)
    view = smooth @ view @ smooth.T
    return (view - wide @ view @ wide.T).ravel()


@dataclass(frozen=True)
class Projection:
    """Principal components of detail descriptors, fitted on one dataset and applied to any
    set compared with it (a training set's projection is used for its test set), so the
    search index holds DETAIL_COMPONENTS numbers a picture instead of 4,096.

    Projected vectors get one more coordinate for flat pictures (blank, one colour; no
    detail to compare): 1 for them, 0 for the others, so flat pictures are each other's
    nearest neighbours and nobody else's."""

    mean: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray, seed: int = 0) -> Projection:
        from sklearn.decomposition import PCA

        rows = raw[~flat_rows(raw)]
        if len(rows) < 2:  # no detail to learn directions from: every picture projects flat
            return cls(np.zeros(raw.shape[1], np.float32), np.zeros((1, raw.shape[1]), np.float32))
        pca = PCA(min(DETAIL_COMPONENTS, *rows.shape), svd_solver="randomized", random_state=seed)
        pca.fit(rows)
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32))

    def apply(self, raw: np.ndarray) -> np.ndarray:
        projected = (raw - self.mean) @ self.components.T
        norms = np.linalg.norm(projected, axis=1, keepdims=True)
        flat = flat_rows(raw) | (norms[:, 0] < 1e-6)
        unit = np.concatenate([projected / np.maximum(norms, 1e-6), np.zeros((len(raw), 1))], 1)
        unit[flat] = 0.0
        unit[flat, -1] = 1.0
        return unit.astype(np.float32)


def descriptors(regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(coarse colour unit vectors, raw detail descriptors), one row per region; the detail
    descriptors are made comparable by a `Projection`."""
    coarse = _unit(np.stack([coarse_descriptor(r) for r in regions]))
    detail = np.stack([detail_descriptor(r) for r in regions]).astype(np.float32)
    return coarse, detail
