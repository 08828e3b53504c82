"""The pictures of a batch of candidate pairs and the crop that aligns each pair, for
pixel verification (winnow.audit.neardup.similarity measures the aligned pairs).

A crop followed by a resize is, inside the image region, an axis-aligned affine map. Its
scale and offset are found per axis, over a grid of (scale, offset), by correlating the
pictures' row and column intensity profiles (`align`); a pair's warp is then two rows of a
memoised table per side and blur (`warp_table`). Each picture of a batch is stored and
prepared once however many pairs it is in (`Pictures`, `each_picture`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from winnow.audit.neardup.resample import (
    blur_matrix,
    flushed,
    read_only,
    resize,
    sample_matrices,
    sample_matrix,
)

PROFILE_SIDE = 128
FIT_SIDE = 64  # profile samples used to fit the crop; PROFILE_SIDE must be a multiple
MIN_KEPT = 0.86  # a copy keeps 86–100 % of each side (the alignment grid's range)
_SCALES = np.linspace(MIN_KEPT, 1.0, 15)
_OFFSETS = np.linspace(0.0, 0.10, 21)  # and starts up to 10 % in


def max_aspect_change(shorter_side: np.ndarray) -> np.ndarray:
    """The largest factor by which a crop the alignment can undo (each side keeps at least
    MIN_KEPT) changes a picture's aspect ratio, with a pixel of rounding on a side of
    `shorter_side` pixels. Two pictures whose aspect ratios differ by more cannot be a copy
    of one another (a tall and a square version of one icon)."""
    rounding = 1 + 1 / np.maximum(np.asarray(shorter_side, np.float64), 1)
    return rounding / MIN_KEPT


def verification_view(region: np.ndarray) -> np.ndarray:
    """The picture stretched to PROFILE_SIDE² RGB float32 (aspect is part of what a crop
    changes, so it is not preserved here)."""
    return resize(region, PROFILE_SIDE)


class Pictures(NamedTuple):
    """The pictures one side of a batch of pairs refers to, each stored once: their
    verification views as colour planes, (3, U, n, n) float32, per pair the position of its
    picture, (P,), and their grey levels (`grey_levels` of the planes), (U, n, n). A picture in
    several pairs is prepared once (`_prepare`), not once per pair."""

    planes: np.ndarray
    index: np.ndarray
    grey: np.ndarray

    @classmethod
    def of(cls, views: np.ndarray | Pictures) -> Pictures:
        """One picture per pair, from (P, n, n, 3) verification views; `Pictures` as they are."""
        if isinstance(views, Pictures):
            return views
        return cls.from_planes(
            np.ascontiguousarray(np.moveaxis(views, -1, 0)), np.arange(len(views))
        )

    @classmethod
    def stacked(cls, regions: list[np.ndarray], index: np.ndarray) -> Pictures:
        """The verification views of `regions` (`verification_view`), and per pair which."""
        planes = np.stack([np.moveaxis(verification_view(r), -1, 0) for r in regions], axis=1)
        return cls.from_planes(planes, index)

    @classmethod
    def from_planes(cls, planes: np.ndarray, index: np.ndarray) -> Pictures:
        """(3, U, n, n) colour planes and per pair which; their grey levels computed once."""
        return cls(planes, index, grey_levels(list(planes)))

    def take(self, which: np.ndarray) -> Pictures:
        """The same pictures for a subset of the pairs."""
        return self.pointing(self.index[which])

    def pointing(self, index: np.ndarray) -> Pictures:
        """The same pictures for other pairs: per pair, the position of its picture."""
        return Pictures(self.planes, index, self.grey)


def _grid_matrices(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scales, offsets = np.meshgrid(_SCALES, _OFFSETS, indexing="ij")
    scales, offsets = scales.ravel(), offsets.ravel()
    valid = offsets + scales <= 1.0 + 1e-6
    scales, offsets = scales[valid], offsets[valid]
    return sample_matrices(offsets * n, (offsets + scales) * n, n, n), scales, offsets


@functools.lru_cache(maxsize=4)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The alignment grid's warp matrices for profiles of length n (a pure function)."""
    return _grid_matrices(n)


class _Profiles(NamedTuple):
    """One axis's luminance profiles of U pictures (`_profile`), ready for `_fit_axis`: as a
    source, warped by every (scale, offset) of the alignment grid and centred (U, grid, n),
    with their energy (U, grid); as a target, centred (U, n), with its energy (U, 1)."""

    warped: np.ndarray
    warped_energy: np.ndarray
    centred: np.ndarray
    energy: np.ndarray

    @classmethod
    def of(cls, profiles: np.ndarray) -> _Profiles:
        stack = _grid(profiles.shape[1])[0]
        grid, n = stack.shape[0], stack.shape[1]
        warped = (profiles @ stack.reshape(grid * n, n).T).reshape(len(profiles), grid, n)
        warped -= warped.mean(axis=2, keepdims=True)
        centred = profiles - profiles.mean(axis=1, keepdims=True)
        return cls(
            warped, (warped**2).sum(axis=2), centred, (centred**2).sum(axis=1, keepdims=True)
        )


def _fit_axis(
    source: _Profiles, at_source: np.ndarray, target: _Profiles, at_target: np.ndarray
) -> np.ndarray:
    """Per pair, the position in the alignment grid (`_grid`) of the best (scale, offset)
    so target(x) ≈ source(offset + scale·x): the highest correlation of the target's
    profile with the source's warped ones."""
    score = np.matmul(source.warped[at_source], target.centred[at_target][:, :, None])[..., 0]
    score /= np.sqrt(source.warped_energy[at_source] * target.energy[at_target]) + 1e-6
    return score.argmax(axis=1)


@functools.lru_cache(maxsize=8)  # the blur levels in use: 7 at VERIFY_SIDE, 1 at FULL_SIDE
def warp_table(n: int, side: int, blur: float) -> np.ndarray:
    """For every (scale, offset) of the alignment grid, the matrix that crops a line of n
    samples to it, resamples it to `side` and blurs it by `blur`: (grid, side, n). A pair's
    warp is two rows of it (`_fit_axis` picks them), so no matrix is built per pair."""
    _, scales, offsets = _grid(FIT_SIDE)
    crops = sample_matrices(offsets * n, (offsets + scales) * n, n, side)
    return read_only(flushed(blur_matrix(side, blur) @ crops))


@functools.lru_cache(maxsize=8)
def view_matrix(n: int, side: int, blur: float) -> np.ndarray:
    """The uncropped warp: a line of n samples resampled to `side` and blurred by `blur`."""
    return read_only(flushed(blur_matrix(side, blur) @ sample_matrix(0, n, n, side)))


def _profile(images: np.ndarray, axis: int) -> np.ndarray:
    """Mean intensity along `axis`, binned to FIT_SIDE samples (fitting cost grows as n²)."""
    profile = images.mean(axis=axis)
    return profile.reshape(len(images), FIT_SIDE, -1).mean(axis=2)


class Alignment(NamedTuple):
    """Per pair, the crop fitted in each direction (`align`): the positions in the alignment
    grid (`_grid`) of the (scale, offset) of the rows and of the columns, for the first
    picture warped onto the second (forward) and the second onto the first (backward);
    (P,) each. It depends on the two pictures only, not on the side or blur they are then
    compared at, so one fit serves every comparison of a pair."""

    forward_rows: np.ndarray
    forward_cols: np.ndarray
    backward_rows: np.ndarray
    backward_cols: np.ndarray

    def take(self, which: np.ndarray) -> Alignment:
        """The fits of a subset of the pairs."""
        return Alignment(*(part[which] for part in self))

    def direction(self, forward: bool) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) grid positions of one crop direction."""
        if forward:
            return self.forward_rows, self.forward_cols
        return self.backward_rows, self.backward_cols


def align(first: np.ndarray | Pictures, second: np.ndarray | Pictures) -> Alignment:
    """Fit the crop of each pair in both directions, on the pictures' luminance profiles
    across and down (`_profile`, each picture's profiles computed once)."""
    first, second = Pictures.of(first), Pictures.of(second)
    if len(first.index) == 0:
        return Alignment(*(np.zeros(0, np.int64) for _ in Alignment._fields))

    def profiles(pictures: Pictures, used: np.ndarray) -> tuple[_Profiles, _Profiles]:
        grey = pictures_at(pictures.grey, used)
        return _Profiles.of(_profile(grey, axis=1)), _Profiles.of(_profile(grey, axis=2))

    ((across_a, down_a), at_a), ((across_b, down_b), at_b) = each_picture(first, second, profiles)
    return Alignment(
        forward_rows=_fit_axis(down_a, at_a, down_b, at_b),
        forward_cols=_fit_axis(across_a, at_a, across_b, at_b),
        backward_rows=_fit_axis(down_b, at_b, down_a, at_a),
        backward_cols=_fit_axis(across_b, at_b, across_a, at_a),
    )


def grey_levels(planes: list[np.ndarray]) -> np.ndarray:
    """The grey level of R, G and B planes, (R + G + B) / 3."""
    return sum(planes) / 3


def each_picture(first: Pictures, second: Pictures, prepare: Callable) -> tuple[tuple, tuple]:
    """`prepare(pictures, used)` for the pictures the pairs use (once each, also when both
    sides hold the same pictures; `used` sorted, unique), and per pair the position of its
    first and of its second picture among them."""
    if first.planes is second.planes:
        used, at = np.unique(np.concatenate([first.index, second.index]), return_inverse=True)
        prepared = prepare(first, used)
        return (prepared, at[: len(first.index)]), (prepared, at[len(first.index) :])
    sides = []
    for pictures in (first, second):
        used, at = np.unique(pictures.index, return_inverse=True)
        sides.append((prepare(pictures, used), at))
    return sides[0], sides[1]


def pictures_at(array: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The pictures at `used` (sorted, unique) of a per-picture array."""
    return array if len(used) == len(array) else array[used]
