"""Pixel verification of near-duplicate candidates (the second stage of the search; the
candidates come from winnow.audit.neardup.descriptors): how alike two aligned pictures are.

Near-duplicates in crawled folders are resized, slightly cropped, re-encoded and
brightness-shifted copies. Each pair's crop is fitted once (winnow.audit.neardup.alignment,
`align`) and serves every comparison of it; the picture is warped with it, and the blurred
grey levels are compared by normalised correlation (invariant to brightness and contrast
shifts), their fine detail likewise, and a changed-area check finds added marks. A hue
check rejects recoloured variants; it warps the three colour planes, so it is measured in
the crop direction kept only (`colour_measures`). The tests run at VERIFY_SIDE (64 px),
where a copy at half size still looks like its source; pairs that pass are compared again
at FULL_SIDE (the cache's 128 px) for what blurs away at 64 px and to rank look-alikes in
a series. A picture smaller than the side is compared at its own resolution. All of it is
batched matrix algebra (winnow.audit.neardup.resample; the colour measures in
winnow.audit.neardup.colour). Files of the same size are also compared pixel for pixel
(winnow.audit.neardup.same_size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from winnow.audit.neardup.alignment import (
    Alignment,
    Pictures,
    align,
    each_picture,
    grey_levels,
    pictures_at,
    view_matrix,
    warp_table,
)
from winnow.audit.neardup.colour import chroma_distance, chroma_planes, greyed_share
from winnow.audit.neardup.resample import blur_matrix, centred, flat_rows, range_along

VERIFY_SIDE = 64  # side at which a pair is verified
FULL_SIDE = 128  # the cache's full resolution: verified pairs are compared again here
CHANGE_THRESHOLD = 40.0  # grey levels; JPEG ringing and resampling (within one pixel) stay below it
BLUR = 1.0  # pixels at the comparison side: both pictures are blurred this much first
DETAIL_SIGMA = 2.0  # fine detail = the picture minus its blur at this sigma


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised correlation per pair of centred rows; two flat images correlate 1, flat
    with not flat 0."""
    norm_a, norm_b = np.sqrt((a * a).sum(axis=1)), np.sqrt((b * b).sum(axis=1))
    flat_a, flat_b = flat_rows(a, norm_a), flat_rows(b, norm_b)
    correlation = (a * b).sum(axis=1) / np.maximum(norm_a * norm_b, 1e-6)
    return np.where(flat_a | flat_b, (flat_a & flat_b).astype(np.float64), correlation)


# per pair, from its correlation and detail: whether its changed area is worth measuring
Gate = Callable[[np.ndarray, np.ndarray], np.ndarray]


class PairSimilarity(NamedTuple):
    """How alike two aligned pictures are, one value per pair (arrays of length P).

    correlation: luminance correlation (invariant to brightness and contrast shifts);
    detail: correlation of fine detail (the image minus its own blur), so only edges that
      coincide count: a circle and a house that a crop maps onto each other are told apart;
    chroma: 90th percentile over pixels of |Δ(R−G)| + |Δ(B−G)| (0–510; a recoloured part
      of the picture shows up here);
    changed: fraction of pixels that still differ after the best gain and offset;
    greyed: fraction of pixels grey in one picture and coloured in the other, away from
      black and white (`colour.greyed_share`): no brightness shift does that;
    difference: mean absolute luminance difference after the offset only (grey levels):
      how much ink differs, which a contrast-invariant correlation does not see.
    """

    correlation: np.ndarray
    detail: np.ndarray
    chroma: np.ndarray
    changed: np.ndarray
    difference: np.ndarray
    greyed: np.ndarray


class _Prepared(NamedTuple):
    """What both crop directions of a pair use from each picture at one side and blur,
    computed once per picture: its grey plane (what a crop warps, at the picture's full
    size) and its uncropped view at the comparison side, the target a crop is warped onto:
    the view itself and the centred rows of it and of its fine detail. (U, ...) arrays."""

    grey: np.ndarray
    luminance: np.ndarray
    centred: np.ndarray
    detail: np.ndarray


def _prepare(grey: np.ndarray, blur: float, detail_sigma: float, side: int) -> _Prepared:
    """`_Prepared` of (U, n, n) grey planes, compared at `side` after a blur of `blur`
    pixels, with fine detail at `detail_sigma`."""
    full = view_matrix(grey.shape[1], side, blur)
    view = full @ grey @ full.T
    wide = blur_matrix(side, detail_sigma)
    detail = view - wide @ view @ wide.T
    return _Prepared(grey=grey, luminance=view, centred=centred(view), detail=centred(detail))


def _aligned(
    source: _Prepared,
    at_source: np.ndarray,
    target: _Prepared,
    at_target: np.ndarray,
    fit: tuple[np.ndarray, np.ndarray],
    blur: float,
    detail_sigma: float,
    side: int,
    gate: Gate | None = None,
) -> PairSimilarity:
    """Warp each pair's source picture (`source`'s pictures at `at_source`) by its fitted
    crop (`fit`: rows' and columns' grid positions, `Alignment.direction`) onto its target
    and compare their luminance at `side` pixels (chroma and greyed are NaN: see
    `colour_measures`). With `gate`, the changed area is measured only for the pairs it
    passes on their correlation and detail (infinite for the others)."""
    n, m = source.grey.shape[1], side
    table = warp_table(n, m, blur)
    rows, cols = table[fit[0]], table[fit[1]]
    lum_s = rows @ source.grey[at_source] @ cols.transpose(0, 2, 1)
    lum_t = target.luminance[at_target]
    wide = blur_matrix(m, detail_sigma)
    detail_s = lum_s - wide @ lum_s @ wide.T
    centred_s, centred_t = centred(lum_s), target.centred[at_target]
    correlation = _correlation(centred_s, centred_t)
    detail = _correlation(centred(detail_s), target.detail[at_target])
    measured = slice(None) if gate is None else gate(correlation, detail)
    changed = np.full(len(lum_s), np.inf)
    if gate is None or measured.any():
        changed[measured] = _changed_area(
            centred_s[measured].reshape(-1, *lum_s.shape[1:]),
            centred_t[measured].reshape(-1, *lum_t.shape[1:]),
        )
    difference = np.abs(centred_s - centred_t).mean(axis=1)
    # two flat pictures (blank, one colour) have nothing but their grey level to compare,
    # which centring removes: a white page and a black square are not the same picture
    both_flat = flat_rows(centred_s) & flat_rows(centred_t)
    level = np.abs(lum_s.reshape(len(lum_s), -1).mean(1) - lum_t.reshape(len(lum_t), -1).mean(1))
    changed = np.where(both_flat & (level > CHANGE_THRESHOLD), 1.0, changed)
    difference = np.where(both_flat, level, difference)
    undefined = np.full(len(lum_s), np.nan)
    return PairSimilarity(
        correlation=correlation,
        detail=detail,
        chroma=undefined,
        changed=changed,
        difference=difference,
        greyed=undefined,
    )


def _changed_area(
    a_c: np.ndarray, b_c: np.ndarray, threshold: float = CHANGE_THRESHOLD, reach: int = 1
) -> np.ndarray:
    """Fraction of pixels still differing by more than `threshold` grey levels after the
    best gain and offset (a brightness/contrast shift) maps a onto b; centred (P, m, m)
    images. Added strokes or marks show up here even when the shared shapes make the
    correlations high.

    A pixel of b counts as changed only when it lies outside the range of a's 3 × 3
    neighbourhood: an alignment left a fraction of a pixel off (a copy resized to half
    size) moves sharp edges by up to one pixel, which is not a change."""
    flat_a, flat_b = a_c.reshape(len(a_c), -1), b_c.reshape(len(b_c), -1)
    gain = (flat_a * flat_b).sum(axis=1) / np.maximum((flat_a * flat_a).sum(axis=1), 1e-6)
    low = high = gain[:, None, None] * a_c
    for axis in (1, 2):  # the neighbourhood's range, one axis at a time
        low, high = (
            range_along(low, axis, reach, np.minimum),
            range_along(high, axis, reach, np.maximum),
        )
    outside = np.maximum(low - b_c, b_c - high)
    return (outside > threshold).reshape(len(a_c), -1).mean(axis=1)


def pair_similarity(
    first: np.ndarray | Pictures,
    second: np.ndarray | Pictures,
    side: int = VERIFY_SIDE,
    resolution: np.ndarray | None = None,
    colour: bool = True,
    alignment: Alignment | None = None,
) -> PairSimilarity:
    """Similarity of aligned pairs at `side` pixels, trying both crop directions and keeping
    the better-aligned one (higher correlation + detail). `first` and `second`: (P, n, n, 3)
    verification views, or `Pictures` (each picture stored and prepared once however many
    pairs it is in); `alignment`, the pairs' fitted crops when they are known already
    (`align`). Correlation, detail, changed area and difference are measured on the grey
    levels; the colour measures, chroma and greyed, in the kept direction only, and only
    with `colour` (NaN without).

    `resolution`, per pair: the longer side of the smaller picture as its file has it. A
    picture smaller than `side` was upscaled into the cache, so it has no detail finer than
    its own pixels; both pictures are then blurred to that resolution (blur and detail
    scale times side / resolution, in half steps up to 4), so that a copy resized to 31 px
    is compared with its 64-px source on the detail both still have.
    """
    first, second = Pictures.of(first), Pictures.of(second)
    alignment = align(first, second) if alignment is None else alignment
    alike, use_forward = better_direction(
        *both_directions(first, second, side, resolution, alignment=alignment)
    )
    if not colour:
        return alike
    chroma, greyed = colour_measures(first, second, use_forward, side, resolution, alignment)
    return alike._replace(chroma=chroma.astype(np.float32), greyed=greyed.astype(np.float32))


def better_direction(
    forward: PairSimilarity, backward: PairSimilarity
) -> tuple[PairSimilarity, np.ndarray]:
    """Per pair, the crop direction that aligned better (higher correlation + detail), as
    float32 values, and whether it is the forward one."""
    use_forward = forward.correlation + forward.detail >= backward.correlation + backward.detail
    return (
        PairSimilarity(
            *(
                np.where(use_forward, f, b).astype(np.float32)
                for f, b in zip(forward, backward, strict=True)
            )
        ),
        use_forward,
    )


def _levels(side: int, resolution: np.ndarray | None, count: int) -> np.ndarray:
    """Per pair, the factor by which its blur and detail scale (see `pair_similarity`)."""
    if resolution is None:
        return np.ones(count)
    ratio = side / np.maximum(np.asarray(resolution, np.float64), 1)
    return np.clip(np.round(ratio * 2) / 2, 1, 4)


def both_directions(
    first: np.ndarray | Pictures,
    second: np.ndarray | Pictures,
    side: int = VERIFY_SIDE,
    resolution: np.ndarray | None = None,
    gate: Gate | None = None,
    alignment: Alignment | None = None,
) -> tuple[PairSimilarity, PairSimilarity]:
    """The grey-level measures of `pair_similarity` in each crop direction: the first
    picture warped onto the second (forward) and the second onto the first (backward); the
    same arguments (float64 values: `better_direction` chooses between them before rounding
    to float32). With `gate`, a direction's changed area is measured only where the gate
    passes its correlation and detail, and is infinite elsewhere."""
    first, second = Pictures.of(first), Pictures.of(second)
    alignment = align(first, second) if alignment is None else alignment
    count = len(first.index)
    results = [[np.zeros(count) for _ in PairSimilarity._fields] for _ in range(2)]
    factor = _levels(side, resolution, count)
    for level in np.unique(factor):
        which = np.flatnonzero(factor == level)
        blur, detail = BLUR * level, DETAIL_SIGMA * level

        def prepare(pictures: Pictures, used: np.ndarray) -> _Prepared:
            return _prepare(pictures_at(pictures.grey, used), blur, detail, side)  # noqa: B023

        (a, at_a), (b, at_b) = each_picture(first.take(which), second.take(which), prepare)
        fits = alignment.take(which)
        directions = (
            _aligned(a, at_a, b, at_b, fits.direction(True), blur, detail, side, gate),
            _aligned(b, at_b, a, at_a, fits.direction(False), blur, detail, side, gate),
        )
        for out, alike in zip(results, directions, strict=True):
            for values, measured in zip(out, alike, strict=True):
                values[which] = measured
    forward, backward = (PairSimilarity(*values) for values in results)
    return forward, backward


def colour_measures(
    first: np.ndarray | Pictures,
    second: np.ndarray | Pictures,
    use_forward: np.ndarray,
    side: int = VERIFY_SIDE,
    resolution: np.ndarray | None = None,
    alignment: Alignment | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, chroma and greyed (`PairSimilarity`) of its source warped onto its target
    in one crop direction, the forward one where `use_forward`: the R, G and B planes are
    warped (three times the work of the grey levels), so only the direction that is kept."""
    first, second = Pictures.of(first), Pictures.of(second)
    alignment = align(first, second) if alignment is None else alignment
    count = len(first.index)
    chroma, greyed = np.full(count, np.nan), np.full(count, np.nan)
    factor = _levels(side, resolution, count)
    for level in np.unique(factor):
        for forward in (True, False):
            which = np.flatnonzero((factor == level) & (use_forward == forward))
            if len(which) == 0:
                continue
            source, target = (first, second) if forward else (second, first)
            chroma[which], greyed[which] = _colour_difference(
                source.take(which),
                target.take(which),
                alignment.take(which).direction(forward),
                BLUR * level,
                side,
            )
    return chroma, greyed


def _colour_difference(
    source: Pictures, target: Pictures, fit: tuple[np.ndarray, np.ndarray], blur: float, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Chroma (90th percentile of `chroma_distance`) and greyed (`greyed_share`) of each
    pair's source warped by `fit` onto its target's uncropped view, at `side` pixels."""
    n = source.planes.shape[2]
    table = warp_table(n, side, blur)
    rows, cols = table[fit[0]], table[fit[1]]
    warped_s = [rows @ plane[source.index] @ cols.transpose(0, 2, 1) for plane in source.planes]
    used, at = np.unique(target.index, return_inverse=True)
    full = view_matrix(n, side, blur)
    warped_t = [full @ pictures_at(plane, used) @ full.T for plane in target.planes]
    chroma_s, chroma_t = chroma_planes(warped_s), chroma_planes(warped_t)
    chroma_t = tuple(part[at] for part in chroma_t)
    distance = chroma_distance(chroma_s, chroma_t).reshape(len(rows), -1)
    greyed = greyed_share(
        grey_levels(warped_s), chroma_s[2], grey_levels(warped_t)[at], chroma_t[2]
    )
    return np.percentile(distance, 90, axis=1), greyed
