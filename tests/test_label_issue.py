"""The label_issue check: confident learning on known probabilities, group-aware folds, and
the whole check on a folder with planted mislabelled images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from winnow.audit.confident import confident_joint, find_label_issues


def _noisy_probabilities(seed: int = 0, n: int = 800, k: int = 4, flipped: int = 40):
    """Probabilities of a decent model (peaked on the true class) and labels with
    `flipped` of them changed to another class: (given, true, probabilities)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    concentration = np.full((n, k), 0.6)
    concentration[np.arange(n), true] = 6.0
    probabilities = np.stack([rng.dirichlet(row) for row in concentration])
    given = true.copy()
    chosen = rng.choice(n, flipped, replace=False)
    given[chosen] = (true[chosen] + rng.integers(1, k, flipped)) % k
    return given, true, probabilities


def test_thresholds_and_joint_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    calibrated, raw, thresholds = confident_joint(labels, probabilities)
    # t_0 = mean(0.9, 0.7) = 0.8, t_1 = mean(0.8, 0.4) = 0.6
    assert np.allclose(thresholds, [0.8, 0.6])
    # items 1 (0.7 < t_0, 0.3 < t_1) and 3 (0.6 < t_0, 0.4 < t_1) reach no threshold
    assert raw.tolist() == [[1, 0], [0, 1]]
    assert calibrated.sum(axis=1).tolist() == [2, 2]  # rows sum to the class counts


def test_flipped_labels_are_found_and_the_true_class_suggested() -> None:
    given, true, probabilities = _noisy_probabilities()
    found = find_label_issues(given, probabilities)
    flipped = given != true
    precision = (found.issues & flipped).sum() / found.issues.sum()
    recall = (found.issues & flipped).sum() / flipped.sum()
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    right = (found.suggested == true) & found.issues & flipped
    assert right.sum() / (found.issues & flipped).sum() >= 0.9
    assert (found.suggested[~found.issues] == -1).all()
    # the estimate of the noise is in the right range (5 % flipped)
    assert 0.02 <= found.noise_estimate <= 0.12
    # lower score = more likely wrong: flipped items score lower on average
    assert found.self_confidence[flipped].mean() < found.self_confidence[~flipped].mean()


def test_an_item_predicted_as_its_label_is_never_an_issue() -> None:
    given, _, probabilities = _noisy_probabilities(seed=1)
    found = find_label_issues(given, probabilities)
    assert not (found.issues & (probabilities.argmax(1) == given)).any()


def test_every_class_keeps_at_least_min_per_class() -> None:
    # class 1's three items all look like class 0
    labels = np.array([0] * 20 + [1] * 3)
    probabilities = np.array([[0.95, 0.05]] * 20 + [[0.9, 0.1]] * 3)
    found = find_label_issues(labels, probabilities, min_per_class=2)
    assert found.issues[20:].sum() <= 1


def test_folds_are_stratified_and_keep_groups_together() -> None:
    from winnow.training.crossval import assign_folds

    targets = np.repeat([0, 1, 2], 30)
    groups = np.arange(90)
    groups[[0, 1, 2]] = 1000  # three copies of one picture
    groups[[40, 41]] = 1001
    fold_of = assign_folds(targets, groups, 3, seed=0)
    assert len(set(fold_of[[0, 1, 2]])) == 1 and len(set(fold_of[[40, 41]])) == 1
    for target in range(3):
        counts = np.bincount(fold_of[targets == target], minlength=3)
        assert counts.min() >= 8, counts


def _shape_image(kind: str, rng: np.random.Generator) -> Image.Image:
    """A red disc, a blue square or a green triangle at a random place and size."""
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(12, 24))
    x, y = (int(v) for v in rng.integers(r, 64 - r, 2))
    box = (x - r, y - r, x + r, y + r)
    if kind == "discs":
        draw.ellipse(box, fill=(220, 30, 30))
    elif kind == "squares":
        draw.rectangle(box, fill=(30, 30, 220))
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=(30, 160, 30))
    return image


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """30 pictures per class, two discs filed under squares; scanned, audited
    (label_issue only, a small budget)."""
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import run_audit
    from winnow.data.scan import scan

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for kind in ("discs", "squares", "triangles"):
        (root / "data" / kind).mkdir(parents=True)
        for i in range(30):
            _shape_image(kind, rng).save(root / "data" / kind / f"{kind}_{i:02d}.png")
    for i in range(2):
        _shape_image("discs", rng).save(root / "data" / "squares" / f"misfiled_{i}.png")
    run = root / "run"
    scan(root / "data", run)
    settings = AuditConfig(checks=["label_issue"], label_issue_minutes=0.5)
    summary = run_audit(run, settings)
    return run, summary


def test_the_check_flags_misfiled_pictures_and_suggests_their_class(shapes_run) -> None:
    run, summary = shapes_run
    info = summary["checks"]["label_issue"]
    assert info["status"] == "ok", info
    frame = pd.read_parquet(run / "manifest.parquet").set_index("path")
    for i in range(2):
        row = frame.loc[f"squares/misfiled_{i}.png"]
        assert row["is_label_issue_issue"], row["label_issue_score"]
        assert row["suggested_label"] == "discs"
    flagged = frame[frame["is_label_issue_issue"]]
    assert len(flagged) <= 6, flagged[["label", "suggested_label"]]
    assert frame["label_issue_score"].between(0, 1).all()
    assert info["folds"] == 3 and len(info["fold_training"]) == 3
    # the out-of-fold probabilities are kept, one column per class, rows summing to 1
    table = pd.read_parquet(run / "audit" / "label_issue_probabilities.parquet")
    assert {"p_discs", "p_squares", "p_triangles", "fold"} <= set(table.columns)
    assert np.allclose(table[["p_discs", "p_squares", "p_triangles"]].sum(axis=1), 1, atol=1e-4)
    assert len(table) == len(frame)


def test_clean_acts_on_label_issues_only_when_the_policy_says_so(shapes_run, tmp_path) -> None:
    from winnow.curate.clean import CleanPolicy, decide

    run, _ = shapes_run
    frame = pd.read_parquet(run / "manifest.parquet")
    kept = decide(frame, CleanPolicy(), None)
    assert kept["keep"].all()  # the default is keep: a person decides in review
    reviewed = decide(frame, CleanPolicy(label_issues="review"), None)
    flagged = frame["is_label_issue_issue"]
    assert (reviewed.loc[flagged, "reason"] == "label_issue:review").all()
    assert not reviewed.loc[flagged, "keep"].any()


def test_a_folder_too_small_is_skipped_with_a_reason(tmp_path) -> None:
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import run_audit
    from winnow.data.scan import scan

    rng = np.random.default_rng(1)
    for kind in ("discs", "squares"):
        (tmp_path / "data" / kind).mkdir(parents=True)
        for i in range(4):
            _shape_image(kind, rng).save(tmp_path / "data" / kind / f"{i}.png")
    scan(tmp_path / "data", tmp_path / "run")
    summary = run_audit(tmp_path / "run", AuditConfig(checks=["label_issue"]))
    info = summary["checks"]["label_issue"]
    assert info["status"] == "ok" and info["issues"] == 0
    assert "needs 30 readable images" in info["skipped"]


def test_skip_leaves_a_check_out(tmp_path) -> None:
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import AuditError, run_audit
    from winnow.data.scan import scan

    rng = np.random.default_rng(2)
    (tmp_path / "data" / "discs").mkdir(parents=True)
    for i in range(3):
        _shape_image("discs", rng).save(tmp_path / "data" / "discs" / f"{i}.png")
    scan(tmp_path / "data", tmp_path / "run")
    summary = run_audit(tmp_path / "run", AuditConfig(skip=["label_issue", "out_of_domain"]))
    assert "label_issue" not in summary["checks"] and "out_of_domain" not in summary["checks"]
    assert "exact_duplicate" in summary["checks"]
    with pytest.raises(AuditError, match="label_isue"):
        run_audit(tmp_path / "run", AuditConfig(skip=["label_isue"]))
