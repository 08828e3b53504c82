"""Verification of candidate pairs on pixels: `verify_pairs` keeps the pairs whose aligned
pictures pass every test (winnow.audit.neardup.similarity measures them), that stand out of
any series of look-alikes they are in (`standing_out`), and that are not two same-size
siblings differing in their ink (`same_size_unchanged`). Chunks of pairs are units of work
for an engine (winnow.data.engine).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from winnow.audit.neardup.alignment import Alignment, Pictures, align, max_aspect_change
from winnow.audit.neardup.same_size import same_size_change
from winnow.audit.neardup.search import LOSSLESS_FORMATS, Items, NearDuplicateSettings
from winnow.audit.neardup.similarity import (
    FULL_SIDE,
    PairSimilarity,
    better_direction,
    both_directions,
    colour_measures,
    pair_similarity,
)
from winnow.data.cache import PixelCache
from winnow.data.decode import draft_reduces
from winnow.data.engine import Engine, LocalEngine
from winnow.data.manifest import longer_sides

IDENTICAL_DIFFERENCE = 0.01  # grey levels: aligned pictures closer than this are identical
# formats whose pixels carry no compression noise (WEBP may be lossy)
NOISELESS_FORMATS = LOSSLESS_FORMATS - {"WEBP"}


def aspect_change(first: pd.DataFrame, second: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of rows (aligned frames): the log of the ratio of their aspect ratios, and
    the largest a crop can explain (`max_aspect_change`); NaN where a size is unknown."""
    w1, h1 = first["width"].to_numpy(float), first["height"].to_numpy(float)
    w2, h2 = second["width"].to_numpy(float), second["height"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(np.log((w1 / h1) / (w2 / h2)))
        limit = np.log(max_aspect_change(np.fmin(np.fmin(w1, h1), np.fmin(w2, h2))))
    return change, limit


def aspect_compatible(first: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """Per pair of rows (aligned frames): whether their aspect ratios are close enough for
    one to be a crop of the other (`aspect_change`); unknown sizes are compatible."""
    change, limit = aspect_change(first, second)
    return ~(change > limit)  # NaN (unknown size) compares False: compatible


class Test(NamedTuple):
    """One pixel test of verification: per-pair `values` against `limit`, which they must
    reach (`at_least`) or not exceed."""

    values: np.ndarray
    limit: float
    at_least: bool

    def passed(self) -> np.ndarray:
        return self.values >= self.limit if self.at_least else self.values <= self.limit


def verification_tests(alike: PairSimilarity, settings: NearDuplicateSettings) -> dict[str, Test]:
    """The tests a candidate pair must all pass at the verification side, by the name of
    the setting that sets each limit (`winnow compare` prints them one by one)."""
    return {
        "min_correlation": Test(alike.correlation, settings.min_correlation, True),
        "min_detail": Test(alike.detail, settings.min_detail, True),
        "max_chroma_distance": Test(alike.chroma, settings.max_chroma_distance, False),
        "max_greyed_area": Test(alike.greyed, settings.max_greyed_area, False),
        "max_changed_area": Test(alike.changed, settings.max_changed_area, False),
    }


# The changed area (the dearest grey-level test) is measured only where correlation and
# detail are within this of their limits: a pair further below one of them fails anyway.
GATE_SLACK = 1e-3
GREY_TESTS = ("min_correlation", "min_detail", "max_changed_area")  # `verification_tests` on grey


def verification_side(
    first: Pictures,
    second: Pictures,
    resolution: np.ndarray,
    settings: NearDuplicateSettings,
    alignment: Alignment | None = None,
) -> PairSimilarity:
    """`pair_similarity` at the verification side, with the dearer measures taken only where
    they can still decide: the changed area where correlation and detail can pass
    (`GATE_SLACK`), and the colour measures (the R, G and B planes warped) only for pairs
    that pass every grey-level test of `verification_tests`. Elsewhere the changed area is
    infinite and chroma and greyed are NaN, which fail their tests as the pair does anyway:
    the verdicts of `verification_tests` are those of `pair_similarity`."""
    alignment = align(first, second) if alignment is None else alignment

    def can_pass(correlation: np.ndarray, detail: np.ndarray) -> np.ndarray:
        return (correlation >= settings.min_correlation - GATE_SLACK) & (
            detail >= settings.min_detail - GATE_SLACK
        )

    alike, use_forward = better_direction(
        *both_directions(first, second, resolution=resolution, gate=can_pass, alignment=alignment)
    )
    tests = verification_tests(alike, settings)
    grey_passes = passes({name: tests[name] for name in GREY_TESTS})
    which = np.flatnonzero(grey_passes)
    chroma, greyed = np.full(len(grey_passes), np.nan), np.full(len(grey_passes), np.nan)
    if len(which):
        chroma[which], greyed[which] = colour_measures(
            first.take(which),
            second.take(which),
            use_forward[which],
            resolution=resolution[which],
            alignment=alignment.take(which),
        )
    return alike._replace(chroma=chroma.astype(np.float32), greyed=greyed.astype(np.float32))


def full_side_test(sharp: PairSimilarity, settings: NearDuplicateSettings) -> Test:
    """The changed area again at the cache's full resolution, for pairs that passed."""
    return Test(sharp.changed, settings.max_changed_area_full, False)


def passes(tests: dict[str, Test]) -> np.ndarray:
    """Per pair: whether it passes every test."""
    return np.logical_and.reduce([test.passed() for test in tests.values()])


def verify_pairs(
    first: Items,
    second: Items,
    pairs: np.ndarray,
    settings: NearDuplicateSettings,
    engine: Engine | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the (first, second) pairs confirmed on pixels (at the verification side, then the
    changed area again at the cache's full resolution) and standing out of any series they
    are in (`standing_out`, ranked at full resolution); returns (pairs, correlation). With
    `first is second` the pairs are within one set. Pairs whose aspect ratios no crop can
    reconcile (`aspect_compatible`) are dropped before any pixel is read.

    Pixels come from the caches chunk by chunk (`settings.batch_pairs` pairs), so memory
    does not grow with the dataset; each chunk is a unit of work for `engine` (default:
    this process), and the chunks' results are joined in order.
    """
    within = first is second
    if len(pairs):  # a tall and a square picture are not copies: no pixels needed for that
        sizes = [items.frame[["width", "height"]] for items in (first, second)]
        pairs = pairs[aspect_compatible(sizes[0].iloc[pairs[:, 0]], sizes[1].iloc[pairs[:, 1]])]
    if len(pairs) == 0:
        return pairs.reshape(0, 2), np.zeros(0, np.float32)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    engine = engine or LocalEngine(1)
    shared = (*_portable(first, second), settings)
    chunks = (
        pairs[start : start + settings.batch_pairs]
        for start in range(0, len(pairs), settings.batch_pairs)
    )
    kept, scores, ranks, same = zip(*engine.map(_verify_chunk, chunks, shared), strict=True)
    pairs, scores = np.concatenate(kept), np.concatenate(scores)
    keep = standing_out(pairs, np.concatenate(ranks), within, settings)
    keep |= np.concatenate(same)  # identical once aligned (blank pictures): no series to doubt
    pairs, scores = pairs[keep], scores[keep]
    # after the series rule, which therefore sees every look-alike: removing the same-size
    # siblings first would break a series into small clusters that it no longer doubts
    # (on the benchmark: 327 unknown pairs instead of 137, and 65 s more)
    unchanged = same_size_unchanged(first, second, pairs, settings, engine)
    return pairs[unchanged], scores[unchanged]


def _portable(first: Items, second: Items) -> tuple[Items, Items]:
    """Both sets as engine tasks receive them (`Items.portable`); one object for both when
    the pairs are within one set, which the tasks test with `is`."""
    portable = first.portable()
    return portable, portable if first is second else second.portable()


def _verify_chunk(
    chunk: np.ndarray, shared: tuple[Items, Items, NearDuplicateSettings]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of `verify_pairs` (an engine task): the pairs that pass every test at the
    verification side and the changed-area test at full resolution, their correlation,
    their series rank and whether they are identical once aligned."""
    first, second, settings = shared
    if first is second:  # pairs within one set: a picture on either side is read once
        unique, inverse = np.unique(chunk, return_inverse=True)
        inverse = inverse.reshape(chunk.shape)
        pictures = Pictures.stacked(first.regions(unique), inverse[:, 0])
        views = [pictures, pictures.pointing(inverse[:, 1])]
    else:
        views = []
        for items, column in ((first, chunk[:, 0]), (second, chunk[:, 1])):
            unique, inverse = np.unique(column, return_inverse=True)
            views.append(Pictures.stacked(items.regions(unique), inverse))
    # the smaller picture's own size: a copy upscaled into the cache is compared on the
    # detail it has (see pair_similarity)
    resolution = np.minimum(
        longer_sides(first.frame.iloc[chunk[:, 0]]),
        longer_sides(second.frame.iloc[chunk[:, 1]]),
    )
    alignment = align(*views)  # the crops, fitted once for both sides
    alike = verification_side(*views, resolution, settings, alignment)
    confirmed = passes(verification_tests(alike, settings))
    # a verified pair is compared again at the cache's full resolution (only the few
    # verified pairs pay for it): thin frames, ornaments and small marks that blur away
    # at the verification side show up in its changed area
    sharp = full_side(
        views[0].take(confirmed),
        views[1].take(confirmed),
        settings.batch_pairs // 4,
        alignment=alignment.take(confirmed),
    )
    still = full_side_test(sharp, settings).passed()
    return (
        chunk[confirmed][still],
        alike.correlation[confirmed][still],
        series_score(sharp)[still],
        (alike.difference[confirmed] < IDENTICAL_DIFFERENCE)[still],
    )


def same_size_comparable(
    a: pd.DataFrame, b: pd.DataFrame, cache_a: PixelCache, cache_b: PixelCache
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of rows (aligned frames): whether their cache views can be compared pixel
    for pixel (`same_size_unchanged`), and whether strictly (both formats noiseless)."""
    same_size = (a["width"].to_numpy() == b["width"].to_numpy()) & (
        a["height"].to_numpy() == b["height"].to_numpy()
    )
    if not same_size.any() or (cache_a.image_size, list(cache_a.background)) != (
        cache_b.image_size,
        list(cache_b.background),
    ):
        return np.zeros(len(a), bool), np.zeros(len(a), bool)

    def drafted(rows: pd.DataFrame) -> np.ndarray:
        return draft_reduces(rows["format"], rows["width"], rows["height"], cache_a.image_size)

    def noiseless(rows: pd.DataFrame) -> np.ndarray:
        return rows["format"].astype(object).isin(NOISELESS_FORMATS).to_numpy()

    decoder_a, decoder_b = (rows["decoder"].astype(object).to_numpy() for rows in (a, b))
    comparable = same_size & (decoder_a == decoder_b) & ~drafted(a) & ~drafted(b)
    return comparable, noiseless(a) & noiseless(b)


def same_size_unchanged(
    first: Items,
    second: Items,
    pairs: np.ndarray,
    settings: NearDuplicateSettings,
    engine: Engine | None = None,
) -> np.ndarray:
    """Which verified pairs survive a comparison without alignment, as a mask.

    Two files with the same width and height that the scan decoded the same way (same
    decoder, neither a JPEG drafted at a reduced scale, caches of the same size and
    background) have cache views that no resize or crop lies between. Their pixels are
    compared one to one (`same_size_change`, at most `max_same_size_change` of the ink may
    differ), forgiving a pixel of misalignment only when one of them is a lossy format.
    Pairs of other sizes keep their verdict: a resized copy cannot be compared this way.
    Chunks of SAME_SIZE_BATCH pairs are units of work for `engine` (default: this process).
    """
    mask = np.ones(len(pairs), bool)
    if len(pairs) == 0:
        return mask
    a, b = first.frame.iloc[pairs[:, 0]], second.frame.iloc[pairs[:, 1]]
    comparable, strict = same_size_comparable(a, b, first.cache, second.cache)
    where = np.flatnonzero(comparable)
    if len(where) == 0:
        return mask
    engine = engine or LocalEngine(1)
    shared = _portable(first, second)
    parts = np.array_split(where, range(SAME_SIZE_BATCH, len(where), SAME_SIZE_BATCH))
    chunks = ((pairs[part], strict[part]) for part in parts)
    changes = np.concatenate(list(engine.map(_same_size_chunk, chunks, shared)))
    mask[where] = changes <= settings.max_same_size_change
    return mask


SAME_SIZE_BATCH = 64  # same-size pairs per unit of work (a few milliseconds each)


def _same_size_chunk(
    chunk: tuple[np.ndarray, np.ndarray], shared: tuple[Items, Items]
) -> np.ndarray:
    """`same_size_change` of each pair of a chunk of `same_size_unchanged` (an engine task),
    strictly where `strict` says both formats are noiseless."""
    (pairs, strict), (first, second) = chunk, shared
    regions = zip(first.regions(pairs[:, 0]), second.regions(pairs[:, 1]), strict, strict=True)
    return np.array([same_size_change(x, y, reach=0 if s else 1) for x, y, s in regions])


def series_score(alike: PairSimilarity) -> np.ndarray:
    """What tells series members apart (`standing_out`'s score, higher = more alike): shared
    edges, less any difference in ink."""
    return alike.detail - alike.difference / 100


def full_side(
    first: np.ndarray | Pictures,
    second: np.ndarray | Pictures,
    size: int,
    colour: bool = False,
    alignment: Alignment | None = None,
) -> PairSimilarity:
    """pair_similarity at FULL_SIDE, `size` pairs at a time (4× the pixels of a pair at the
    verification side, so a quarter of the batch keeps the peak memory where it was);
    (P, n, n, 3) verification views or `Pictures`. What is used at this side (the changed
    area, and detail and difference for the series rank) is luminance: colour, tested at
    the verification side, is compared only with `colour`. `alignment`: the pairs' crops,
    when fitted already (`align`)."""
    first, second = Pictures.of(first), Pictures.of(second)
    alignment = align(first, second) if alignment is None else alignment
    size = max(1, size)
    count = len(first.index)
    parts = [
        pair_similarity(
            first.take(chunk),
            second.take(chunk),
            FULL_SIDE,
            colour=colour,
            alignment=alignment.take(chunk),
        )
        for chunk in np.array_split(np.arange(count), range(size, count, size))
    ]
    return PairSimilarity(*(np.concatenate(values) for values in zip(*parts, strict=True)))


def standing_out(
    pairs: np.ndarray, score: np.ndarray, same_set: bool, settings: NearDuplicateSettings
) -> np.ndarray:
    """Which verified pairs to report, as a mask.

    Real clipart holds long series of genuinely similar drawings (a thousand spirograph
    stars that differ in point count) that pass any pixel test a re-encoded, resized copy
    passes. Linked by their verified pairs, copies of one picture form a small cluster,
    however often it was copied; a series chains into one large one.

    Pairs in a cluster of at most `series_size` pictures are all kept. In a larger one, a
    pair is kept only where it stands out: a picture *prefers* a pair when it is its best
    match by more than `series_margin` (in `score`: higher = more alike); the pair is kept
    when a picture with two or more look-alikes prefers it, or when both of its pictures
    do. (A picture with a single look-alike prefers it trivially, which alone proves
    nothing: its partner may be torn between many.)
    """
    if len(pairs) == 0:
        return np.zeros(0, bool)
    offset = 0 if same_set else int(pairs[:, 0].max()) + 1  # two sets: separate ends
    first, second = pairs[:, 0], pairs[:, 1] + offset
    n = int(max(first.max(), second.max())) + 1
    graph = coo_matrix((np.ones(len(pairs)), (first, second)), shape=(n, n))
    _, cluster = connected_components(graph, directed=False)
    in_series = np.bincount(cluster)[cluster[first]] > settings.series_size

    ends = np.concatenate([first, second])
    both = np.concatenate([score, score])
    which = np.concatenate([np.arange(len(pairs))] * 2)
    order = np.lexsort((-both, ends))
    ends, both, which = ends[order], both[order], which[order]
    starts = np.r_[True, ends[1:] != ends[:-1]]  # the best pair of each end comes first
    group = np.cumsum(starts) - 1
    degree = np.bincount(group)[group]
    runner_up = np.where(degree > 1, np.r_[both[1:], -np.inf], -np.inf)  # same end's next
    prefers = starts & (both - runner_up > settings.series_margin)

    def count(flags: np.ndarray) -> np.ndarray:  # per pair: at how many of its two ends
        return np.bincount(which, weights=flags, minlength=len(pairs))

    return ~in_series | (count(prefers & (degree >= 2)) > 0) | (count(prefers) == 2)
