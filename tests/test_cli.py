"""The command line: fast help, clear errors, a readable scan report, the demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from conftest import TINY_TRAIN
from winnow.cli import app
from winnow.cli.base import BAD_FILES_SHOWN
from winnow.data.manifest import read_manifest
from winnow.workflows.demo import check_against_truth, describe_check

runner = CliRunner()


def test_help_lists_every_verb_with_an_example() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    verbs = (
        "scan",
        "audit",
        "checks",
        "clean",
        "export",
        "split",
        "train",
        "models",
        "evaluate",
        "predict",
        "explain",
        "export-onnx",
        "run",
        "demo",
        "compare",
    )
    for verb in verbs:
        assert verb in result.output
        sub = runner.invoke(app, [verb, "--help"])
        assert sub.exit_code == 0 and "Example: winnow" in sub.output


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from winnow.cli import app; "
        "heavy = [m for m in ('torch', 'lightning', 'pyarrow', 'numpy', 'PIL', 'pyvips') "
        "if m in sys.modules]; print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_scan_reports_bad_files_with_reasons(messy, tmp_path: Path) -> None:
    data, expected = messy
    result = runner.invoke(
        app, ["scan", str(data), "--out", str(tmp_path / "run"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "truncated" in result.output and "not_image" in result.output
    assert "manifest.parquet" in result.output
    summary = json.loads((tmp_path / "run" / "scan_summary.json").read_text())
    assert summary["files"] == len(expected)
    assert len(read_manifest(tmp_path / "run")) == len(expected)


def test_an_image_folders_companion_files_do_not_hide_its_broken_images(tmp_path: Path) -> None:
    """A crawled or packaged folder holds text, sound and vector files beside its images
    (Tux Paint's stamps: 9,601 of 10,397 files). They stay manifest rows with status
    not_image, but the scan's listing and the audit report name the broken images first and
    count the companions by extension; a file named like an image whose content is none
    (an HTML error page saved as .png) is a broken image, not a companion."""
    from factory import WRITERS, gradient, write_kind
    from winnow.audit.runner import run_audit

    data = tmp_path / "data"
    for i in range(3):
        (data / "cat").mkdir(parents=True, exist_ok=True)
        gradient().save(data / "cat" / f"cat_{i}.png")
    for i in range(BAD_FILES_SHOWN + 2):  # more companions than the listing shows, sorted first
        (data / "cat" / f"a_{i:02d}.txt").write_text("a description")
    for i in range(3):
        (data / "cat" / f"a_{i}.ogg").write_bytes(b"OggS\0\2" + bytes(40))
    write_kind(data / "cat", "truncated_png")
    (data / "cat" / "zz_page.png").write_text("<html><body>403 Forbidden</body></html>")
    run = tmp_path / "run"
    result = runner.invoke(app, ["scan", str(data), "--out", str(run), "--workers", "1"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    companions = BAD_FILES_SHOWN + 2 + 3
    assert (
        f"{3 + companions + 2} files: 3 images read, 2 can't be used, {companions} other files "
        f"(.txt {BAD_FILES_SHOWN + 2}, .ogg 3)" in output
    )
    truncated = WRITERS["truncated_png"][0]
    listing = output.split("files that can't be used")[1]
    assert f"cat/{truncated}" in listing and "cat/zz_page.png" in listing
    assert "a_00.txt" not in listing  # companions are counted, not listed
    run_audit(run)
    page = (run / "audit" / "report.html").read_text()
    assert f"cat/{truncated}" in page and "cat/zz_page.png" in page and "a_00.txt" not in page
    assert f"{companions} other files are not images" in page
    assert "<b>2</b>unusable files" in page


def test_unknown_config_key_is_an_error_with_a_suggestion(messy, tmp_path: Path) -> None:
    data, _ = messy
    config = tmp_path / "scan.yaml"
    config.write_text("image_sise: 64\n")
    result = runner.invoke(
        app, ["scan", str(data), "--out", str(tmp_path / "run"), "--config", str(config)]
    )
    assert result.exit_code == 2
    assert "image_sise" in result.output and "did you mean 'image_size'" in result.output


def test_bad_values_and_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["scan", str(tmp_path), "--out", str(tmp_path / "r"), "--background", "blurple"]
    )
    assert result.exit_code == 2 and "not a colour" in result.output
    result = runner.invoke(app, ["scan", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_resolved_config_is_saved_with_the_run(messy, tmp_path: Path) -> None:
    data, _ = messy
    runner.invoke(
        app,
        ["scan", str(data), "--out", str(tmp_path / "run"), "--image-size", "40", "--workers", "1"],
    )
    saved = (tmp_path / "run" / "scan_config.yaml").read_text()
    assert "image_size: 40" in saved and "background: white" in saved


def test_demo_runs_every_stage_and_prints_a_report_that_exists(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    report = Path(result.output.rsplit("report:", 1)[1].strip())
    assert report.exists() and report.name == "index.html"
    run = report.parent
    page = report.read_text()
    links = re.findall(r"(?:href|src)='([^':]+)'", page)
    for link in ("audit/report.html", "curves.png", "model_card.md", "evaluate/test/report.html"):
        assert any(found.endswith(link) for found in links), link
    assert all((run / found).exists() for found in links)
    assert "macro avg" in result.output and "micro-F1" in page
    truth = json.loads((tmp_path / "demo" / "data" / "DEMO_TRUTH.json").read_text())
    frame = read_manifest(run)
    statuses = dict(zip(frame.path, frame.status, strict=True))
    for path, status in truth["bad"]:
        assert statuses[path] == status
    assert statuses["tree/나무 그림 03.png"] == "ok"
    assert all(statuses[p] == "ok" for p in truth["photo"])
    rows = frame.set_index("path")
    for first, second in truth["exact"] + truth["near"] + truth["conflict"]:
        assert rows.at[first, "duplicate_group"] == rows.at[second, "duplicate_group"]
    for first, second in truth["conflict"]:
        assert (
            rows.at[first, "is_label_conflict_issue"] and rows.at[second, "is_label_conflict_issue"]
        )
    for path in truth["blank"]:
        assert rows.at[path, "is_blank_issue"] and rows.at[path, "reason"] == "blank"
    assert rows["is_blank_issue"].sum() == len(truth["blank"])
    leaked_training_copy = truth["leak"][0][1]
    assert rows.at[leaked_training_copy, "is_leak_issue"]
    # the demo checks itself against what it planted and prints the result
    checked = check_against_truth(run, truth)
    assert all(row["found"] == row["planted"] for row in checked.values()), checked
    assert describe_check(checked)[0] in result.output
    assert not (checked["blank"]["unplanted"] or checked["leak"]["unplanted"])
    assert not checked["conflict"]["unplanted"]
    assert not checked["photo"]["unplanted"]
    # the near copy, a 72-px JPEG of a drawing, looks photographic on its own pixels (JPEG
    # ringing), but it is a copy of an in-domain drawing, and copies share their style
    assert rows.at["star/star_001_small.png", "out_of_domain_cleared"]
    assert "flagged as" not in result.output
    audit_page = (run / "audit" / "report.html").read_text()
    flagged = int(rows["is_out_of_domain_issue"].sum())
    assert audit_page.count("sent to review by") == 1
    assert f"({flagged} flagged, " in audit_page
    assert frame["split"].notna().sum() == frame["keep"].sum()


def test_compare_prints_each_stage_and_the_verdict(demo_run) -> None:
    _, run = demo_run
    frame = read_manifest(run)
    first, second = frame.loc[frame["status"] == "ok", "path"].iloc[:2]
    result = runner.invoke(app, ["compare", str(run), first, second])
    assert result.exit_code == 0, result.output
    for text in ("min_correlation", "max_changed_area_full", "series rule", "verdict:"):
        assert text in result.output
    missing = runner.invoke(app, ["compare", str(run), first, "no/such.png"])
    assert missing.exit_code != 0 and "is not in the manifest" in missing.output
    # --against: a leaked test picture against its training source, as leaks.csv lists it
    data, _ = demo_run
    leaks = pd.read_csv(run / "audit" / "leaks.csv")
    assert len(leaks)
    for kind, verdict in (("exact", "verdict: an exact leak"), ("near", "verdict: a leak")):
        for test_path, train_path in leaks.loc[leaks["kind"] == kind].iloc[:1, :2].to_numpy():
            args = ["compare", str(run), test_path, train_path, "--against", str(data / "test")]
            leak = runner.invoke(app, args)
            assert leak.exit_code == 0, leak.output
            assert f"reported as a leak ({kind} pair in leaks.csv)" in leak.output
            assert verdict in " ".join(leak.output.split())


def test_run_takes_the_audit_config_policy_decisions_split_and_seed(tmp_path: Path) -> None:
    """The review loop through the one-command path: decisions, a policy, an audit config,
    the validation share and the seed all reach their stages."""
    from winnow.workflows.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "data")
    training = tmp_path / "data" / "training"
    first, second = sorted(p.relative_to(training).as_posix() for p in training.rglob("*.png"))[:2]
    other_class = next(p.name for p in training.iterdir() if p.name != first.split("/")[0])
    decisions = tmp_path / "decisions.csv"
    # and a whole class dropped by a person: clean empties it, and the run says so
    emptied = next(
        p.name for p in training.iterdir() if p.name not in (first.split("/")[0], other_class)
    )
    gone = sorted(p.relative_to(training).as_posix() for p in (training / emptied).iterdir())
    decisions.write_text(
        f"path,keep,label\n{first},false,\n{second},true,{other_class}\n"
        + "".join(f"{path},false,\n" for path in gone)
    )
    (tmp_path / "audit.yaml").write_text("skip: [label_issue]\n")
    (tmp_path / "policy.yaml").write_text("out_of_domain: keep\nout_of_domain_borderline: keep\n")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "max_epochs": 1}))
    run = tmp_path / "run"
    args = ["run", str(training), "--out", str(run), "--config", str(tmp_path / "train.yaml")]
    args += [
        "--audit-config",
        str(tmp_path / "audit.yaml"),
        "--policy",
        str(tmp_path / "policy.yaml"),
    ]
    args += ["--decisions", str(decisions), "--val", "0.3", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"decisions applied from {decisions}" in output
    rows = read_manifest(run).set_index("path")
    readable = int(((rows["label"] == emptied) & (rows["status"] == "ok")).sum())
    lost = f"class '{emptied}' has no file left (of {readable}: review {readable})"
    assert readable and f"clean: {lost}" in output
    assert lost in (run / "index.html").read_text().replace("&#39;", "'")
    assert not rows.at[first, "keep"] and rows.at[first, "reason"] == "review"
    assert rows.at[second, "final_label"] == other_class
    audited = json.loads((run / "audit" / "summary.json").read_text())
    assert "label_issue" not in audited["checks"]
    assert rows["is_out_of_domain_issue"].fillna(False).astype(bool).any()
    assert not rows["reason"].astype(str).str.startswith("out_of_domain").any()  # the policy
    split = json.loads((run / "split_summary.json").read_text())
    assert (split["val"], split["test"], split["seed"]) == (0.3, 0.3, 3)
    trained = next((run / "train").iterdir())
    assert "seed: 3" in (trained / "config.yaml").read_text()
