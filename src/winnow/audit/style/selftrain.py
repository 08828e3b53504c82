"""Self-training under treatments: a classifier that learns the dataset's own style boundary
from the images the statistics are sure of, shown as a crawled folder would show them.

The median and discriminant of `winnow.audit.style.domain` find the kind of out-of-domain
image that dominates the tail (on the project benchmark, colourful cut-out photographs) and
miss other kinds: a small grey face, a full-frame crop of a landscape. Their statistics
differ from the tail's on other axes (a grey photograph has few colours; a small one was
upscaled smooth), so one linear direction cannot hold them all. A crawled folder applies
the same few treatments to any picture, though, so the sure ones can be shown with them:

1. seeds: the items the verdict puts out of domain with probability ≥ `SEED_PROBABILITY` on
   their own pixels; negatives: up to `NEGATIVES_PER_SEED` × as many items that it puts in
   domain with probability < `NEGATIVE_PROBABILITY`, drawn from the `NEGATIVE_QUANTILE` of
   the dataset nearest its own style (the upper tail holds the kinds step 1 missed);
2. `COPIES` treated copies of each, each copy a random combination of `TREATMENTS`
   (a full-frame window, resampled small, grey, JPEG), their statistics computed as for
   any image (`winnow.audit.style.features.photo_like_features`);
3. a gradient-boosted classifier (scikit-learn's `HistGradientBoostingClassifier`) on
   originals and treated copies: out of domain vs in domain, whatever the treatment;
4. once more, the negatives drawn again from every item the first classifier puts in
   domain (probability < `NEGATIVE_PROBABILITY`), so that the hard in-domain images of the
   upper tail are now shown as in domain and the missed kinds are not; the seeds stay those
   of step 1 (re-seeding from a classifier's own flags drifts).

The second classifier's probability, adjusted to the dataset's own share of out-of-domain
items (`prior_adjusted`: the training mix holds one seed per `NEGATIVES_PER_SEED`
negatives, the folder far fewer), is the verdict's. Under `MIN_SEEDS` seeds nothing is
trained and the verdict stands (a clean folder has no sure out-of-domain image to learn
from). Labels, file format, names and metadata are never used; no pretrained weights.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from winnow.audit.style.domain import MIN_SEEDS, Decision, Verdict, shared_by_copies
from winnow.audit.style.features import FEATURES, photo_like_features
from winnow.data.cache import PixelCache
from winnow.data.engine import Engine, LocalEngine
from winnow.data.manifest import cache_positions, longer_sides

SEED_PROBABILITY = 0.8
NEGATIVE_PROBABILITY = 0.05
NEGATIVE_QUANTILE = 0.75
NEGATIVES_PER_SEED = 3
COPIES = 2
EM_STEPS = 100
SMALL_SIDE = (32, 112)  # `small`: the longer side a picture is resampled to, in px
JPEG_QUALITY = (70, 95)
# treatment → the chance a treated copy has it (independently; a copy may have several)
TREATMENTS: dict[str, float] = {"frame": 0.5, "small": 0.5, "grey": 0.4, "jpeg": 0.5}

# pixels, detail crops and longer sides of the items at these positions (`features` order)
Loader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def cache_loader(cache: PixelCache, rows: pd.DataFrame) -> Loader:
    """The `Loader` of manifest `rows` (aligned with the features) from the pixel cache."""

    def load(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chosen = rows.iloc[positions]
        where = cache_positions(chosen)
        return cache.take(*where), cache.take_detail(*where), longer_sides(chosen)

    return load


def _grey(pixels: np.ndarray) -> np.ndarray:
    luminance = (pixels.astype(np.int32) @ np.array([77, 150, 29])) >> 8
    return np.repeat(luminance.astype(np.uint8)[..., None], 3, axis=-1)


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def _frame(pixels: np.ndarray, detail: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The detail window as a whole picture: a full-frame crop, no background around it."""
    size = pixels.shape[0]
    whole = Image.fromarray(detail).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(whole), detail, detail.shape[0]


def _small(
    pixels: np.ndarray, side: int, background: tuple[int, int, int], detail_side: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The picture resampled to `side` px, then fitted to the cache size as a scan fits a
    small image; its detail window is itself (centred on the background) when smaller."""
    size = pixels.shape[0]
    shrunk = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
    fitted = np.asarray(shrunk.resize((size, size), Image.Resampling.BICUBIC))
    small = np.asarray(shrunk)
    if side >= detail_side:
        start = (side - detail_side) // 2
        return fitted, small[start : start + detail_side, start : start + detail_side], side
    detail = np.empty((detail_side, detail_side, 3), np.uint8)
    detail[:] = background
    start = (detail_side - side) // 2
    detail[start : start + side, start : start + side] = small
    return fitted, detail, side


class Treatment(NamedTuple):
    """What one treated copy gets (`TREATMENTS` drawn), with the resampled side (`small`)
    and the JPEG quality (`jpeg`) where it has them."""

    done: tuple[str, ...]
    side: int = 0
    quality: int = 0


def draw_treatment(rng: np.random.Generator) -> Treatment:
    """One copy's treatment, drawn from `rng` (the same draws in the same order wherever the
    copy is then made)."""
    done = tuple(name for name, chance in TREATMENTS.items() if rng.random() < chance)
    side = int(rng.integers(SMALL_SIDE[0], SMALL_SIDE[1] + 1)) if "small" in done else 0
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if "jpeg" in done else 0
    return Treatment(done, side, quality)


def treated(
    pixels: np.ndarray,
    detail: np.ndarray,
    longer: int,
    background: tuple[int, int, int],
    treatment: Treatment,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One image (cache view, detail crop, longer side) given `treatment`."""
    if "frame" in treatment.done:
        pixels, detail, longer = _frame(pixels, detail)
    if "small" in treatment.done:
        pixels, detail, longer = _small(pixels, treatment.side, background, detail.shape[0])
    if "grey" in treatment.done:
        pixels, detail = _grey(pixels), _grey(detail)
    if "jpeg" in treatment.done:
        pixels = _jpeg(pixels, treatment.quality)
        detail = _jpeg(detail, treatment.quality)
    return pixels, detail, longer


def treat(
    pixels: np.ndarray,
    detail: np.ndarray,
    longer: int,
    background: tuple[int, int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int, tuple[str, ...]]:
    """One treated copy of one image (cache view, detail crop, longer side) and what was done."""
    treatment = draw_treatment(rng)
    return (*treated(pixels, detail, longer, background, treatment), treatment.done)


TREATED_CHUNK = 256  # treated copies per engine task


def treated_statistics(
    load: Loader,
    positions: np.ndarray,
    background: tuple[int, int, int],
    rng: np.random.Generator,
    copies: int = COPIES,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """`copies` treated copies of each item at `positions`, their photo statistics. The
    treatments are drawn here, in order, from `rng`; applying them and measuring the copies
    runs on `engine` (default: this process), `TREATED_CHUNK` copies a task."""
    if not len(positions) or not copies:
        return pd.DataFrame(columns=list(FEATURES))
    pixels, detail, longer = load(positions)
    source = np.tile(np.arange(len(positions)), copies)
    treatments = [draw_treatment(rng) for _ in source]
    chunks = (
        (pixels[part], detail[part], longer[part], treatments[start : start + TREATED_CHUNK])
        for start in range(0, len(source), TREATED_CHUNK)
        for part in [source[start : start + TREATED_CHUNK]]
    )
    engine = engine or LocalEngine(1)
    parts = list(engine.map(_treated_chunk, chunks, background))
    return pd.concat(parts, ignore_index=True)


def _treated_chunk(chunk: tuple, background: tuple[int, int, int]) -> pd.DataFrame:
    """`treated_statistics` for one chunk of copies (an engine task): the copies' sources
    and treatments in, their statistics out."""
    pixels, detail, longer, treatments = chunk
    views, crops, sides = [], [], []
    for i, treatment in enumerate(treatments):
        view, crop, side = treated(pixels[i], detail[i], int(longer[i]), background, treatment)
        views.append(view)
        crops.append(crop)
        sides.append(side)
    return photo_like_features(np.stack(views), np.array(sides), background, np.stack(crops))


def _classifier(
    features: pd.DataFrame,
    seeds: np.ndarray,
    negatives: np.ndarray,
    treated_seeds: pd.DataFrame,
    treated_negatives: pd.DataFrame,
    seed: int,
) -> tuple[np.ndarray, float]:
    """P(out of domain) for every item, from a classifier of seeds vs negatives (at the
    training mix's prior), and that prior."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    columns = list(FEATURES)
    x = pd.concat(
        [features.iloc[seeds], treated_seeds, features.iloc[negatives], treated_negatives],
        ignore_index=True,
    )[columns].to_numpy()
    positive = len(seeds) + len(treated_seeds)
    y = np.r_[np.ones(positive), np.zeros(len(x) - positive)]
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    model.fit(x, y)
    return model.predict_proba(features[columns].to_numpy())[:, 1], positive / len(x)


def prior_adjusted(probability: np.ndarray, trained_prior: float) -> tuple[np.ndarray, float]:
    """Posteriors for the dataset's own share of out-of-domain items, which the classifier's
    training mix (`trained_prior` of out-of-domain examples) does not share: the EM
    re-estimation of Saerens, Latinne & Decaestecker (2002), from the training prior until
    the share stops moving. Returns the posteriors and the share."""
    odds = np.clip(probability, 1e-9, 1.0) / np.clip(1.0 - probability, 1e-9, 1.0)
    trained_odds = trained_prior / (1.0 - trained_prior)
    share, posterior = trained_prior, probability
    for _ in range(EM_STEPS):
        shifted = odds * (share / (1.0 - share)) / trained_odds
        posterior = shifted / (1.0 + shifted)
        moved, share = abs(float(posterior.mean()) - share), float(posterior.mean())
        if moved < 1e-5:
            break
    return posterior, share


def _negatives(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(pool, min(len(pool), count), replace=False))


def self_trained(
    result: Verdict,
    features: pd.DataFrame,
    load: Loader,
    background: tuple[int, int, int],
    groups: pd.Series | None = None,
    seed: int = 0,
    engine: Engine | None = None,
) -> Verdict:
    """The verdict after self-training (module text); `result` unchanged under `MIN_SEEDS`
    seeds or when too few in-domain items are sure to learn from. The treated copies are
    measured on `engine` (default: this process)."""
    own = result.decision.probability  # each item on its own pixels, before its copies
    oriented = result.direction * result.likeness  # larger = more out of domain
    seeds = np.flatnonzero(own >= SEED_PROBABILITY)
    calm = own < NEGATIVE_PROBABILITY
    pool = np.flatnonzero(calm & (oriented <= np.quantile(oriented, NEGATIVE_QUANTILE)))
    if len(seeds) < MIN_SEEDS or len(pool) < len(seeds):
        return result
    rng = np.random.default_rng(seed)
    count = NEGATIVES_PER_SEED * len(seeds)
    negatives = _negatives(pool, count, rng)
    treated_seeds = treated_statistics(load, seeds, background, rng, engine=engine)

    def trained(negatives: np.ndarray) -> tuple[np.ndarray, float]:
        treated_negatives = treated_statistics(load, negatives, background, rng, engine=engine)
        return _classifier(features, seeds, negatives, treated_seeds, treated_negatives, seed)

    probability, prior = trained(negatives)
    pool = np.flatnonzero(calm & (probability < NEGATIVE_PROBABILITY))
    if len(pool) >= len(seeds):
        probability, prior = trained(_negatives(pool, count, rng))
    probability, share = prior_adjusted(probability, prior)
    flagged = probability >= 0.5
    logit = np.log(np.clip(probability, 1e-6, 1.0) / np.clip(1.0 - probability, 1e-6, 1.0))
    cut = float(logit[flagged].min()) if flagged.any() else float("inf")
    decision = Decision(probability, flagged, cut, share, 0, "self-trained classifier")
    shared = probability if groups is None else shared_by_copies(probability, groups)
    return replace(
        result,
        likeness=result.direction * logit,
        decision=decision,
        probability=shared,
        self_trained=len(seeds),
    )
