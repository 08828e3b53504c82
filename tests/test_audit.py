"""Audit checks: the check contract, duplicates, conflicts, leaks, the report."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from factory import brightened, card, spirograph
from winnow.audit.checks import available_checks, get_checks
from winnow.audit.checks.base import AuditContext, Check, CheckResult
from winnow.audit.checks.leak import COLUMNS as LEAK_COLUMNS
from winnow.audit.checks.leak import one_row_per_pair
from winnow.audit.config import AuditConfig
from winnow.audit.neardup.candidates import candidate_pairs
from winnow.audit.neardup.explain import CompareError, compare_pair
from winnow.audit.neardup.search import Items, NearDuplicateSettings, describe
from winnow.audit.neardup.verify import aspect_compatible, standing_out, verify_pairs
from winnow.audit.planning import order_checks, plan_checks
from winnow.audit.runner import run_audit, validate_result
from winnow.data.cache import PixelCache
from winnow.data.config import ScanConfig
from winnow.data.manifest import SCAN_SCHEMA, read_manifest
from winnow.data.scan import scan
from winnow.workflows.demo import illustration

FAST = ScanConfig(image_size=64, workers=1)


def near_copy(image: Image.Image, quality: int = 70) -> bytes:
    """Cropped 3 % a side, resized to 60 %, brightened by 20, saved as JPEG."""
    rgb = Image.new("RGB", image.size, "white")
    rgb.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
    w, h = rgb.size
    copy = rgb.crop((int(w * 0.03), int(h * 0.03), w - int(w * 0.03), h - int(h * 0.03)))
    copy = copy.resize((int(copy.width * 0.6), int(copy.height * 0.6)), Image.Resampling.LANCZOS)
    array = np.clip(np.asarray(copy, dtype=np.int16) + 20, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_dataset(root: Path) -> dict[str, str]:
    """Distinct drawings in three classes, plus planted copies; returns planted paths."""
    rng = np.random.default_rng(3)
    for label in ("house", "star", "tree"):
        for i in range(8):
            path = root / "train" / label / f"{label}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            illustration(label, rng, side=160).save(path)
        for i in range(3):
            path = root / "test" / label / f"{label}_t{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            illustration(label, rng, side=160).save(path)
    train = root / "train"
    shutil.copyfile(train / "house/house_0.png", train / "house/house_0 copy.png")
    with Image.open(train / "star/star_1.png") as image:
        image.convert("RGBA").save(train / "star/star_1_resaved.png", compress_level=0)
        (train / "star/star_2_near.jpg").write_bytes(
            near_copy(Image.open(train / "star/star_2.png"))
        )
        (root / "test/tree/leaked.jpg").write_bytes(
            near_copy(Image.open(train / "tree/tree_3.png"))
        )
    shutil.copyfile(train / "tree/tree_5.png", train / "house/tree_5.png")
    shutil.copyfile(train / "house/house_2.png", root / "test/house/house_2 again.png")
    return {
        "byte_copy": "house/house_0 copy.png",
        "pixel_copy": "star/star_1_resaved.png",
        "near": "star/star_2_near.jpg",
        "conflict": "house/tree_5.png",
    }


def write_series_cases(root: Path) -> None:
    """Cases for the series rule: a much-copied picture and blank pictures."""
    train = root / "train"
    # a much-copied picture: eight near copies of house_4 (crawls repeat popular images)
    with Image.open(train / "house/house_4.png") as image:
        settings = zip(np.linspace(0.5, 0.95, 8), range(60, 92, 4), strict=True)
        for i, (scale, quality) in enumerate(settings):
            small = image.resize((int(160 * scale), int(160 * scale)), Image.Resampling.LANCZOS)
            (train / f"house/house_4_copy{i}.jpg").write_bytes(near_copy(small, quality))
    # blank pictures (an empty render, a white JPEG of another size) and a flat red one
    Image.new("RGBA", (200, 200), (0, 0, 0, 0)).save(train / "star/blank.png")
    Image.new("RGB", (120, 118), "white").save(train / "star/blank_white.jpg", quality=80)
    for i, side in enumerate((40, 50, 60, 70, 90, 110)):
        Image.new("RGB", (side, side + i), "white").save(train / f"star/blank_{i}.jpg")
    Image.new("RGB", (150, 150), (200, 30, 30)).save(train / "tree/red.png")


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("audit")
    planted = write_dataset(root)
    write_series_cases(root)
    run = root / "run"
    scan(root / "train", run, FAST)
    summary = run_audit(run, AuditConfig(), against=root / "test")
    return root, run, {"planted": planted, "summary": summary}


def _row(frame: pd.DataFrame, path: str) -> pd.Series:
    return frame[frame["path"] == path].iloc[0]


def test_every_check_honours_the_contract(audited) -> None:
    root, run, _ = audited
    frame = read_manifest(run)
    context = AuditContext(frame, PixelCache(run), run, AuditConfig())
    before = frame.copy()
    for check in available_checks().values():
        result = check.run(context)
        validate_result(check, frame, result)  # own columns only, aligned, scores in [0, 1]
        pd.testing.assert_frame_equal(frame, before)  # never mutates its input


def test_exact_duplicates_by_bytes_and_by_pixels(audited) -> None:
    _, run, info = audited
    frame = read_manifest(run)
    planted = info["planted"]
    original = _row(frame, "house/house_0.png")
    assert (
        original.is_exact_duplicate_issue
        and _row(frame, planted["byte_copy"]).is_exact_duplicate_issue
    )
    assert original.exact_duplicate_group == _row(frame, planted["byte_copy"]).exact_duplicate_group
    resaved, source = _row(frame, planted["pixel_copy"]), _row(frame, "star/star_1.png")
    assert resaved.sha256 != source.sha256  # different bytes …
    assert resaved.exact_duplicate_group == source.exact_duplicate_group  # … same pixels
    assert not _row(frame, "star/star_0.png").is_exact_duplicate_issue


def test_near_duplicate_is_grouped_with_its_source_and_the_lossless_copy_is_kept(audited) -> None:
    _, run, info = audited
    frame = read_manifest(run)
    near, source = _row(frame, info["planted"]["near"]), _row(frame, "star/star_2.png")
    assert near.is_near_duplicate_issue and source.is_near_duplicate_issue
    assert near.duplicate_group == source.duplicate_group
    assert source.duplicate_keep and not near.duplicate_keep
    assert near.near_duplicate_score < 0.1
    distinct = frame[frame["path"].str.match(r"^(star|tree)/(star|tree)_[0-9]\.png$")]
    distinct = distinct[
        ~distinct["path"].isin(["star/star_1.png", "star/star_2.png", "tree/tree_5.png"])
    ]
    assert distinct["duplicate_group"].isna().all(), distinct[
        distinct["duplicate_group"].notna()
    ].path


def test_blank_pictures_are_near_duplicates_of_each_other_and_of_nothing_else(audited) -> None:
    _, run, _ = audited
    frame = read_manifest(run)
    blank, white = _row(frame, "star/blank.png"), _row(frame, "star/blank_white.jpg")
    assert pd.notna(blank.duplicate_group) and blank.duplicate_group == white.duplicate_group
    assert blank.duplicate_keep and not white.duplicate_keep  # lossless, more pixels
    members = frame[frame["duplicate_group"] == blank.duplicate_group]["path"]
    blanks = {"star/blank.png", "star/blank_white.jpg"} | {f"star/blank_{i}.jpg" for i in range(6)}
    assert set(members) == blanks  # all of them (no series to doubt), and not the red one


def test_a_much_copied_picture_is_one_group(audited) -> None:
    """Eight near copies of one drawing are look-alikes of each other too (a 'series' of
    nine by count): they must still form one group, kept as the lossless original."""
    _, run, _ = audited
    frame = read_manifest(run)
    source = _row(frame, "house/house_4.png")
    members = frame[frame["duplicate_group"] == source.duplicate_group]["path"]
    assert set(members) == {"house/house_4.png"} | {f"house/house_4_copy{i}.jpg" for i in range(8)}
    assert source.duplicate_keep


def test_label_conflict_flags_every_member(audited) -> None:
    _, run, info = audited
    frame = read_manifest(run)
    copy, source = _row(frame, info["planted"]["conflict"]), _row(frame, "tree/tree_5.png")
    assert copy.is_label_conflict_issue and source.is_label_conflict_issue
    assert not _row(frame, "house/house_0.png").is_label_conflict_issue


def test_leak_against_a_test_folder(audited) -> None:
    _, run, info = audited
    leaks = pd.read_csv(run / "audit" / "leaks.csv")
    assert list(leaks.columns) == ["test_path", "train_path", "kind", "similarity"]
    pairs = set(zip(leaks.test_path, leaks.train_path, strict=True))
    assert ("tree/leaked.jpg", "tree/tree_3.png") in pairs
    # a byte copy is also verified on pixels (identical once aligned): one row, exact
    again = leaks[leaks.test_path == "house/house_2 again.png"]
    assert list(again.train_path) == ["house/house_2.png"] and list(again.kind) == ["exact"]
    assert set(leaks[leaks.test_path == "tree/leaked.jpg"].kind) == {"near"}
    frame = read_manifest(run)
    assert _row(frame, "tree/tree_3.png").is_leak_issue
    assert frame["is_leak_issue"].sum() == len(set(leaks.train_path))
    assert info["summary"]["checks"]["leak"]["leaked_test_items"] == leaks.test_path.nunique()


def test_a_pair_found_by_its_bytes_stays_exact_however_many_ties() -> None:
    # every pair found both ways, verified on pixels at 1.0 or a float32 rounding above it
    # (correlations of identical pictures): "near" must not win by that rounding or a tie
    pairs = [(f"t{i}.png", f"r{i}.png") for i in range(60)]
    verified = [float(np.nextafter(np.float32(1), np.float32(2))), 1.0]
    rows = [(t, r, "exact", 1.0) for t, r in pairs]
    rows += [(t, r, "near", verified[i % 2]) for i, (t, r) in enumerate(pairs)]
    rows += [(t, "other.png", "near", 0.97) for t, _ in pairs]
    table = one_row_per_pair(pd.DataFrame(rows, columns=LEAK_COLUMNS))
    assert len(table) == 120
    assert set(table[table.train_path != "other.png"].kind) == {"exact"}
    assert set(table[table.train_path == "other.png"].kind) == {"near"}


def test_report_is_self_contained_and_shows_findings(audited) -> None:
    _, run, _ = audited
    page = (run / "audit" / "report.html").read_text()
    for section in (
        "Classes and sizes",
        "Duplicate groups",
        "Label conflicts",
        "leaked into training",
    ):
        assert section in page
    assert page.count("data:image/jpeg;base64,") >= 6 and "data:image/png;base64," in page
    # the eight blank pictures (one duplicate group) are shown once, as blank images
    assert "<h2>Blank images</h2>" in page and "9 images are one colour" in page
    assert "1 group of blank images (8 files) is shown under Blank images" in page
    assert "http://" not in page and "https://" not in page
    summary = json.loads((run / "audit" / "summary.json").read_text())
    assert summary["dataset"]["class_counts"]["house"] >= 8
    # every check with a count has its card, the out-of-domain one named by what it found
    domain = summary["checks"]["out_of_domain"]
    assert domain["status"] == "ok" and domain["out_of_domain_style"] == "photo"
    assert f"<b>{domain['issues']}</b>photographs (other style)</div>" in page
    # the unflagged images nearest the other style are shown too, most photo-like first
    frame = read_manifest(run)
    unflagged = frame[frame["photo_likeness"].notna() & ~frame["is_out_of_domain_issue"]]
    unflagged = unflagged[~unflagged["out_of_domain_cleared"].astype(bool)]
    nearest = unflagged.sort_values("photo_likeness", ascending=False)["path"].iloc[0]
    strip = page.split("<h3>Most photo-like, not flagged</h3>")[1]
    assert strip.index(f"title='{nearest}'") < strip.index("<figure", strip.index("<figure") + 1)


def test_a_failing_check_is_recorded_and_the_others_still_run(audited, monkeypatch) -> None:
    root, run, _ = audited

    def explode(context: AuditContext) -> CheckResult:
        raise RuntimeError("boom")

    broken = Check("odd_size", "broken on purpose", ("status",), explode)
    real = get_checks()
    monkeypatch.setattr(
        "winnow.audit.planning.get_checks",
        lambda names: [broken if c.name == "odd_size" else c for c in real],
    )
    # against the same test set, so the module's audited run keeps its leak table
    summary = run_audit(run, AuditConfig(), against=root / "test")
    assert summary["checks"]["odd_size"]["status"] == "failed"
    assert "boom" in summary["checks"]["odd_size"]["error"]
    assert summary["checks"]["near_duplicate"]["status"] == "ok"
    assert "is_near_duplicate_issue" in read_manifest(run)


def test_unknown_check_name_suggests_the_right_one() -> None:
    with pytest.raises(KeyError, match="near_duplicate"):
        get_checks(["near_duplicat"])


def test_hnsw_index_path_finds_the_same_near_duplicate(audited) -> None:
    _, run, info = audited
    frame = read_manifest(run)
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    items = describe(ok, PixelCache(run))
    settings = NearDuplicateSettings(exact_index_limit=5)  # force the sub-quadratic index
    pairs, _ = verify_pairs(items, items, candidate_pairs(items, None, settings), settings)
    paths = {tuple(sorted((ok.path[a], ok.path[b]))) for a, b in pairs}
    assert tuple(sorted((info["planted"]["near"], "star/star_2.png"))) in paths


def test_the_compressed_index_finds_planted_copies_among_many_descriptors() -> None:
    """Above compressed_index_limit the search uses IVF-PQ codes: on 6,000 random unit
    descriptors of the real sizes, half of them noisy copies of the other half, it still
    pairs nearly every copy with its original, and the exact search does no better."""
    from winnow.audit.neardup.search import Items

    rng = np.random.default_rng(0)

    def planted(n: int, d: int) -> np.ndarray:
        x = rng.normal(size=(n, d)).astype(np.float32)
        x[n // 2 :] = x[: n // 2] + 0.1 * rng.normal(size=(n // 2, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    n = 6_000
    items = Items(frame=pd.DataFrame(index=range(n)), cache=None, coarse=planted(n, 432),
                  detail=planted(n, 129))  # fmt: skip
    copies = {(i, i + n // 2) for i in range(n // 2)}
    found = {}
    for name, settings in (
        ("compressed", NearDuplicateSettings(exact_index_limit=100, compressed_index_limit=1_000)),
        ("exact", NearDuplicateSettings()),
    ):
        pairs = {tuple(p) for p in candidate_pairs(items, None, settings).tolist()}
        found[name] = len(pairs & copies) / len(copies)
    assert found["exact"] == 1.0
    assert found["compressed"] >= 0.98


def test_descriptors_are_in_row_order_whether_or_not_a_row_was_in_the_sample(
    audited, monkeypatch
) -> None:
    """describe() keeps the projection sample's descriptors instead of computing them twice:
    every row must still get its own, in order, as if each were described on its own."""
    import winnow.audit.neardup.search as duplicates
    from winnow.audit.neardup.descriptors import descriptors

    _, run, _ = audited
    frame = read_manifest(run)
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    monkeypatch.setattr(duplicates, "PROJECTION_SAMPLE", len(ok) // 3)  # a strict subset
    items = describe(ok, PixelCache(run), batch=7)
    coarse, raw = descriptors(items.regions(np.arange(len(ok))))
    np.testing.assert_allclose(items.coarse, coarse, atol=1e-6)
    np.testing.assert_allclose(items.detail, items.projection.apply(raw), atol=1e-5)
    again = describe(ok, PixelCache(run), projection=items.projection, batch=5)
    np.testing.assert_allclose(again.detail, items.detail, atol=1e-5)


def test_in_a_series_only_pairs_that_stand_out_are_kept() -> None:
    """A series of 12 look-alikes (every pair verified, scores 0.95 ± 0.001), a copy of
    member 0 (0.99 with it, 0.95 with six others) and a lone pair of copies elsewhere."""
    rng = np.random.default_rng(0)
    series = [(a, b) for a in range(12) for b in range(a + 1, 12)]
    pairs = series + [(0, 12)] + [(k, 12) for k in range(1, 7)] + [(13, 14)]
    score = np.r_[0.95 + rng.uniform(-0.001, 0.001, len(series)), 0.99, [0.95] * 6, 0.97]
    pairs = np.array(pairs)
    settings = NearDuplicateSettings(series_size=8)  # the 13 linked pictures are a series
    keep = standing_out(pairs, score, same_set=True, settings=settings)
    kept = {tuple(p) for p in pairs[keep].tolist()}
    assert (0, 12) in kept and (13, 14) in kept
    assert not any((k, 12) in kept for k in range(1, 7))
    assert sum(p in kept for p in series) == 0  # no member beats its runner-up by 0.002
    # a cluster no larger than series_size is copies of one picture: every pair stays
    assert standing_out(pairs, score, True, NearDuplicateSettings(series_size=13)).all()


def test_standing_out_keeps_the_two_sides_of_a_leak_search_apart() -> None:
    """Test item 0 and training item 0 are different pictures: a shared index must not merge
    them. Test 0 matches training 0..6 alike; test 1 matches training 3 clearly best."""
    pairs = np.array([(0, k) for k in range(7)] + [(1, 3), (1, 4)])
    score = np.array([0.95] * 7 + [0.99, 0.95])
    settings = NearDuplicateSettings(series_size=4)
    keep = standing_out(pairs, score, same_set=False, settings=settings)
    assert {tuple(p) for p in pairs[keep].tolist()} == {(1, 3)}


def test_pictures_no_crop_can_reshape_into_each_other_are_not_verified() -> None:
    """A tall LED and a square one share every edge once both are stretched square, but no
    crop of a few per cent turns a 1:2 picture into a 1:1 one: the pair is dropped before
    its pixels are compared. A copy cropped 5 % on one side is still verified."""

    def frame(sizes: list[tuple[int, int]]) -> pd.DataFrame:
        return pd.DataFrame({"width": [w for w, _ in sizes], "height": [h for _, h in sizes]})

    def led(width: int, height: int) -> np.ndarray:
        picture = np.full((height, width, 3), 255, np.uint8)
        picture[height // 8 : -height // 8, width // 8 : -width // 8] = (200, 30, 30)
        return picture

    pictures = [led(50, 100), led(50, 50), led(50, 100)[5:]]  # tall, square, a crop

    class Pictures(Items):  # no cache needed
        def regions(self, positions: np.ndarray) -> list[np.ndarray]:
            return [pictures[i] for i in positions]

        def portable(self) -> Items:
            return self

    items = Pictures(frame([p.shape[1::-1] for p in pictures]), None, np.zeros(0), np.zeros(0))
    assert aspect_compatible(items.frame.iloc[[0, 0]], items.frame.iloc[[1, 2]]).tolist() == [
        False,
        True,
    ]
    pairs, _ = verify_pairs(items, items, np.array([[0, 1], [0, 2]]), NearDuplicateSettings())
    assert pairs.tolist() == [[0, 2]]
    # unknown sizes do not decide
    unknown = frame([(50, 100)]).astype(float)
    unknown.loc[0, "width"] = np.nan
    assert aspect_compatible(unknown, frame([(50, 50)])).tolist() == [True]


def test_a_subset_of_checks_still_writes_the_report(audited, tmp_path) -> None:
    """`winnow audit RUN --checks exact_duplicate,near_duplicate`: the report's other
    sections say their check did not run instead of failing."""
    _, run, _ = audited
    subset = tmp_path / "run"
    shutil.copytree(run, subset)
    shutil.rmtree(subset / "audit")  # never audited: nothing to keep
    summary = run_audit(subset, AuditConfig(checks=["exact_duplicate", "near_duplicate"]))
    assert set(summary["checks"]) == {"exact_duplicate", "near_duplicate"}
    page = (subset / "audit" / "report.html").read_text()
    assert "The label_conflict check did not run." in page


def test_plan_checks_reruns_what_reads_a_replaced_column() -> None:
    """Re-running A re-runs B (needs A's column) and C (uses B's column when present);
    D reads nothing of theirs and is kept; E failed last time and is not carried over."""

    def make(name: str, needs: tuple = (), after: tuple = ()) -> Check:
        return Check(name, name, ("status", *needs), lambda c: None, after=after)

    a, b = make("a"), make("b", needs=("a_score",))
    c, d, e = make("c", after=("b_score",)), make("d"), make("e")
    registry = {x.name: x for x in (a, b, c, d, e)}
    earlier = {name: {"status": "ok"} for name in "abcd"} | {"e": {"status": "failed"}}
    columns = {col for x in (a, b, c, d) for col in x.columns}
    run, kept = plan_checks([a], registry, earlier, columns)
    assert [x.name for x in run] == ["a", "b", "c"] and kept == ["d"]
    # a check whose columns are gone from the manifest (a new scan) is not kept
    run, kept = plan_checks([a], registry, earlier, columns - set(d.columns))
    assert kept == []


def test_a_subset_of_checks_is_merged_into_the_earlier_audit(audited, tmp_path) -> None:
    """`audit --checks leak --against TEST`, then `--checks odd_size`, then
    `--checks near_duplicate`: each keeps what the others found, and re-runs the checks that
    read what it replaces; a full audit without --against then removes the stale leak table."""
    root, run, _ = audited
    merged = tmp_path / "run"
    shutil.copytree(run, merged)
    before = read_manifest(merged)

    summary = run_audit(merged, AuditConfig(checks=["leak"]), against=root / "test")
    checks = summary["checks"]
    assert not checks["leak"].get("from_earlier_audit") and checks["leak"]["issues"] >= 1
    assert checks["near_duplicate"]["from_earlier_audit"]
    earlier = json.loads((run / "audit" / "summary.json").read_text())["checks"]
    assert checks["near_duplicate"]["groups"] == earlier["near_duplicate"]["groups"]
    frame = read_manifest(merged)
    assert frame["duplicate_group"].equals(before["duplicate_group"])
    assert bool(_row(frame, "tree/tree_3.png")["is_leak_issue"])

    # an audit written before checks recorded their tables: found by the naming convention
    written = json.loads((merged / "audit" / "summary.json").read_text())
    for info in written["checks"].values():
        info.pop("tables", None)
    (merged / "audit" / "summary.json").write_text(json.dumps(written))

    summary = run_audit(merged, AuditConfig(checks=["odd_size"]))
    assert summary["checks"]["leak"]["from_earlier_audit"]
    assert summary["checks"]["leak"]["tables"] == ["leaks"]
    assert summary["against"] == str(root / "test")
    assert (merged / "audit" / "leaks.csv").exists()
    page = (merged / "audit" / "report.html").read_text()
    assert "leaked.jpg" in page and "(earlier audit)" in page
    # the header's time says it covers odd_size only, and adds the kept checks' times
    kept_seconds = sum(
        info["seconds"] for info in summary["checks"].values() if info.get("from_earlier_audit")
    )
    assert f"this audit {summary['seconds']} s, re-ran odd_size;" in page
    assert f"{summary['seconds'] + kept_seconds:.1f} s in all" in page
    assert bool(_row(read_manifest(merged), "tree/tree_3.png")["is_leak_issue"])

    summary = run_audit(merged, AuditConfig(checks=["near_duplicate"]))
    rerun = {n for n, info in summary["checks"].items() if not info.get("from_earlier_audit")}
    # the checks that read duplicate_group run again (label_issue keeps a group in one fold)
    assert rerun == {"near_duplicate", "label_conflict", "out_of_domain", "label_issue"}
    assert set(summary["checks"]) == set(available_checks())

    summary = run_audit(merged, AuditConfig())
    assert not any(info.get("from_earlier_audit") for info in summary["checks"].values())
    assert not (merged / "audit" / "leaks.csv").exists()
    assert summary["against"] is None


def test_identical_pictures_are_kept_inside_a_series(audited) -> None:
    """The eight blank pictures are all alike, so none is any one's best match by a
    margin; with series_size 4 they are a series, and still every pair is kept."""
    _, run, _ = audited
    ok = read_manifest(run)
    ok = ok[ok["status"] == "ok"].reset_index(drop=True)
    items = describe(ok, PixelCache(run))
    settings = NearDuplicateSettings(series_size=4)
    pairs, _ = verify_pairs(items, items, candidate_pairs(items, None, settings), settings)
    found = {tuple(sorted((ok.path[a], ok.path[b]))) for a, b in pairs}
    blanks = ["star/blank.png", "star/blank_white.jpg"] + [f"star/blank_{i}.jpg" for i in range(6)]
    expected = {tuple(sorted((a, b))) for i, a in enumerate(blanks) for b in blanks[i + 1 :]}
    assert expected <= found


def test_same_size_look_alikes_are_not_reported_but_same_size_copies_are(tmp_path) -> None:
    """End to end through scan and the verification: two spirograph stars one point apart
    and a club and a spade card pass the aligned comparison (with the same-size rule off
    they are reported), but pixel for pixel they are different pictures; a brightened PNG
    and a JPEG re-save of the same size are still copies."""
    data = tmp_path / "data" / "shapes"
    data.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i, kind in enumerate(("house", "tree", "star") * 3):
        illustration(kind, rng, side=150).save(data / f"other_{i}.png")
    spirograph(72, 29).save(data / "star_72.png")
    spirograph(71, 29).save(data / "star_71.png")
    brightened(spirograph(72, 29), -30).save(data / "star_72 darker.png")
    card().save(data / "club.png")
    card(pip="spade").save(data / "spade.png")
    card().save(data / "club.jpg", quality=75)
    run = tmp_path / "run"
    scan(tmp_path / "data", run, ScanConfig(workers=1))
    ok = read_manifest(run)
    ok = ok[ok["status"] == "ok"].reset_index(drop=True)
    items = describe(ok, PixelCache(run))

    def reported(settings: NearDuplicateSettings) -> set[tuple[str, str]]:
        candidates = candidate_pairs(items, None, settings)
        pairs, _ = verify_pairs(items, items, candidates, settings)
        return {tuple(sorted((ok.path[a], ok.path[b]))) for a, b in pairs}

    copies = {
        ("shapes/star_72 darker.png", "shapes/star_72.png"),
        ("shapes/club.jpg", "shapes/club.png"),
    }
    look_alikes = {
        ("shapes/star_71.png", "shapes/star_72.png"),
        ("shapes/club.png", "shapes/spade.png"),
    }
    assert copies | look_alikes <= reported(NearDuplicateSettings(max_same_size_change=1.0))
    found = reported(NearDuplicateSettings())
    assert copies <= found
    assert not look_alikes & found
    # the leak search (two sets: test against training) applies the same comparison
    test_side = ok["path"].isin(["shapes/star_71.png", "shapes/club.jpg", "shapes/spade.png"])
    test_rows = ok[test_side].reset_index(drop=True)
    train_rows = ok[~test_side].reset_index(drop=True)
    cache = PixelCache(run)
    train_items = describe(train_rows, cache)
    test_items = describe(test_rows, cache, train_items.projection)
    pairs = np.array(
        [[t, r] for t in range(len(test_rows)) for r in range(len(train_rows))], dtype=np.int64
    )

    def leaks(settings: NearDuplicateSettings) -> set[tuple[str, str]]:
        leaked, _ = verify_pairs(test_items, train_items, pairs, settings)
        return {(test_rows.path[t], train_rows.path[r]) for t, r in leaked}

    siblings = {
        ("shapes/star_71.png", "shapes/star_72.png"),
        ("shapes/spade.png", "shapes/club.png"),
    }
    assert siblings <= leaks(NearDuplicateSettings(max_same_size_change=1.0))
    found = leaks(NearDuplicateSettings())
    assert ("shapes/club.jpg", "shapes/club.png") in found
    assert not siblings & found


def test_a_check_runs_after_the_checks_whose_columns_it_uses_when_present() -> None:
    """out_of_domain reads duplicate groups when near_duplicate runs in the same audit (its
    `after`), whatever order they are asked in, and still runs alone without them."""
    scan_columns = set(SCAN_SCHEMA.names)
    domain, near = get_checks(["out_of_domain", "near_duplicate"])
    ordered, unsatisfied = order_checks([domain, near], scan_columns)
    assert not unsatisfied
    assert [c.name for c in ordered] == ["near_duplicate", "out_of_domain"]
    ordered, unsatisfied = order_checks([domain], scan_columns)
    assert [c.name for c in ordered] == ["out_of_domain"] and not unsatisfied


def test_compare_passes_a_planted_copy_at_every_stage(audited) -> None:
    root, run, info = audited
    near = info["planted"]["near"]
    # the manifest path, the file itself and a unique end of the path name the same rows
    for first, second in (
        (near, "star/star_2.png"),
        (str(root / "train" / near), "star_2.png"),
    ):
        result = compare_pair(run, first, second, search=True)
        assert result.paths == (near, "star/star_2.png")
        assert result.failed == []
        search = next(s for s in result.steps if s.name == "candidate search")
        assert search.passed and search.value.startswith("rank 1 ")
        assert result.audit.startswith("same duplicate group")
        assert result.verdict.startswith("near copies")
        assert result.settings_from == str(run / "audit" / "config.yaml")


def test_compare_names_the_tests_that_tell_two_pictures_apart(audited, tmp_path) -> None:
    _, run, info = audited
    result = compare_pair(run, "house/house_1.png", "tree/tree_2.png")
    assert {"min_correlation", "min_detail"} <= set(result.failed)
    assert result.audit.startswith("not reported")
    assert result.verdict.startswith("not near copies") and "min_detail" in result.verdict
    # the settings decide: a stricter detail limit than the copy reaches fails it there
    strict = tmp_path / "strict.yaml"
    strict.write_text("min_detail: 0.9999\n")
    copy = compare_pair(run, info["planted"]["near"], "star/star_2.png", config=strict)
    assert copy.failed == ["min_detail"]
    assert copy.settings_from == str(strict)
    exact = compare_pair(run, info["planted"]["byte_copy"], "house/house_0.png")
    assert exact.verdict.startswith("exact duplicates (identical bytes)")
    # an exact copy stops at the first stage: nothing else is measured
    assert [(s.name, s.passed, s.meaning) for s in exact.steps] == [
        ("exact copy", True, "exact_duplicate")
    ]


def test_compare_against_the_test_set_judges_a_leak_as_the_leak_check_does(audited) -> None:
    """With --against, A is a test picture and B a training picture: the planted leak
    passes every stage, ranks first among the training pictures, and is found in
    leaks.csv; a test picture against an unrelated training picture fails the pixel tests
    and is said to leak through its real source."""
    root, run, _ = audited
    for against in (root / "test", run / "against" / "test"):  # the folder or its scan
        leak = compare_pair(run, "tree/leaked.jpg", "tree/tree_3.png", search=True, against=against)
        assert leak.paths == ("tree/leaked.jpg", "tree/tree_3.png") and leak.failed == []
        search = next(s for s in leak.steps if s.name == "candidate search")
        assert search.passed and search.value.startswith("rank 1 ")
        assert leak.audit == "reported as a leak (near pair in leaks.csv)"
        assert leak.verdict.startswith("a leak")
    other = compare_pair(run, "tree/leaked.jpg", "house/house_1.png", against=root / "test")
    assert {"min_correlation", "min_detail"} <= set(other.failed)
    assert other.audit == "not reported; the test picture leaks through tree/tree_3.png"
    # the test picture is looked up in the test set, never in the run
    with pytest.raises(CompareError, match="is not in the manifest"):
        compare_pair(run, "tree/tree_3.png", "tree/tree_3.png", against=root / "test")
    with pytest.raises(CompareError, match="no scan of it for this run"):
        compare_pair(run, "tree/leaked.jpg", "tree/tree_3.png", against=root / "elsewhere")


def test_compare_explains_what_it_cannot_compare(audited) -> None:
    _, run, _ = audited
    with pytest.raises(CompareError, match="matches 2 files"):
        compare_pair(run, "tree_5.png", "house/house_1.png")
    with pytest.raises(CompareError, match="Did you mean: house/house_0 copy.png"):
        compare_pair(run, "house/house_0_copy.png", "house/house_2.png")
    with pytest.raises(CompareError, match="the same file"):
        compare_pair(run, "house/house_1.png", "house_1.png")


class _NamedThumbs:
    """Stands in for the report's thumbnails: a figure that only names its path."""

    def figure(self, path: str, caption: str = "", keep: bool = False) -> str:
        return f"<figure title='{path}'></figure>"


def _section(check, frame=None, tables=None, test_thumbs=None) -> str:
    """`check`'s report section rendered on made-up inputs."""
    from winnow.audit.checks.base import ReportInputs
    from winnow.audit.report import render_section

    frame = pd.DataFrame() if frame is None else frame
    inputs = ReportInputs(frame, {"checks": {}}, tables or {}, _NamedThumbs(), test_thumbs)
    return str(render_section(check, inputs))


def test_report_leak_table_has_one_row_per_test_item_and_counts_what_it_leaves_out(
    monkeypatch,
) -> None:
    from winnow.audit.checks import leak

    monkeypatch.setattr(leak, "MAX_LEAK_ITEMS", 2)
    monkeypatch.setattr(leak, "MAX_LEAK_COPIES", 3)
    rows = [("a/blank.png", f"train/blank_{i}.png", "near", 1.0 - i / 100) for i in range(6)]
    rows += [
        ("b/cat.jpg", "train/cat.png", "exact", 1.0),
        ("c/dog.jpg", "train/dog.png", "near", 0.97),
    ]
    leaks = pd.DataFrame(rows, columns=["test_path", "train_path", "kind", "similarity"])
    page = _section(leak.CHECK, tables={"leaks": leaks}, test_thumbs=_NamedThumbs())
    assert "3 test items have a copy in the training data (8 pairs" in page
    assert page.count("<tr><td>") == 2  # a and b; c is left out and counted
    assert "… and 1 more test item (see leaks.csv)" in page and "c/dog.jpg" not in page
    # the blank test item: its three most alike copies, then how many more
    blank_row = page.split("<tr><td>")[1]
    shown = [f"train/blank_{i}.png" for i in range(3)]
    assert all(f"title='{p}'" in blank_row for p in shown)
    assert "train/blank_3.png" not in blank_row and "+3 more" in blank_row
    assert "<td>exact</td>" in page.split("<tr><td>")[2]
    single = _section(leak.CHECK, tables={"leaks": leaks.iloc[6:7]})
    assert "1 test item has a copy in the training data (1 pair," in single
    assert "more test items" not in single


def test_report_strips_count_the_pictures_they_do_not_show() -> None:
    from winnow.audit.checks import odd_size

    odd = pd.DataFrame(
        {
            "path": [f"a/{i}.png" for i in range(30)],
            "width": 4,
            "height": 400,
            "odd_size_score": np.linspace(0, 0.5, 30),
            "is_odd_size_issue": True,
        }
    )
    page = _section(odd_size.CHECK, frame=odd)
    assert page.count("<figure") == 24 and "a/0.png" in page and "a/29.png" not in page
    assert "… and 6 more (every one has <code>is_odd_size_issue</code> set" in page
    assert "more" not in _section(odd_size.CHECK, frame=odd.head(24))
