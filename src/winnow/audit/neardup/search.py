"""Near-duplicate search over manifest rows: its settings, the exact-copy keys and keeper
order, the pictures' search descriptors (`describe`), and grouping with a keeper.

The flow: `describe` → candidate pairs (winnow.audit.neardup.candidates) → pairs verified
on pixels (winnow.audit.neardup.verify) → `leader_groups`, which turns pairs into groups in
which every member was verified against the group's keeper, so a chain of look-alikes
(A~B~C~…) never collapses a whole series into one group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from winnow.audit.config import Fraction, NotNegative, PositiveInt
from winnow.audit.neardup.descriptors import PROJECTION_SAMPLE, Projection, descriptors
from winnow.audit.neardup.resample import image_region
from winnow.data.cache import PixelCache
from winnow.data.engine import Engine, LocalEngine
from winnow.data.manifest import cache_positions

LOSSLESS_FORMATS = {"PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO"}


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
    `coarse` colour and projected `detail` (see winnow.audit.neardup.descriptors), one row per
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
    batch: int = 512,
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
