"""Exact and near-duplicate search over manifest rows, and grouping with a suggested keeper.

`find_pairs` returns verified pairs between two item sets (or within one); `leader_groups`
turns pairs into groups in which every member was verified against the group's keeper,
so a chain of look-alikes (A~B~C~…) never collapses a whole series into one group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from winnow.audit.config import Fraction, NotNegative, PositiveInt
from winnow.audit.neardup.similarity import (
    FULL_SIDE,
    PROJECTION_SAMPLE,
    PairSimilarity,
    Projection,
    descriptors,
    image_region,
    max_aspect_change,
    pair_similarity,
    same_size_change,
    verification_view,
)
from winnow.data.cache import PixelCache
from winnow.data.decode import draft_reduces
from winnow.data.engine import Engine, LocalEngine
from winnow.data.manifest import cache_positions, longer_sides

LOSSLESS_FORMATS = {"PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO"}
# formats whose pixels carry no compression noise (WEBP may be lossy)
NOISELESS_FORMATS = LOSSLESS_FORMATS - {"WEBP"}


IDENTICAL_DIFFERENCE = 0.01  # grey levels: aligned pictures closer than this are identical

_NEAR_KEYS = (
    "neighbours",
    "min_correlation",
    "min_detail",
    "max_chroma_distance",
    "max_greyed_area",
    "max_changed_area",
    "max_changed_area_full",
    "max_same_size_change",
    "series_size",
    "series_margin",
)


class NearDuplicateSettings(BaseModel):
    """Settings of the near-duplicate search (the `near_duplicate` section of the audit
    config; `leak` verifies its pairs with the same settings).

    neighbours: candidates per image and descriptor.
    min_correlation: aligned luminance correlation a pair must reach.
    min_detail: aligned correlation of fine detail (edges) a pair must reach.
    max_chroma_distance: largest colour difference of a pair (90th percentile over pixels,
      0–510): the change of hue, weighted by how colourful the pixel is, plus half the
      change of colourfulness; a brightness shift that clips a channel moves neither much.
    max_greyed_area: largest fraction of pixels that may be a mid grey in one picture and
      coloured in the other (a grey and a colour version of one icon); a brightness shift
      keeps grey pixels grey, and clipping only greys colours at white or black.
    max_changed_area: largest fraction of pixels that may differ after aligning a pair
      (added strokes, marks, another frame or text make two look-alike drawings different
      pictures); a pixel differs when it is more than 40 grey levels from every pixel
      within one pixel's reach of it in the other picture. Measured at 64 px.
    max_changed_area_full: the same limit when a verified pair is compared again at the
      cache's full 128 px, where thin frames, corner ornaments and small marks show up.
    max_same_size_change: a verified pair of two files with the same width and height (and
      decoded the same way) is compared again pixel for pixel, with no alignment and no
      blur: no resize lies between them to forgive. It is dropped when more than this
      share of its ink (pixels away from each picture's dominant colour) differs by more
      than 40 grey levels after the best brightness/contrast map.
    series_size: pictures linked by verified pairs form clusters; copies of one picture
      make a small one, a series of genuinely similar drawings (a thousand spirograph
      stars) a large one. In a cluster of more than series_size pictures a pair is
      reported only if it is one picture's best match by more than series_margin (detail
      correlation less ink difference / 100, compared again at the cache's full 128 px).
    min_descriptor_similarity: candidates whose two descriptors both agree less than this
      are not verified (on the benchmark the lowest verified pair agrees 0.63; of the
      26,788 candidates below 0.55 three would verify, none of them a planted copy).
    batch_pairs: pairs verified per batch (memory against overhead).
    exact_index_limit: above this many items the candidate search uses an HNSW index
      (sub-quadratic) instead of an exact one.
    compressed_index_limit: above this many items it uses an inverted-file index of
      product-quantised codes instead (`candidates.compressed_index`): an HNSW graph keeps every
      descriptor uncompressed beside its links, several GB at a million pictures.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    # the flat audit keys of earlier versions (`min_correlation: 0.92` at the top level)
    legacy_keys: ClassVar[dict[str, str]] = {key: key for key in _NEAR_KEYS}

    neighbours: PositiveInt = 8
    min_correlation: float = 0.90
    min_detail: float = 0.90
    max_chroma_distance: float = 50.0
    max_greyed_area: Fraction = 0.02
    max_changed_area: Fraction = 0.002
    max_changed_area_full: Fraction = 0.01
    max_same_size_change: Fraction = 0.01
    series_size: PositiveInt = 32
    series_margin: NotNegative = 0.01
    min_descriptor_similarity: float = 0.55
    batch_pairs: PositiveInt = 384
    exact_index_limit: PositiveInt = 20_000
    compressed_index_limit: PositiveInt = 400_000

    @field_validator("min_correlation")
    @classmethod
    def _correlation_range(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"min_correlation must be in (0, 1], got {value:g}")
        return value


def exact_keys(frame: pd.DataFrame) -> pd.Series:
    """Decoded-pixel hash where known, else file hash: equal keys are exact duplicates."""
    pixel = frame["pixel_sha256"].astype(object)
    return pixel.where(pixel.notna(), "file:" + frame["sha256"].astype(object).astype(str))


def keeper_order(frame: pd.DataFrame) -> np.ndarray:
    """Row positions, best copy to keep first: lossless, then most pixels, then the
    shorter path (copies tend to be named 'x copy.png', 'x (1).png'), then path."""
    lossless = frame["format"].astype(object).isin(LOSSLESS_FORMATS).to_numpy()
    pixels = (frame["width"].astype("float64") * frame["height"].astype("float64")).to_numpy()
    paths = frame["path"].astype(object).to_numpy()
    lengths = np.array([len(p) for p in paths])
    return np.lexsort((paths, lengths, -np.nan_to_num(pixels), ~lossless))


@dataclass
class Items:
    """A set of manifest rows (status ok) with its pixel cache and search descriptors:
    `coarse` colour and projected `detail` (see winnow.audit.neardup.similarity), one row per
    item."""

    frame: pd.DataFrame
    cache: PixelCache
    coarse: np.ndarray
    detail: np.ndarray
    projection: Projection | None = None

    def portable(self) -> Items:
        """What reading pixels needs (the cache and each row's cache position and size),
        without the descriptors: cheap to send to a worker process or a Ray task."""
        frame = self.frame[["cache_shard", "cache_index", "width", "height"]]
        return Items(frame, self.cache, self.coarse[:0], self.detail[:0])

    def regions(self, positions: np.ndarray) -> list[np.ndarray]:
        rows = self.frame.iloc[positions]
        pixels = self.cache.take(*cache_positions(rows))
        return [
            image_region(p, int(w), int(h))
            for p, w, h in zip(pixels, rows["width"], rows["height"], strict=True)
        ]


def describe(
    frame: pd.DataFrame,
    cache: PixelCache,
    projection: Projection | None = None,
    batch: int = 2048,
    seed: int = 0,
    engine: Engine | None = None,
) -> Items:
    """Descriptors for every row of `frame` (ok rows), reading the cache in batches, each
    batch a unit of work for `engine` (default: in this process).

    The detail descriptors are projected with `projection`; without one, it is fitted on a
    seeded sample of PROJECTION_SAMPLE rows (pass a training set's projection to describe a
    set that is searched against it)."""
    engine = engine or LocalEngine(1)
    items = Items(frame, cache, np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32))
    if len(frame) == 0:
        return items
    n = len(frame)
    portable = items.portable()
    coarse: list[np.ndarray] = []
    detail: list[np.ndarray] = []
    done = np.zeros(0, np.int64)
    if projection is None:
        rng = np.random.default_rng(seed)
        done = np.sort(rng.permutation(n)[:PROJECTION_SAMPLE])
        # read in batches: the cache images of the whole sample would be 200 MB
        batches = (done[start : start + batch] for start in range(0, len(done), batch))
        parts = list(engine.map(_describe_batch, batches, (portable, None)))
        coarse = [part[0] for part in parts]
        raw = np.concatenate([part[1] for part in parts])
        del parts
        projection = Projection.fit(raw, seed)
        detail = [projection.apply(raw)]  # the sample is not read and described again
        del raw
    rest = np.setdiff1d(np.arange(n), done)
    batches = (rest[start : start + batch] for start in range(0, len(rest), batch))
    for part_coarse, part_detail in engine.map(_describe_batch, batches, (portable, projection)):
        coarse.append(part_coarse)
        detail.append(part_detail)
    order = np.argsort(np.concatenate([done, rest]), kind="stable")
    items.coarse = np.concatenate(coarse)[order]
    items.detail = np.concatenate(detail)[order]
    items.projection = projection
    return items


def _describe_batch(
    positions: np.ndarray, shared: tuple[Items, Projection | None]
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of `describe` (an engine task): coarse descriptors and the detail ones,
    projected when a projection is given, raw otherwise."""
    items, projection = shared
    coarse, raw = descriptors(items.regions(positions))
    return coarse, raw if projection is None else projection.apply(raw)


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
        pairs = pairs[
            aspect_compatible(first.frame.iloc[pairs[:, 0]], second.frame.iloc[pairs[:, 1]])
        ]
    if len(pairs) == 0:
        return pairs.reshape(0, 2), np.zeros(0, np.float32)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    engine = engine or LocalEngine(1)
    portable = first.portable()
    shared = (portable, portable if within else second.portable(), settings)
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
    unchanged = same_size_unchanged(first, second, pairs, settings)
    return pairs[unchanged], scores[unchanged]


def _verify_chunk(
    chunk: np.ndarray, shared: tuple[Items, Items, NearDuplicateSettings]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of `verify_pairs` (an engine task): the pairs that pass every test at the
    verification side and the changed-area test at full resolution, their correlation,
    their series rank and whether they are identical once aligned."""
    first, second, settings = shared
    views = []
    for items, column in ((first, chunk[:, 0]), (second, chunk[:, 1])):
        unique, inverse = np.unique(column, return_inverse=True)
        stack = np.stack([verification_view(r) for r in items.regions(unique)])
        views.append(stack[inverse])
    # the smaller picture's own size: a copy upscaled into the cache is compared on the
    # detail it has (see pair_similarity)
    resolution = np.minimum(
        longer_sides(first.frame.iloc[chunk[:, 0]]),
        longer_sides(second.frame.iloc[chunk[:, 1]]),
    )
    alike = pair_similarity(*views, resolution=resolution)
    confirmed = passes(verification_tests(alike, settings))
    # a verified pair is compared again at the cache's full resolution (only the few
    # verified pairs pay for it): thin frames, ornaments and small marks that blur away
    # at the verification side show up in its changed area
    sharp = full_side(views[0][confirmed], views[1][confirmed], settings.batch_pairs // 4)
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
    first: Items, second: Items, pairs: np.ndarray, settings: NearDuplicateSettings
) -> np.ndarray:
    """Which verified pairs survive a comparison without alignment, as a mask.

    Two files with the same width and height that the scan decoded the same way (same
    decoder, neither a JPEG drafted at a reduced scale, caches of the same size and
    background) have cache views that no resize or crop lies between. Their pixels are
    compared one to one (`same_size_change`, at most `max_same_size_change` of the ink may
    differ), forgiving a pixel of misalignment only when one of them is a lossy format.
    Pairs of other sizes keep their verdict: a resized copy cannot be compared this way.
    """
    mask = np.ones(len(pairs), bool)
    if len(pairs) == 0:
        return mask
    a, b = first.frame.iloc[pairs[:, 0]], second.frame.iloc[pairs[:, 1]]
    comparable, strict = same_size_comparable(a, b, first.cache, second.cache)
    where = np.flatnonzero(comparable)
    for start in range(0, len(where), settings.batch_pairs):
        chunk = where[start : start + settings.batch_pairs]
        regions_a = first.regions(pairs[chunk, 0])
        regions_b = second.regions(pairs[chunk, 1])
        for k, region_a, region_b in zip(chunk, regions_a, regions_b, strict=True):
            change = same_size_change(region_a, region_b, reach=0 if strict[k] else 1)
            mask[k] = change <= settings.max_same_size_change
    return mask


def series_score(alike: PairSimilarity) -> np.ndarray:
    """What tells series members apart (`standing_out`'s score, higher = more alike): shared
    edges, less any difference in ink."""
    return alike.detail - alike.difference / 100


def full_side(first: np.ndarray, second: np.ndarray, size: int) -> PairSimilarity:
    """pair_similarity at FULL_SIDE, `size` pairs at a time (4× the pixels of a pair at the
    verification side, so a quarter of the batch keeps the peak memory where it was)."""
    size = max(1, size)
    parts = [
        pair_similarity(first[start : start + size], second[start : start + size], FULL_SIDE)
        for start in range(0, len(first), size)
    ]
    if not parts:
        return pair_similarity(first, second, FULL_SIDE)
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


def leader_groups(order: np.ndarray, pairs: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Group id per item (−1 when alone). Items are visited in keeper order; an item joins
    the group of its most similar verified neighbour that already leads a group, otherwise
    it leads a new group. Every member is therefore verified against its group's keeper."""
    n = len(order)
    neighbours: list[dict[int, float]] = [{} for _ in range(n)]
    for (a, b), s in zip(pairs.tolist(), similarity.tolist(), strict=True):
        neighbours[a][b] = max(s, neighbours[a].get(b, -1.0))
        neighbours[b][a] = max(s, neighbours[b].get(a, -1.0))
    group = np.full(n, -1, np.int64)
    leader_of = np.full(n, -1, np.int64)
    next_group = 0
    for item in order.tolist():
        leaders = [(s, other) for other, s in neighbours[item].items() if leader_of[other] == other]
        if leaders:
            _, leader = max(leaders)
            leader_of[item] = leader
            group[item] = group[leader]
        else:
            leader_of[item] = item
            group[item] = next_group
            next_group += 1
    sizes = np.bincount(group, minlength=next_group)
    group[sizes[group] == 1] = -1
    return group
