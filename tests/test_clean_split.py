"""clean (policy + decisions), split (group-aware, stratified, deterministic), export."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_audit import write_dataset
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.curate.clean import CleanError, CleanPolicy, decide, run_clean
from winnow.curate.export import export_clean
from winnow.curate.split import SplitError, assign_splits, run_split
from winnow.data.config import ScanConfig
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("clean")
    planted = write_dataset(root)
    (root / "train" / "house" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    run = root / "run"
    scan(root / "train", run, ScanConfig(image_size=64, workers=1))
    run_audit(run, AuditConfig(), against=root / "test")
    return root, run, planted


def test_default_policy_explains_every_drop(audited_run) -> None:
    _, run, planted = audited_run
    summary = run_clean(run)
    frame = read_manifest(run).set_index("path")
    assert frame.at["house/broken.png", "reason"] == "bad_file:corrupt"
    assert not frame.at["house/broken.png", "keep"]
    # one member per duplicate group is kept, the others point at it
    assert frame.at["house/house_0.png", "keep"] and not frame.at[planted["byte_copy"], "keep"]
    assert frame.at[planted["byte_copy"], "duplicate_of"] == "house/house_0.png"
    assert frame.at[planted["near"], "reason"] == "duplicate"
    # label conflicts wait for review; the leaked training item is dropped
    assert frame.at[planted["conflict"], "reason"] == "label_conflict:review"
    assert frame.at["tree/tree_3.png", "reason"] == "leak"
    assert (frame["reason"] != "kept").sum() == summary["dropped"]
    assert set(frame.loc[~frame["keep"].astype(bool), "reason"]) <= {
        "bad_file:corrupt",
        "duplicate",
        "label_conflict:review",
        "leak",
    }


def test_checks_the_last_audit_did_not_run_are_named_not_silently_skipped(
    tmp_path: Path,
) -> None:
    """`audit --checks exact_duplicate` leaves no duplicate groups: clean then keeps near
    copies, and says which checks it could not apply (summary and command line)."""
    from typer.testing import CliRunner

    from winnow.cli import app

    planted = write_dataset(tmp_path)
    run = tmp_path / "run"
    scan(tmp_path / "train", run, ScanConfig(image_size=64, workers=1))
    run_audit(run, AuditConfig(checks=["exact_duplicate"]))
    summary = run_clean(run)
    assert {"near_duplicate", "label_conflict", "leak"} <= set(summary["checks_not_run"])
    assert "exact_duplicate" not in summary["checks_not_applied"]
    assert read_manifest(run).set_index("path").at[planted["near"], "keep"]
    result = CliRunner().invoke(app, ["clean", str(run)])
    assert result.exit_code == 0, result.output
    assert "not applied" in result.output and "near_duplicate" in result.output


def test_a_row_a_rule_drops_does_not_wait_for_review() -> None:
    """Blank pictures filed under two classes are blank (dropped), not label conflicts that
    wait for a person; a conflict that no rule drops still waits."""
    frame = pd.DataFrame(
        {
            "path": ["a/x.png", "b/x.png", "a/y.png", "b/y.png"],
            "label": ["a", "b", "a", "b"],
            "status": ["ok"] * 4,
            "is_label_conflict_issue": [True, True, True, True],
            "is_blank_issue": [True, True, False, False],
        }
    )
    decided = decide(frame, CleanPolicy(), None)
    assert list(decided["reason"]) == ["blank", "blank", *["label_conflict:review"] * 2]
    assert not decided["keep"].any()
    kept = decide(frame, CleanPolicy(label_conflicts="keep"), None)
    assert list(kept["reason"]) == ["blank", "blank", "kept", "kept"]


def test_clean_names_the_classes_it_empties_or_halves(tmp_path: Path) -> None:
    """A class whose pictures are all also filed under another class waits for review as a
    whole: the summary and the command line say it has no file left, and why."""
    from typer.testing import CliRunner

    from winnow.cli import app

    write_dataset(tmp_path)
    train = tmp_path / "train"
    (train / "copies").mkdir()
    for i in range(4):
        (train / "copies" / f"house_{i}.png").write_bytes(
            (train / f"house/house_{i}.png").read_bytes()
        )
    run = tmp_path / "run"
    scan(train, run, ScanConfig(image_size=64, workers=1))
    run_audit(run, AuditConfig(checks=["exact_duplicate", "near_duplicate", "label_conflict"]))
    summary = run_clean(run)
    assert summary["classes_emptied"] == {
        "copies": {"rows": 4, "kept": 0, "label_conflict:review": 4}
    }
    assert (
        summary["classes_halved"]["house"]["kept"] < summary["classes_halved"]["house"]["rows"] / 2
    )
    assert "star" not in summary["classes_halved"] and "star" not in summary["classes_emptied"]
    result = CliRunner().invoke(app, ["clean", str(run)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "class 'copies' has no file left (of 4: label_conflict:review 4)" in output
    assert "class 'house' keeps" in output and "winnow review" in output


def test_decisions_override_rules_and_relabel(audited_run, tmp_path: Path) -> None:
    _, run, planted = audited_run
    decisions = tmp_path / "review.csv"
    decisions.write_text(
        f"path,keep,label\n{planted['conflict']},yes,tree\nhouse/house_1.png,no,\n"
    )
    run_clean(run, decisions_path=decisions)
    frame = read_manifest(run).set_index("path")
    assert (
        frame.at[planted["conflict"], "keep"]
        and frame.at[planted["conflict"], "reason"] == "review"
    )
    assert frame.at[planted["conflict"], "final_label"] == "tree"
    assert not frame.at["house/house_1.png", "keep"]
    run_clean(run)  # back to the default for the other tests


def test_policy_file_is_validated(audited_run, tmp_path: Path) -> None:
    _, run, _ = audited_run
    policy = tmp_path / "policy.yaml"
    policy.write_text("label_conflictss: drop\n")
    with pytest.raises(CleanError, match="did you mean 'label_conflicts'"):
        run_clean(run, policy_path=policy)
    policy.write_text("leaks: sometimes\n")
    with pytest.raises(CleanError, match="leaks"):
        run_clean(run, policy_path=policy)


def test_decide_is_pure() -> None:
    frame = pd.DataFrame({"path": ["a/x.png"], "label": ["a"], "status": ["ok"]})
    before = frame.copy()
    decided = decide(frame, CleanPolicy(), None)
    pd.testing.assert_frame_equal(frame, before)
    assert decided.loc[0, "keep"] and decided.loc[0, "reason"] == "kept"


def test_duplicate_groups_never_straddle_splits() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], size=600, p=[0.6, 0.3, 0.1])
    groups = rng.integers(0, 250, size=600)  # many multi-member groups
    for seed in range(5):
        split = assign_splits(labels, groups, 0.15, 0.15, seed)
        per_group = pd.DataFrame({"g": groups, "s": split}).groupby("g")["s"].nunique()
        assert (per_group == 1).all()
        shares = pd.Series(split).value_counts(normalize=True)
        assert abs(shares["test"] - 0.15) < 0.05 and abs(shares["val"] - 0.15) < 0.05


def test_split_is_stratified_deterministic_and_seeded() -> None:
    labels = np.array(["a"] * 80 + ["b"] * 20)
    groups = np.arange(100)
    first = assign_splits(labels, groups, 0.1, 0.2, seed=1)
    assert (first == assign_splits(labels, groups, 0.1, 0.2, seed=1)).all()
    assert (first != assign_splits(labels, groups, 0.1, 0.2, seed=2)).any()
    table = pd.crosstab(labels, first)
    assert table.loc["a", "test"] == 16 and table.loc["b", "test"] == 4
    assert table.loc["a", "val"] == 8 and table.loc["b", "val"] == 2


def test_dropped_copies_travel_with_their_group_without_taking_a_place_in_the_shares() -> None:
    # 20 kept pictures of one class; three of them have 10 copies each that clean dropped
    labels = np.array(["a"] * 50)
    groups = np.array(list(range(20)) + [0] * 10 + [1] * 10 + [2] * 10)
    counted = np.array([True] * 20 + [False] * 30)
    split = assign_splits(labels, groups, 0.1, 0.0, seed=0, counted=counted)
    assert (pd.Series(split[counted]).value_counts().to_dict()) == {"train": 18, "val": 2}
    per_group = pd.DataFrame({"g": groups, "s": split}).groupby("g")["s"].nunique()
    assert (per_group == 1).all()  # the dropped copies sit with their kept picture
    # counting them would have sent 5 of the 20 kept pictures to validation
    uncounted = assign_splits(labels, groups, 0.1, 0.0, seed=0)
    assert (uncounted[counted] == "val").sum() == 5


def test_run_split_keeps_every_group_together_when_all_copies_are_kept(
    audited_run, tmp_path: Path
) -> None:
    _, run, _ = audited_run
    policy = tmp_path / "keep_all.yaml"
    policy.write_text("duplicates: keep_all\nlabel_conflicts: keep\nleaks: keep\n")
    run_clean(run, policy_path=policy)
    run_split(run, val=0.2, test=0.2, seed=3)
    frame = read_manifest(run)
    grouped = frame[frame["duplicate_group"].notna() & frame["keep"].astype(bool)]
    assert len(grouped) >= 6
    assert (grouped.groupby("duplicate_group")["split"].nunique() == 1).all()
    assert frame.loc[~frame["keep"].astype(bool), "split"].isna().all()
    run_clean(run)


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(SplitError, match="val \\+ test < 1"):
        assign_splits(np.array(["a"]), np.array([0]), 0.6, 0.5, 0)


def test_export_links_kept_files_by_label(audited_run, tmp_path: Path) -> None:
    root, run, planted = audited_run
    run_clean(run)
    result = export_clean(run, tmp_path / "clean")
    frame = read_manifest(run)
    assert result["files"] == frame["keep"].sum()
    exported = tmp_path / "clean" / "house" / "house_0.png"
    assert exported.exists()
    assert os.stat(exported).st_ino == os.stat(root / "train" / "house" / "house_0.png").st_ino
    assert not (tmp_path / "clean" / "house" / Path(planted["byte_copy"]).name).exists()
    with pytest.raises(CleanError, match="not empty"):
        export_clean(run, tmp_path / "clean")
    with pytest.raises(CleanError, match="inside the data folder"):
        export_clean(run, root / "train" / "exported")
