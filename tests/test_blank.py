"""The blank check: one-colour images are flagged, drawings and small marks are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from winnow.audit.checks.blank import BlankSettings, ink
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.config import ConfigError, build_config
from winnow.curate.clean import CleanPolicy, decide
from winnow.data.config import ScanConfig
from winnow.data.decode import detail_region
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan
from winnow.workflows.demo import illustration

BLANK = {
    "a/empty.png",  # a transparent PNG with nothing on it
    "a/white.jpg",
    "a/red.png",  # a colour swatch: one colour edge to edge
    "b/noisy_page.jpg",  # a scanned empty page: sensor noise is not ink
}
NOT_BLANK = {
    "b/page_with_mark.png",  # a 6-px mark on a 1,200-px page: below a pixel in the 64-px view
    "b/hairline.png",  # one faint thin line
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blank")
    data = root / "data"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            illustration("house" if label == "a" else "tree", rng, side=96).save(
                data / label / f"drawing_{i}.png"
            )
    Image.new("RGBA", (200, 200), (0, 0, 0, 0)).save(data / "a/empty.png")
    Image.new("RGB", (120, 90), "white").save(data / "a/white.jpg", quality=80)
    Image.new("RGB", (150, 150), (200, 30, 30)).save(data / "a/red.png")
    noise = np.clip(235 + rng.normal(0, 3, (300, 220, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(noise).save(data / "b/noisy_page.jpg", quality=85)
    page = Image.new("RGB", (1200, 1200), "white")
    ImageDraw.Draw(page).rectangle((600, 600, 605, 605), fill="black")
    page.save(data / "b/page_with_mark.png")
    line = Image.new("RGB", (100, 100), "white")
    ImageDraw.Draw(line).line((10, 50, 90, 50), fill=(200, 200, 200), width=1)
    line.save(data / "b/hairline.png")
    run = root / "run"
    scan(data, run, ScanConfig(image_size=64, workers=1))
    run_audit(run, AuditConfig(checks=["blank"]))
    return run


def test_one_colour_images_are_blank_and_drawings_and_marks_are_not(audited) -> None:
    frame = read_manifest(audited).set_index("path")
    flagged = set(frame.index[frame["is_blank_issue"].astype(bool)])
    assert flagged == BLANK
    assert not flagged & NOT_BLANK
    scores = frame["blank_score"]
    assert scores[sorted(BLANK)].max() < scores[sorted(NOT_BLANK)].min()
    assert frame.at["a/red.png", "blank_colour"] == "#c81e1e"
    assert frame.at["a/empty.png", "blank_colour"] == "#ffffff"  # transparency → background
    # the mark is seen in the detail crop, at the page's own resolution
    assert frame.at["b/page_with_mark.png", "blank_ink"] > BlankSettings().max_ink


def test_ink_counts_pixels_away_from_the_dominant_colour() -> None:
    region = np.full((10, 10, 3), 255, np.uint8)
    region[0, 0] = 250  # 5 levels off: within the tolerance
    assert ink(region, tolerance=16)[0] == 0.0
    region[:2, :, 2] = 0  # 20 of 100 pixels yellow: one channel is enough
    amount, dominant = ink(region, tolerance=16)
    assert amount == pytest.approx(0.2) and dominant.tolist() == [255, 255, 255]


def test_the_bars_around_a_letterboxed_detail_crop_are_not_the_picture() -> None:
    crop = np.full((64, 64, 3), 255, np.uint8)
    crop[22:42, 12:52] = 90  # a 40 × 20 grey picture, centred as decode.detail_crop does
    region = detail_region(crop, 40, 20)
    assert region.shape == (20, 40, 3) and (region == 90).all()


def test_clean_drops_blank_images_unless_the_policy_keeps_them() -> None:
    frame = pd.DataFrame(
        {
            "path": ["a/x.png", "a/y.png"],
            "label": ["a", "a"],
            "status": ["ok", "ok"],
            "is_blank_issue": [True, False],
        }
    )
    decided = decide(frame, CleanPolicy(), None)
    assert decided["keep"].tolist() == [False, True]
    assert decided.loc[0, "reason"] == "blank"
    kept = decide(frame, CleanPolicy(blank="keep"), None)
    assert kept["keep"].all()
    review = decide(frame, CleanPolicy(blank="review"), None)
    assert review.loc[0, "reason"] == "blank:review"


def test_the_report_shows_blank_images(audited) -> None:
    page = (audited / "audit" / "report.html").read_text()
    assert "<h2>Blank images</h2>" in page
    assert "4 images are one colour" in page and "on the 1 with transparency" in page


def test_settings_come_from_the_blank_section_or_the_old_flat_keys(audited, tmp_path) -> None:
    """The check's settings are its own section of the audit config; the flat spelling of
    earlier versions lands in the same section, and the audit saves the resolved one."""
    flagged = {}
    for name, data in {
        "section": {"checks": ["blank"], "blank": {"max_ink": 0.3}},
        "flat": {"checks": ["blank"], "blank_max_ink": 0.3},
    }.items():
        run = tmp_path / name
        shutil.copytree(audited, run)
        run_audit(run, build_config(AuditConfig, data))
        frame = read_manifest(run).set_index("path")
        flagged[name] = set(frame.index[frame["is_blank_issue"].astype(bool)])
        saved = yaml.safe_load((run / "audit" / "config.yaml").read_text())
        assert saved["blank"] == {"max_ink": 0.3, "tolerance": 16.0}
        assert "blank_max_ink" not in saved
    # a looser limit: the faint hairline and the tiny mark now count as blank as well
    assert flagged["section"] == flagged["flat"] == BLANK | NOT_BLANK


def test_a_wrong_blank_setting_is_named_with_its_section() -> None:
    with pytest.raises(
        ConfigError, match="Unknown blank section key 'max_inks'; did you mean 'max_ink'"
    ):
        build_config(AuditConfig, {"blank": {"max_inks": 0.1}})
    with pytest.raises(ConfigError, match=r"blank\.tolerance"):
        build_config(AuditConfig, {"blank": {"tolerance": 300}})
    with pytest.raises(ConfigError, match=r"blank\.max_ink"):
        build_config(AuditConfig, {"blank_max_ink": 2})
