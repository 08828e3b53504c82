"""winnow.audit.style.denoiser: the representation the out_of_domain check learns on the
dataset itself."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import winnow.audit.checks.out_of_domain as out_of_domain
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.audit.style.denoiser import fit_denoiser, noise_level, training_sample
from winnow.data.config import ScanConfig
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan
from winnow.workflows.demo import DRAWERS, illustration, photo_like

WHITE = (255, 255, 255)
STEPS = 1200  # enough for the tiny generated sets below (at 300 it has not learned yet)


def _on_white(image: Image.Image) -> np.ndarray:
    """The top-left 64 × 64 of `image` over white, as the pixel cache stores it."""
    white = Image.new("RGBA", image.size, (*WHITE, 255))
    return np.asarray(Image.alpha_composite(white, image.convert("RGBA")).convert("RGB"))[:64, :64]


def _crops(drawings: int, photos: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = list(DRAWERS)
    drawn = [_on_white(illustration(labels[i % len(labels)], rng)) for i in range(drawings)]
    shot = [_on_white(photo_like(rng)) for _ in range(photos)]
    return np.array(drawn).reshape(-1, 64, 64, 3), np.array(shot).reshape(-1, 64, 64, 3)


@pytest.fixture(scope="module")
def trained():
    drawings, photos = _crops(60, 4)
    model = fit_denoiser(np.concatenate([drawings, photos]), steps=STEPS)
    return model, drawings, photos


def test_it_learns_to_find_added_noise(trained) -> None:
    model, drawings, _ = trained
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.02 * 255, drawings.shape)
    noisy = np.clip(drawings + noise, 0, 255).astype(np.uint8)
    clean_level = noise_level(model, drawings, WHITE)
    noisy_level = noise_level(model, noisy, WHITE)
    assert np.all(noisy_level > clean_level + 1.0)
    # what it predicts on a noisy image is the noise that was added (an untrained one is not)
    with torch.no_grad():
        predicted = model(torch.from_numpy(noisy).permute(0, 3, 1, 2).float() / 255).numpy()
    added = (noisy.astype(float) - drawings) / 255
    corr = np.corrcoef(predicted.ravel(), added.transpose(0, 3, 1, 2).ravel())[0, 1]
    assert corr > 0.5


def test_photo_noise_reads_as_noise_drawings_do_not(trained) -> None:
    model, drawings, _ = trained
    _, photos = _crops(0, 6, seed=9)  # photographs it was not trained on
    drawn = noise_level(model, drawings, WHITE)
    shot = noise_level(model, photos, WHITE)
    assert shot.min() > np.percentile(drawn, 90)


def test_same_seed_same_scores_and_the_sample_is_bounded() -> None:
    drawings, photos = _crops(12, 2)
    crops = np.concatenate([drawings, photos])
    first = noise_level(fit_denoiser(crops, steps=20, seed=3), crops, WHITE)
    again = noise_level(fit_denoiser(crops, steps=20, seed=3), crops, WHITE)
    other = noise_level(fit_denoiser(crops, steps=20, seed=4), crops, WHITE)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    chosen = training_sample(1000, limit=100)
    assert len(chosen) == 100 and len(set(chosen)) == 100 and np.all(np.diff(chosen) > 0)
    assert list(training_sample(5, limit=100)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="side"):
        fit_denoiser(crops[:, :8, :8])


@pytest.mark.slow
def test_the_check_uses_it_when_asked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(out_of_domain, "fit_denoiser", functools.partial(fit_denoiser, steps=STEPS))
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    photos = set()
    for i in range(66):
        label = list(DRAWERS)[i % 3]
        (data / label).mkdir(parents=True, exist_ok=True)
        image = photo_like(rng) if i >= 60 else illustration(label, rng)
        image.convert("RGB").save(data / label / f"item_{i:03d}.png")
        if i >= 60:
            photos.add(f"{label}/item_{i:03d}.png")
    run = tmp_path / "run"
    scan(data, run, ScanConfig(image_size=64, workers=1))
    summary = run_audit(run, AuditConfig(checks=["out_of_domain"], out_of_domain_learned=True))[
        "checks"
    ]["out_of_domain"]
    assert summary["learned_representation"] == "denoiser"
    frame = read_manifest(run)
    flagged = set(frame.loc[frame["is_out_of_domain_issue"].astype(bool), "path"])
    assert photos <= flagged and len(flagged - photos) <= 2
    # the learned statistic is an evidence family of its own in the check's table
    table = pd.read_parquet(run / "audit" / "out_of_domain.parquet")
    assert {"colour_evidence", "texture_evidence", "learned_evidence"} <= set(table.columns)
    photo_rows = table["path"].isin(photos)
    assert (
        table.loc[photo_rows, "learned_evidence"].min()
        > table.loc[~photo_rows, "learned_evidence"].median()
    )
    report = (run / "audit" / "report.html").read_text()
    assert "<i>learned</i> = detail that a denoiser trained on this dataset" in report
