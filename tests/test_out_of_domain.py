"""out_of_domain: photographs among drawings (and the reverse), from pixels only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.audit.style.domain import (
    MIN_SEEDS,
    REFERENCE_MEDIANS,
    SEPARATED,
    separation,
    shared_by_copies,
    strongest_evidence,
    tail_mixture,
    threshold,
)
from winnow.audit.style.domain import verdict as style_verdict
from winnow.audit.style.features import FEATURES, _pool, native_scale, photo_like_features
from winnow.config import ConfigError, build_config
from winnow.curate.clean import CleanPolicy, decide
from winnow.data.config import ScanConfig
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan
from winnow.workflows.demo import DRAWERS, illustration, photo_like

SCAN = ScanConfig(image_size=64, workers=1)
ONLY = AuditConfig(checks=["out_of_domain"])


def _write(root: Path, drawings: int, photos: int, seed: int = 0) -> tuple[set[str], set[str]]:
    """Class folders of demo drawings and photo-like pictures; names never say which is which."""
    rng = np.random.default_rng(seed)
    labels = list(DRAWERS)[:3]
    drawn, photographed = set(), set()
    for i in range(drawings + photos):
        label = labels[i % len(labels)]
        is_photo = i >= drawings
        image = (photo_like(rng) if is_photo else illustration(label, rng)).convert("RGB")
        # the format is a coin toss and the name says nothing: neither may be evidence
        fmt, suffix = ("JPEG", "jpg") if rng.random() < 0.5 else ("PNG", "png")
        name = f"{label}/item_{i:03d}.{suffix}"
        (root / label).mkdir(parents=True, exist_ok=True)
        image.save(root / name, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        (photographed if is_photo else drawn).add(name)
    return drawn, photographed


def _audit(tmp_path: Path, drawings: int, photos: int) -> tuple[pd.DataFrame, dict, set, set]:
    drawn, photographed = _write(tmp_path / "data", drawings, photos)
    run = tmp_path / "run"
    scan(tmp_path / "data", run, SCAN)
    summary = run_audit(run, ONLY)
    return read_manifest(run), summary["checks"]["out_of_domain"], drawn, photographed


def _flagged(frame: pd.DataFrame) -> set[str]:
    return set(frame.loc[frame["is_out_of_domain_issue"].astype(bool), "path"])


@pytest.mark.slow
def test_photographs_among_drawings_are_found(tmp_path: Path) -> None:
    frame, info, drawn, photographed = _audit(tmp_path, drawings=90, photos=6)
    assert info["dominant_style"] == "drawing"
    flagged = _flagged(frame)
    assert photographed <= flagged
    assert len(flagged & drawn) <= 2
    scores = frame.set_index("path")["out_of_domain_score"]
    assert scores[sorted(photographed)].max() < scores[sorted(drawn)].median()
    assert 0 < info["contamination_estimate"] < 0.2
    ok = int((frame["status"] == "ok").sum())
    assert info["flagged_share"] == pytest.approx(len(flagged) / ok, abs=1e-4)
    # run alone (no near_duplicate in this audit): no duplicate groups to share a style
    assert not info["copies_share_style"] and info["cleared_as_copies"] == 0


@pytest.mark.slow
def test_a_large_minority_of_photographs_is_found_as_a_second_population(tmp_path: Path) -> None:
    # 30 % moves the median and MAD the tail rule measures against: the score has two modes
    frame, info, drawn, photographed = _audit(tmp_path, drawings=70, photos=30)
    assert info["dominant_style"] == "drawing"
    assert info["threshold_rule"] == "two populations"
    flagged = _flagged(frame)
    assert photographed <= flagged and not flagged & drawn


@pytest.mark.slow
def test_drawings_among_photographs_are_found_too(tmp_path: Path) -> None:
    frame, info, drawn, photographed = _audit(tmp_path, drawings=6, photos=90)
    assert info["dominant_style"] == "photo"
    flagged = _flagged(frame)
    assert drawn <= flagged
    assert len(flagged & photographed) <= 2


def test_features_are_oriented_photo_up_and_ignore_upscaling() -> None:
    rng = np.random.default_rng(1)
    drawings = np.stack([np.asarray(illustration(label, rng).convert("RGB")) for label in DRAWERS])[
        :, :64, :64
    ]
    photos = np.stack([np.asarray(photo_like(rng))[:64, :64] for _ in DRAWERS])
    sides = np.full(len(DRAWERS), 64)
    # here the detail crop is the image itself (a 64-px image is smaller than the crop)
    drawn = photo_like_features(drawings, sides, (255, 255, 255), drawings)
    photographed = photo_like_features(photos, sides, (255, 255, 255), photos)
    assert list(drawn.columns) == list(FEATURES)
    for column in FEATURES:
        assert photographed[column].median() > drawn[column].median(), column
    # a 20-px icon upscaled by the cache is analysed at 16 px, not at its blurry cache size
    assert native_scale(np.array([20, 40, 64, 500]), 64).tolist() == [16, 32, 64, 64]


def test_palette_spread_reads_flat_fills_and_survives_jpeg() -> None:
    """A drawing's foreground is mostly a few flat fills; a photograph's is spread over
    thousands of colours. JPEG blurs the fills' rims (and subsamples their colour), which on
    these 64-px drawings raises the statistic to 0.3-0.75 at quality 75, still clear of
    every photograph: one statistic among eleven, not a detector on its own."""
    import io

    rng = np.random.default_rng(3)

    def through_jpeg(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=75)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

    drawings = np.stack(
        [np.asarray(illustration(label, rng).convert("RGB"))[:64, :64] for label in DRAWERS]
    )
    photos = np.stack([np.asarray(photo_like(rng))[:64, :64] for _ in DRAWERS])
    as_jpeg = np.stack([through_jpeg(image) for image in drawings])
    sides = np.full(len(DRAWERS), 64)
    white = (255, 255, 255)
    spread = {
        name: photo_like_features(images, sides, white, images)["palette_spread_native"]
        for name, images in (("drawn", drawings), ("jpeg", as_jpeg), ("photo", photos))
    }
    assert spread["drawn"].max() < 0.3
    assert spread["photo"].min() > 0.8
    assert spread["jpeg"].max() < 0.85


def test_incoherence_reads_isotropic_detail_high_and_oriented_detail_low() -> None:
    """Weak-gradient incoherence: iid noise and photo-like texture are isotropic, hatching
    and a flat drawing's anti-aliased outlines are oriented."""
    from winnow.audit.style.features import _statistics

    rng = np.random.default_rng(0)

    def incoherence(image: np.ndarray) -> float:
        values = _statistics(image[None], (255, 255, 255), ("incoherence",))
        return float(values["incoherence"][0])

    def rgb(image) -> np.ndarray:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(flat.resize((64, 64)))

    y, x = np.mgrid[0:64, 0:64]
    hatching = np.repeat((200 + 8 * np.sin((x + y) * 0.9)).astype(np.uint8)[..., None], 3, -1)
    grain = (200 + rng.normal(0, 4, (64, 64))).clip(0, 255).astype(np.uint8)
    noise = np.repeat(grain[..., None], 3, -1)
    assert incoherence(hatching) < 0.1 < 0.6 < incoherence(noise)
    photos = [incoherence(rgb(photo_like(rng))) for _ in range(20)]
    drawings = [incoherence(rgb(illustration(label, rng))) for label in list(DRAWERS) * 3]
    # measured over seeds 0-2: photo-like 0.30-0.40 (median 0.35), drawings 0.12-0.32 (0.18-0.22)
    assert np.median(photos) > 0.3 > np.median(drawings)
    assert np.median(photos) - np.median(drawings) > 0.1


def test_tail_mixture_finds_a_small_far_population_and_nothing_in_pure_noise() -> None:
    rng = np.random.default_rng(0)
    bulk, far = rng.normal(0, 1, 2000), rng.normal(6, 0.5, 60)
    decision = tail_mixture(np.concatenate([bulk, far]))
    assert decision.flagged[2000:].mean() > 0.95
    assert decision.flagged[:2000].mean() < 0.01
    assert 0.02 < decision.contamination < 0.04
    assert not tail_mixture(bulk).flagged.any()  # a clean dataset loses nothing
    # probability never falls as an item gets further out
    order = np.argsort(np.concatenate([bulk, far]))
    assert np.all(np.diff(decision.probability[order]) >= 0)


def test_the_discriminant_step_weighs_the_statistics_that_separate() -> None:
    """The median weighs every statistic alike, so statistics blind to this dataset's odd
    items hide the weaker ones and let chance extremes through; the discriminant learned
    from the first pass's flags weighs the informative ones and finds nearly all."""
    rng = np.random.default_rng(0)
    drawings = rng.normal(0, 1, (2000, len(FEATURES)))
    photos = rng.normal(0, 1, (80, len(FEATURES)))
    photos[:, :8] += rng.uniform(1.5, 4, (80, 1))  # 8 statistics see them, 7 are blind
    result = style_verdict(pd.DataFrame(np.vstack([drawings, photos]), columns=list(FEATURES)))
    assert result.refined
    first, final = result.first.flagged, result.decision.flagged
    assert final[2000:].sum() >= 76 > first[2000:].sum()
    assert final[:2000].sum() <= 5 < first[:2000].sum()
    # it weighs the statistics that see the photographs, not the blind ones
    informative, blind = result.weights.iloc[:8], result.weights.iloc[8:]
    assert informative.min() > blind.abs().max()
    # the combined score is reported in robust z units, oriented photo-up
    assert np.median(result.likeness) == pytest.approx(0, abs=1e-9)
    assert result.likeness[2000:].mean() > 3


def test_too_few_first_pass_flags_teach_no_discriminant() -> None:
    rng = np.random.default_rng(1)
    bulk = rng.normal(0, 1, (2000, len(FEATURES)))
    far = rng.normal(0, 1, (MIN_SEEDS - 10, len(FEATURES))) + 5
    result = style_verdict(pd.DataFrame(np.vstack([bulk, far]), columns=list(FEATURES)))
    assert not result.refined and result.decision is result.first
    assert set(np.flatnonzero(result.flagged)) == set(range(2000, 2000 + len(far)))


def test_two_separated_populations_take_over_from_the_tail_rule_only_when_bimodal() -> None:
    rng = np.random.default_rng(0)
    large = np.concatenate([rng.normal(0, 1, 700), rng.normal(5, 1, 300)])
    decision = threshold(large)
    assert decision.rule == "two populations"
    assert decision.flagged[700:].sum() >= 290 and decision.flagged[:700].sum() <= 10
    assert decision.contamination == pytest.approx(decision.flagged.mean())
    # a small far minority stays the tail rule's; a skewed or heavy-tailed bulk is one mode
    small = np.concatenate([rng.normal(0, 1, 2000), rng.normal(6, 0.5, 60)])
    assert threshold(small).rule == "tail mixture"
    for one_mode in (rng.gamma(2, 1, 3000), rng.lognormal(0, 0.6, 3000), rng.standard_t(3, 3000)):
        assert separation(one_mode)[0] < SEPARATED
        assert threshold(one_mode).rule == "tail mixture"


def test_a_declared_style_lets_the_larger_population_be_the_one_flagged() -> None:
    rng = np.random.default_rng(0)
    majority_out = np.concatenate([rng.normal(0, 1, 400), rng.normal(5, 1, 600)])
    assert threshold(majority_out).rule == "tail mixture"  # no minority: not two populations
    decision = threshold(majority_out, largest=0.9)
    assert decision.rule == "two populations"
    assert decision.flagged[400:].mean() > 0.97 and decision.flagged[:400].mean() < 0.03
    # through the verdict: a user who declares "drawing" gets the 60 % photographs flagged
    drawings = rng.normal(0, 1, (400, len(FEATURES)))
    photos = rng.normal(0, 1, (600, len(FEATURES))) + 3
    features = pd.DataFrame(np.vstack([drawings, photos]), columns=list(FEATURES))
    flagged = style_verdict(features, "drawing").flagged
    assert flagged[400:].mean() > 0.97 and flagged[:400].mean() < 0.03


def test_the_style_decides_which_tail_is_out_of_domain() -> None:
    """A drawing set's odd items are its photographic tail, a photo set's its drawn tail: the
    same features give opposite flags when the style is given, and `auto` reads the style
    from the reference medians."""
    rng = np.random.default_rng(0)
    bulk = rng.normal(0, 0.1, (400, len(FEATURES)))
    rows = np.vstack([bulk, bulk[:20] + 2.0, bulk[:20] - 2.0])  # 20 photographic, 20 drawn
    features = pd.DataFrame(rows, columns=list(FEATURES))
    photographic, drawn = np.arange(400, 420), np.arange(420, 440)
    as_drawings = style_verdict(features, "drawing")
    assert set(np.flatnonzero(as_drawings.decision.flagged)) == set(photographic)
    as_photos = style_verdict(features, "photo")
    assert set(np.flatnonzero(as_photos.decision.flagged)) == set(drawn)
    for style, medians in REFERENCE_MEDIANS.items():
        assert style_verdict(features + pd.Series(medians), "auto").style == style


def test_copies_of_one_picture_share_its_style() -> None:
    groups = pd.Series([1, 1, None, 2, 2, 3], dtype="Int64", index=[10, 11, 12, 13, 14, 15])
    probability = np.array([0.9, 0.1, 0.8, 0.9, 0.95, 0.7])
    shared = shared_by_copies(probability, groups)
    # a drawing's noisy copy takes its original's style; a photograph's copies stay flagged
    assert shared.tolist() == [0.1, 0.1, 0.8, 0.9, 0.9, 0.7]


def test_the_evidence_tag_names_the_family_most_unusual_for_the_dataset() -> None:
    """A family with a wide z spread (as the learned noise has) must not win every tag: an
    item in the top 1 % for colour but only mid-high on the wide family is tagged colour."""
    rng = np.random.default_rng(0)
    evidence = pd.DataFrame({"colour": rng.normal(0, 1, 500), "learned": rng.normal(0, 8, 500)})
    evidence.loc[0] = [evidence["colour"].max() + 1, 6.0]  # top colour, learned ~77th pct
    evidence.loc[1] = [0.0, evidence["learned"].max() + 1]  # top learned
    tags = strongest_evidence(evidence)
    assert tags[0] == "colour" and tags[1] == "learned"
    assert evidence.idxmax(axis=1)[0] == "learned"  # what the raw z maximum said
    assert 0.3 < (tags == "colour").mean() < 0.7  # neither family wins by its scale


def test_clean_drops_sure_flags_and_sends_borderline_ones_to_review() -> None:
    frame = pd.DataFrame(
        {
            "path": ["a.png", "b.png", "c.png"],
            "label": ["x", "x", "x"],
            "status": ["ok", "ok", "ok"],
            "is_out_of_domain_issue": [True, True, False],
            "out_of_domain_borderline": [False, True, False],
        }
    )
    decided = decide(frame, CleanPolicy(), None)
    assert decided["reason"].tolist() == ["out_of_domain", "out_of_domain:review", "kept"]
    assert decided["keep"].tolist() == [False, False, True]


def test_dominant_style_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="dominant_style"):
        build_config(AuditConfig, {"dominant_style": "painting"})


def test_a_borderline_image_under_the_threshold_is_tagged_near_threshold_not_nan() -> None:
    from winnow.audit.checks.out_of_domain import _evidence_tag

    assert _evidence_tag("colour") == "colour"
    for missing in (np.nan, None, ""):
        assert _evidence_tag(missing) == "near threshold"


def test_the_report_names_the_discriminants_largest_weights_each_way() -> None:
    from winnow.audit.checks.out_of_domain import _weights_text

    weights = {"palette_spread_native": 2.19, "colour_entropy_native": -1.35, "texture_half": 0.4}
    text = _weights_text(weights, "photo", shown=1)
    assert text == (
        "Weighed most towards photos: palette_spread_native (+2.2). "
        "Weighed most against: colour_entropy_native (-1.4). "
        "(A weight is what a statistic adds given the others.)"
    )
    assert _weights_text({}, "photo") == ""


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_pooling_is_the_rounded_block_mean(factor) -> None:
    # what reshaping into blocks and numpy's float32 mean over them give, bit for bit
    pixels = np.random.default_rng(5).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    n, h, w, c = pixels.shape
    blocks = pixels.reshape(n, h // factor, factor, w // factor, factor, c)
    expected = np.rint(blocks.mean(axis=(2, 4), dtype=np.float32)).astype(np.uint8)
    pooled = _pool(pixels, factor)
    assert pooled.dtype == np.uint8 and np.array_equal(pooled, expected)
