"""The edges a newcomer meets first: a scan with no readable image, empty folders, links
that lead nowhere or in circles, and a clean summary that tells kept from dropped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.cli import app
from winnow.data.config import ScanConfig
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan

runner = CliRunner()
FAST = ScanConfig(image_size=32, workers=1)


def _picture(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_an_audit_of_a_scan_without_a_readable_image_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "a.png").write_text("not a picture")
    (data / "cat" / "b.png").write_bytes(b"")
    run = tmp_path / "run"
    scan(data, run, FAST)
    result = runner.invoke(app, ["audit", str(run)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "no readable image" in result.output
    page = (run / "audit" / "report.html").read_text()
    assert "No readable image in this scan" in page


def test_empty_class_folders_and_an_empty_data_folder_are_said(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _picture(data / "cat" / "a.png", 0)
    (data / "dog").mkdir()
    (data / "bird" / "nested").mkdir(parents=True)
    summary = scan(data, tmp_path / "run", FAST)
    assert any("2 class folder(s) hold no files" in n and "bird, dog" in n for n in summary.notes)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["scan", str(empty), "--out", str(tmp_path / "run2")])
    assert result.exit_code == 0 and "holds no files" in result.output
    summary = scan(data / "cat", tmp_path / "run3", FAST)  # files, but no class folder
    assert not any("class folder" in n for n in summary.notes)


def test_predict_gives_a_broken_link_its_row_and_says_a_loop_was_skipped(
    trained: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    _picture(folder / "a.png", 1)
    (folder / "empty.png").write_bytes(b"")
    os.symlink(tmp_path / "nowhere.png", folder / "broken.png")
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "loop")
    out = tmp_path / "new" / "p.csv"
    result = runner.invoke(
        app, ["predict", str(folder), "--weights", str(trained / "best.ckpt"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out).set_index("path")
    assert rows.loc[str(folder / "broken.png"), "status"] == "unreadable"
    assert rows.loc[str(folder / "broken.png"), "error"] == "broken symbolic link"
    # one decoder, one wording: the scan's
    assert rows.loc[str(folder / "empty.png"), "status"] == "empty"
    assert rows.loc[str(folder / "a.png"), "status"] == "ok"
    assert len(rows) == 3
    assert "link loop" in result.output


def test_clean_lists_only_dropped_files_under_dropped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(4):
        _picture(data / "cat" / f"{i}.png", i)
    Image.new("RGB", (24, 24), (9, 9, 9)).save(data / "cat" / "blank.png")
    run = tmp_path / "run"
    scan(data, run, FAST)
    run_audit(run, AuditConfig(checks=["blank"]))
    (tmp_path / "policy.yaml").write_text("blank: drop\n")
    decisions = tmp_path / "d.csv"
    decisions.write_text("path,keep,label\ncat/blank.png,true,\ncat/0.png,false,\n")
    result = runner.invoke(
        app,
        [
            "clean",
            str(run),
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--decisions",
            str(decisions),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = read_manifest(run).set_index("path")
    assert frame.at["cat/blank.png", "keep"] and not frame.at["cat/0.png", "keep"]
    dropped = result.output.split("dropped 1:")[1].split("kept by")[0]
    assert "review" in dropped and "1" in dropped  # the file a person dropped
    assert "kept by a person's decision: 1" in result.output
