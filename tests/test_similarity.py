"""Pixel verification of near-duplicate pairs (winnow.audit.neardup.similarity) on generated
pictures.

Each case is a copy a crawl really produces, or a look-alike that is a different picture,
checked against the thresholds the audit uses by default.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

import winnow.audit.neardup.resample as matrices
from factory import brightened, card, spirograph
from winnow.audit.neardup.alignment import Pictures, align, verification_view
from winnow.audit.neardup.descriptors import Projection, _unit, descriptors, moment_descriptor
from winnow.audit.neardup.resample import image_region
from winnow.audit.neardup.same_size import same_size_change
from winnow.audit.neardup.search import NearDuplicateSettings
from winnow.audit.neardup.similarity import (
    FULL_SIDE,
    VERIFY_SIDE,
    PairSimilarity,
    _changed_area,
    pair_similarity,
)
from winnow.audit.neardup.verify import passes, verification_side, verification_tests
from winnow.data.config import ScanConfig
from winnow.data.decode import DRAFT_SIDE, decode_file, draft_reduces

DEFAULTS = NearDuplicateSettings()


def flag() -> Image.Image:
    """Pure, saturated colours with sharp edges: what clipped brightness shifts hurt most
    (pure green brightened by 30 clips red and blue, so R−G and B−G both move by 30)."""
    image = Image.new("RGB", (240, 160), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 99, 69), fill=(255, 0, 0))
    draw.rectangle((100, 0, 239, 69), fill=(0, 255, 0))
    draw.rectangle((0, 70, 139, 159), fill=(0, 255, 0))
    draw.rectangle((140, 70, 239, 159), fill=(0, 0, 255))
    draw.ellipse((80, 40, 160, 120), fill=(255, 255, 255), outline=(0, 0, 0), width=4)
    draw.line((20, 20, 70, 140), fill=(0, 0, 0), width=5)
    return image


def crawled_copy(image: Image.Image, scale: float, crop: float, quality: int) -> Image.Image:
    """Cropped by `crop` of each side, resized by `scale`, saved as JPEG."""
    w, h = image.size
    box = (round(w * crop), round(h * crop), round(w * (1 - crop)), round(h * (1 - crop)))
    small = image.crop(box).resize((round(w * scale), round(h * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def view(image: Image.Image) -> np.ndarray:
    """The picture as the cache holds it (fitted inside 128 px), in verification form."""
    fitted = image.copy()
    fitted.thumbnail((128, 128), Image.LANCZOS)
    return verification_view(np.asarray(fitted))[None]


def similarity(a: Image.Image, b: Image.Image):
    result = pair_similarity(view(a), view(b))
    return {name: float(value[0]) for name, value in result._asdict().items()}


def verified(alike: dict) -> bool:
    return (
        alike["correlation"] >= DEFAULTS.min_correlation
        and alike["detail"] >= DEFAULTS.min_detail
        and alike["chroma"] <= DEFAULTS.max_chroma_distance
        and alike["greyed"] <= DEFAULTS.max_greyed_area
        and alike["changed"] <= DEFAULTS.max_changed_area
    )


@pytest.mark.parametrize("shift", [30, -30])
def test_a_brightness_shifted_copy_of_a_saturated_picture_is_verified(shift) -> None:
    """Clipping turns red 220,0,0 brightened by 30 into 250,30,30: the plain R−G/B−G
    difference moves by up to 60, more than the chroma limit; the hue does not move."""
    copy = crawled_copy(brightened(flag(), shift), scale=0.6, crop=0.03, quality=70)
    assert verified(similarity(flag(), copy))


def test_an_edge_a_pixel_off_is_not_a_change_but_a_mark_is() -> None:
    """After alignment a copy resized to half size can sit a fraction of a pixel off, which
    moves every sharp edge by up to one pixel: that is not a change. A mark covering 0.9 %
    of the picture is one."""
    source = np.full((1, 64, 64), 230.0)
    source[:, :, 20:] = 20.0  # a sharp dark/light edge down the picture
    shifted = np.full((1, 64, 64), 230.0)
    shifted[:, :, 21:] = 20.0  # the same edge, one pixel to the right
    marked = source.copy()
    marked[:, 5:11, 5:11] = 20.0

    def changed(a: np.ndarray, b: np.ndarray) -> float:
        centre = a.mean(), b.mean()
        return float(_changed_area(a - centre[0], b - centre[1])[0])

    assert changed(source, shifted) == 0.0
    assert changed(source, marked) > DEFAULTS.max_changed_area


def test_a_recoloured_variant_is_not_a_copy() -> None:
    """The same shapes with the red band made green: a different picture (icon themes)."""
    variant = flag()
    ImageDraw.Draw(variant).rectangle((0, 0, 239, 49), fill=(0, 170, 40))
    alike = similarity(flag(), variant)
    assert alike["chroma"] > DEFAULTS.max_chroma_distance, alike
    assert not verified(alike)


def led(fill: tuple[int, int, int]) -> Image.Image:
    """A triangular LED icon: a coloured (or grey) body with a dark rim on white."""
    image = Image.new("RGB", (120, 110), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.polygon([(60, 5), (115, 105), (5, 105)], fill=(40, 40, 40))
    draw.polygon([(60, 22), (100, 97), (20, 97)], fill=fill)
    draw.ellipse((45, 60, 75, 90), fill=tuple(min(255, c + 60) for c in fill))
    return image


def test_a_grey_and_a_colour_version_are_different_pictures() -> None:
    """A grey LED and an orange one share every edge, and a grey pixel has no hue for the
    colour distance to compare: the mid-grey pixels that are coloured in the other picture
    tell them apart. A brightness shift keeps grey grey, and brightening a pale colour into
    white (clipping) is still a copy."""
    grey, orange = led((128, 128, 128)), led((160, 125, 100))  # a muted orange
    alike = similarity(grey, orange)
    assert alike["chroma"] <= DEFAULTS.max_chroma_distance  # the hue distance lets it pass
    assert alike["greyed"] > DEFAULTS.max_greyed_area, alike
    assert not verified(alike)
    assert verified(similarity(grey, brightened(grey, 30)))
    assert verified(similarity(orange, brightened(orange, -30)))
    pale = led((255, 250, 228))  # cream: +30 clips it to pure white
    assert np.asarray(brightened(pale, 30))[60, 60].tolist() == [255, 255, 255]
    assert verified(similarity(pale, brightened(pale, 30)))


def test_a_desaturated_variant_is_not_a_copy() -> None:
    grey = ImageEnhance.Color(flag()).enhance(0.0)
    assert not verified(similarity(flag(), grey))


def test_a_thin_frame_added_is_a_different_picture() -> None:
    """Playing cards of two decks differ by a thin frame around the same face."""
    card = Image.new("RGB", (150, 210), (250, 250, 235))
    draw = ImageDraw.Draw(card)
    draw.text((10, 8), "7", fill=(0, 0, 0))
    for x, y in [(50, 50), (100, 50), (75, 90), (50, 130), (100, 130), (75, 170)]:
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=(0, 0, 0))
    framed = card.copy()
    ImageDraw.Draw(framed).rounded_rectangle((30, 30, 120, 185), 12, outline=(70, 30, 140), width=3)
    alike = similarity(card, framed)
    assert alike["correlation"] > DEFAULTS.min_correlation  # alike at a glance …
    assert alike["changed"] > DEFAULTS.max_changed_area, alike  # … but not the same picture
    assert not verified(alike)
    # while a copy of the framed card still is one
    assert verified(similarity(framed, crawled_copy(framed, scale=0.7, crop=0.02, quality=75)))


@pytest.mark.parametrize("points, step", [(72, 29), (90, 37), (85, 24), (97, 34)])
def test_a_copy_stands_out_from_its_sources_sibling_at_the_series_side(points, step) -> None:
    """Inside a series the pair to report is the one that stands out, and at the cache's
    full resolution (FULL_SIDE) a copy's source stands out from its sibling one point
    apart by more than at the verification side, and by more than the series margin."""
    source, sibling = spirograph(points, step), spirograph(points - 1, step)
    copy = view(crawled_copy(source, scale=0.6, crop=0.02, quality=70))

    def margin(side: int) -> float:
        mine = pair_similarity(copy, view(source), side=side)
        other = pair_similarity(copy, view(sibling), side=side)
        rank = [float(r.detail[0] - r.difference[0] / 100) for r in (mine, other)]
        return rank[0] - rank[1]

    assert margin(FULL_SIDE) > max(margin(VERIFY_SIDE), DEFAULTS.series_margin)


def test_the_detail_descriptor_finds_a_copys_source_among_its_siblings() -> None:
    """Candidates come from nearest neighbours: in a series of look-alike stars, a crawled
    copy's nearest neighbour under the detail descriptor (projected on the series' own
    principal components) is its source. The whole moment-normalised view at 32 px, the
    descriptor before, puts siblings first for most of these copies."""
    series = [(points, points * tenths // 10) for points in range(60, 100, 3) for tenths in (3, 4)]
    pictures = [spirograph(points, step) for points, step in series]
    chosen = list(range(0, len(series), 5))
    copies = [crawled_copy(pictures[i], scale=0.6, crop=0.02, quality=70) for i in chosen]

    def fitted(image: Image.Image) -> np.ndarray:
        image = image.copy()
        image.thumbnail((128, 128), Image.LANCZOS)
        return np.asarray(image)

    _, raw = descriptors([fitted(p) for p in pictures])
    _, raw_copies = descriptors([fitted(c) for c in copies])
    projection = Projection.fit(raw)
    base, queries = projection.apply(raw), projection.apply(raw_copies)
    whole = _unit(np.stack([moment_descriptor(fitted(p)) for p in pictures]))
    whole_copies = _unit(np.stack([moment_descriptor(fitted(c)) for c in copies]))

    def rank(base: np.ndarray, query: np.ndarray, source: int) -> int:
        similarity = base @ query
        return int((similarity > similarity[source]).sum())

    assert [rank(base, q, i) for q, i in zip(queries, chosen, strict=True)] == [0] * len(chosen)
    before = [rank(whole, q, i) for q, i in zip(whole_copies, chosen, strict=True)]
    assert sum(r > 0 for r in before) >= len(chosen) // 2


def test_the_projection_keeps_flat_pictures_apart_and_is_reproducible() -> None:
    """Projected descriptors are unit vectors; flat pictures (no detail) get the extra
    coordinate only, so they match each other and nothing else. A set with no detail at
    all still projects (every picture flat), to two numbers a picture, not 4,097."""
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 20, (300, 4096)).astype(np.float32)
    raw[:5] = 0.0  # five blank pictures
    projection = Projection.fit(raw)
    vectors = projection.apply(raw)
    assert vectors.shape[1] == projection.components.shape[0] + 1
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[:5, -1], 1.0) and np.allclose(vectors[5:, -1], 0.0)
    assert np.abs(vectors[:5] @ vectors[5:].T).max() < 1e-6
    assert np.array_equal(Projection.fit(raw).apply(raw), vectors)  # seeded
    blank = Projection.fit(np.zeros((10, 4096), np.float32))
    assert blank.apply(np.zeros((3, 4096), np.float32)).shape == (3, 2)


def test_flat_pictures_of_different_grey_levels_are_not_the_same_picture() -> None:
    """A white page and a black square are both flat: correlations cannot tell them apart,
    their grey level can. Two white pages, one a few levels off, are the same."""
    white, black = Image.new("RGB", (90, 90), "white"), Image.new("RGB", (90, 90), "black")
    off_white = Image.new("RGB", (90, 90), (244, 244, 244))
    assert not verified(similarity(white, black))
    assert verified(similarity(white, off_white))
    assert similarity(white, black)["difference"] > 200


def test_no_pairs_give_empty_results() -> None:
    """A batch in which no candidate was confirmed is compared again at FULL_SIDE: empty."""
    empty = np.zeros((0, 128, 128, 3), np.float32)
    for side in (VERIFY_SIDE, FULL_SIDE):
        result = pair_similarity(empty, empty, side=side)
        assert all(len(values) == 0 for values in result)


def test_light_corner_ornaments_show_at_full_resolution() -> None:
    """Two decks of cards: the same face, one with thin light-brown corner ornaments. At the
    verification side they blur away; at the cache's full resolution they are a change,
    while a half-size JPEG copy of the ornamented card is still none."""

    def ornate_card(ornaments: bool) -> Image.Image:
        image = Image.new("RGB", (150, 210), (250, 250, 235))
        draw = ImageDraw.Draw(image)
        for x, y in [(50, 50), (100, 50), (75, 90), (50, 130), (100, 130), (75, 170)]:
            draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=(0, 0, 0))
        if ornaments:
            for x, y, dx, dy in [(20, 25, 1, 1), (130, 185, -1, -1), (130, 25, -1, 1)]:
                draw.line((x, y, x, y + dy * 35), (170, 120, 80), 2)
                draw.line((x, y, x + dx * 30, y), (170, 120, 80), 2)
        return image

    plain, ornate = view(ornate_card(False)), view(ornate_card(True))
    assert pair_similarity(plain, ornate).changed[0] <= DEFAULTS.max_changed_area
    copy = view(crawled_copy(ornate_card(True), scale=0.55, crop=0.02, quality=70))
    for colour in (True, False):  # verification compares luminance alone at this side
        full = functools.partial(pair_similarity, side=FULL_SIDE, colour=colour)
        assert full(plain, ornate).changed[0] > DEFAULTS.max_changed_area_full
        assert full(ornate, copy).changed[0] <= DEFAULTS.max_changed_area_full


def test_pictures_prepared_once_give_the_numbers_of_one_view_per_pair() -> None:
    """Verification stores each picture once and prepares it once for all its pairs
    (`Pictures`); the numbers are bit for bit those of one view per pair, at both sides and
    at every resolution level."""
    pictures = [
        flag(),
        card("spade"),
        spirograph(72, 29),
        spirograph(90, 37),
        crawled_copy(flag(), scale=0.5, crop=0.03, quality=80),
        crawled_copy(card("spade"), scale=0.3, crop=0.0, quality=90),
    ]
    views = np.concatenate([view(picture) for picture in pictures])
    pairs = np.array([[0, 4], [0, 1], [1, 5], [2, 3], [3, 2], [0, 0], [5, 4], [2, 4]])
    resolution = np.array([120, 31, 48, 200, 200, 64, 20, 90])
    shared = Pictures.of(views)
    for side, levels in ((VERIFY_SIDE, resolution), (FULL_SIDE, None)):
        once = pair_similarity(
            shared.take(pairs[:, 0]), shared.take(pairs[:, 1]), side, resolution=levels
        )
        per_pair = pair_similarity(views[pairs[:, 0]], views[pairs[:, 1]], side, levels)
        for name, a, b in zip(PairSimilarity._fields, once, per_pair, strict=True):
            assert np.array_equal(a, b), name


def test_the_colour_measures_add_to_the_grey_ones_without_changing_them() -> None:
    """Without `colour` (the full side) only the grey levels are warped: correlation,
    detail, changed area and difference are exactly those of the colour comparison, and
    the colour measures are left undefined."""
    copy = view(crawled_copy(flag(), scale=0.6, crop=0.02, quality=75))
    first = np.concatenate([view(flag()), view(card("spade")), view(flag())])
    second = np.concatenate([copy, view(card("club")), view(spirograph(72, 29))])
    for side in (VERIFY_SIDE, FULL_SIDE):
        colour = pair_similarity(first, second, side)
        grey = pair_similarity(first, second, side, colour=False)
        for name in ("correlation", "detail", "changed", "difference"):
            assert np.array_equal(getattr(grey, name), getattr(colour, name)), name
        assert np.isnan(grey.chroma).all() and np.isnan(grey.greyed).all()
        assert not np.isnan(colour.chroma).any() and not np.isnan(colour.greyed).any()


def test_colour_is_measured_only_where_the_grey_levels_pass_with_the_same_verdicts() -> None:
    """Verification warps colour only for the pairs whose grey levels pass
    (`verification_side`): its verdicts are those of measuring everything, a recoloured copy
    still fails (its grey levels are the original's: colour is what fails it), and pairs of
    different pictures get no colour measures at all."""
    recoloured = flag()
    pixels = np.asarray(recoloured).copy()
    pixels[..., [0, 1]] = pixels[..., [1, 0]]  # red and green swapped: same grey levels
    pictures = [
        flag(),
        crawled_copy(flag(), scale=0.5, crop=0.03, quality=80),
        card("spade"),
        crawled_copy(card("spade"), scale=0.3, crop=0.0, quality=90),
        card("club"),
        spirograph(72, 29),
        spirograph(90, 37),
        Image.fromarray(pixels),
    ]
    shared = Pictures.of(np.concatenate([view(picture) for picture in pictures]))
    pairs = np.array([(i, j) for i in range(len(pictures)) for j in range(len(pictures)) if i < j])
    first, second = shared.take(pairs[:, 0]), shared.take(pairs[:, 1])
    resolution = np.full(len(pairs), 128)
    everything = pair_similarity(first, second, resolution=resolution)
    verified_pairs = passes(verification_tests(everything, DEFAULTS))
    gated = verification_side(first, second, resolution, DEFAULTS)
    assert np.array_equal(passes(verification_tests(gated, DEFAULTS)), verified_pairs)
    assert {(0, 1), (2, 3)} <= {tuple(pair) for pair in pairs[verified_pairs]}
    at = {tuple(pair): k for k, pair in enumerate(pairs)}
    assert not verified_pairs[at[0, 7]]  # fails on colour alone
    assert gated.chroma[at[0, 7]] > DEFAULTS.max_chroma_distance
    coloured = ~np.isnan(gated.chroma)
    assert not coloured[at[0, 2]] and not coloured[at[1, 4]]  # a flag is no playing card
    assert coloured.sum() < len(pairs) / 2
    same = coloured  # where both measured colour, the numbers agree
    for name in PairSimilarity._fields:
        if name != "changed":
            assert np.array_equal(getattr(gated, name)[same], getattr(everything, name)[same])


def test_one_alignment_serves_every_side() -> None:
    """The crop fitted once (`align`) gives the numbers of fitting it again for each
    comparison, at both sides."""
    copy = view(crawled_copy(card("spade"), scale=0.5, crop=0.04, quality=85))
    first = Pictures.of(np.concatenate([view(card("spade")), view(flag())]))
    second = Pictures.of(np.concatenate([copy, view(flag())[:, ::-1]]))
    fits = align(first, second)
    assert fits.forward_rows.shape == (2,) and fits.take(np.array([1])).forward_cols.shape == (1,)
    for side in (VERIFY_SIDE, FULL_SIDE):
        again = pair_similarity(first, second, side)
        once = pair_similarity(first, second, side, alignment=fits)
        for name, a, b in zip(PairSimilarity._fields, again, once, strict=True):
            assert np.array_equal(a, b, equal_nan=True), name


def test_a_copy_upscaled_into_the_cache_is_compared_at_its_own_resolution() -> None:
    """A 64-px icon with fine hatching and its copy resized to 31 px: the cache upscaled the
    copy, so its hatching is a blur. Compared at the copy's own resolution the two agree on
    all the detail they share; pictures at least as large as the side are unaffected."""
    icon = Image.new("RGB", (64, 64), (255, 255, 255))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((6, 10, 58, 56), 6, fill=(40, 90, 200), outline=(0, 0, 0), width=1)
    for y in range(13, 54, 3):
        draw.line((9, y, 55, y), fill=(120, 160, 240), width=1)
    draw.ellipse((18, 20, 46, 48), fill=(230, 230, 240), outline=(0, 0, 0), width=1)
    copy = icon.crop((1, 1, 63, 63)).resize((31, 31), Image.LANCZOS)
    plain = pair_similarity(view(icon), view(copy))
    matched = pair_similarity(view(icon), view(copy), resolution=np.array([31]))
    assert matched.detail[0] > max(plain.detail[0] + 0.03, 0.98)
    large = pair_similarity(view(flag()), view(flag()), resolution=np.array([VERIFY_SIDE]))
    same = pair_similarity(view(flag()), view(flag()))
    assert all(np.array_equal(x, y) for x, y in zip(large, same, strict=True))


def cache_view(image: Image.Image, tmp_path, name: str, **save: object) -> np.ndarray:
    """`image` saved as `name` and decoded as `winnow scan` decodes it: its cache view."""
    path = tmp_path / name
    image.save(path, **save)
    decoded = decode_file(str(path), ScanConfig())
    return image_region(decoded.pixels, decoded.width, decoded.height)


@pytest.mark.parametrize(
    "first, second", [((72, 29), (71, 29)), ((43, 11), (59, 15)), ((80, 11), (85, 11))]
)
def test_same_size_siblings_differ_where_the_aligned_comparison_forgives(
    first, second, tmp_path
) -> None:
    """Two spirograph stars of one size pass every aligned test (they must forgive the
    pixel a resize moves an edge by), but compared pixel for pixel their hairlines differ."""
    a, b = spirograph(*first), spirograph(*second)
    assert verified(similarity(a, b))  # what the aligned comparison alone would report
    change = same_size_change(cache_view(a, tmp_path, "a.png"), cache_view(b, tmp_path, "b.png"))
    assert change > 5 * DEFAULTS.max_same_size_change


def _enhanced(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.12)


@pytest.mark.parametrize(
    "variant, name, save",
    [
        (lambda im: brightened(im, 30), "up.png", {}),
        (lambda im: brightened(im, -30), "down.png", {}),
        (_enhanced, "times.png", {}),  # a gain, clipping light pixels at white
        (lambda im: im.quantize(64), "palette.png", {}),
        (lambda im: im, "q60.jpg", {"quality": 60}),
        (lambda im: im, "q90.jpg", {"quality": 90}),
    ],
)
@pytest.mark.parametrize("drawing", ["flag", "star", "card"])
def test_same_size_copies_are_unchanged(drawing, variant, name, save, tmp_path) -> None:
    """Copies a crawl makes without resizing (a brightness shift, a palette, a JPEG
    re-save) keep their ink: within the default limit, with the pixel of slack a JPEG
    gets for its ringing."""
    image = {"flag": flag, "star": lambda: spirograph(72, 29), "card": card}[drawing]()
    copy = variant(image)
    original = cache_view(image, tmp_path, "original.png")
    copied = cache_view(copy, tmp_path, name, **save)
    reach = 1 if name.endswith(".jpg") else 0
    assert same_size_change(original, copied, reach) <= DEFAULTS.max_same_size_change


def test_a_changed_suit_is_a_different_picture_pixel_for_pixel(tmp_path) -> None:
    """A card whose pips change from one suit shape to another (a club and a spade) is
    not a copy, even when the change is small next to the card."""
    club, spade = card(), card(pip="spade")
    assert verified(similarity(club, spade))  # aligned, the pips' shapes blur alike
    change = same_size_change(
        cache_view(club, tmp_path, "club.png"), cache_view(spade, tmp_path, "spade.png")
    )
    assert change > DEFAULTS.max_same_size_change
    # while blank pictures have no ink to differ
    white = np.full((40, 40, 3), 255, np.uint8)
    assert same_size_change(white, white.copy()) == 0.0


def test_draft_reduces_exactly_the_jpegs_pillow_decodes_at_a_reduced_scale(tmp_path) -> None:
    """The near-duplicate check compares same-size pictures pixel for pixel only when both
    were decoded from their full size; `draft_reduces` must agree with Pillow's draft."""
    size = ScanConfig().image_size
    cases = [(1100, 700, "JPEG"), (511, 900, "JPEG"), (512, 512, "JPEG"), (1100, 700, "PNG")]
    expected = []
    for width, height, kind in cases:
        path = tmp_path / f"{width}x{height}.{kind.lower()}"
        Image.new("RGB", (width, height), (90, 120, 200)).save(path, kind)
        with Image.open(path) as opened:
            if kind == "JPEG":
                opened.draft("RGB", (size * DRAFT_SIDE, size * DRAFT_SIDE))
            expected.append(opened.size != (width, height))
    widths, heights, formats = zip(*cases, strict=True)
    assert draft_reduces(np.array(formats), np.array(widths), np.array(heights), size).tolist() == (
        expected
    )
    assert expected == [True, False, True, False]


def _subnormal(values: np.ndarray) -> int:
    values = np.abs(np.asarray(values, np.float32))
    return int(((values > 0) & (values < np.finfo(np.float32).tiny)).sum())


@pytest.mark.parametrize("side", [32, 64, 128])
@pytest.mark.parametrize("sigma", [0.5, 0.7, 1.0, 2.0, 4.0])
def test_warp_and_blur_matrices_hold_no_subnormal_numbers(side, sigma) -> None:
    # a Gaussian's far tail is subnormal in float32, and every product that touches one
    # takes a slow path on many x86 CPUs (verification ran at a third of its speed)
    smooth = matrices.blur_matrix(side, sigma)
    assert _subnormal(smooth) == 0
    starts, stops = np.array([0.0, 3.3, -2.1]), np.array([side, side - 1.7, side * 1.1])
    warps = matrices.flushed(smooth @ matrices.sample_matrices(starts, stops, side, side))
    assert _subnormal(warps) == 0
    # the tail it drops changes nothing float32 can tell apart
    x = np.arange(side)
    exact = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    exact /= exact.sum(axis=1, keepdims=True)
    assert np.abs(smooth - exact).max() < 1e-7  # float32 rounding, nothing more


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_channel_reductions_are_numpys_bit_for_bit(dtype) -> None:
    # the plane-by-plane rewrites of mean, sum and max over the colour channels
    rng = np.random.default_rng(3)
    values = rng.normal(0, 300, (5, 37, 41, 3))
    if dtype == np.uint8:
        values = np.abs(values) % 256
    pixels = values.astype(dtype)
    assert np.array_equal(matrices.channel_max(pixels), pixels.max(axis=-1))
    mean = matrices.channel_mean(pixels)
    assert mean.dtype == pixels.mean(axis=-1).dtype
    assert np.array_equal(mean, pixels.mean(axis=-1))
    if dtype != np.uint8:  # numpy sums uint8 in a wider type; the audit sums floats only
        assert np.array_equal(matrices.channel_sum(pixels), pixels.sum(axis=-1))
