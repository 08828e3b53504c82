"""evaluate / predict / explain / ONNX export on the demo run's tiny model."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from factory import gradient
from winnow.cli import app
from winnow.evaluate.runner import evaluate, write_outputs
from winnow.inference.load import WeightsError, load_model
from winnow.inference.predict import csv_header, predict

runner = CliRunner()


@pytest.fixture
def messy_test(demo_run, tmp_path: Path) -> Path:
    """The demo test folder plus a truncated file, a text file named like an image, a text
    file beside the images and an unknown class folder."""
    data, _ = demo_run
    folder = tmp_path / "test"
    shutil.copytree(data / "test", folder)
    good = next((folder / "circle").glob("*.png")).read_bytes()
    (folder / "circle" / "cut.png").write_bytes(good[: len(good) // 2])
    (folder / "star" / "readme.jpg").write_text("not an image")
    (folder / "star" / "star.txt").write_text("a description beside the images")  # a companion
    (folder / "zebra").mkdir()
    gradient().save(folder / "zebra" / "z1.png")
    shutil.rmtree(folder / "fish")
    return folder


def test_evaluate_reports_bad_files_unknown_folders_and_missing_classes(
    trained: Path, messy_test: Path, tmp_path: Path
) -> None:
    result = evaluate(messy_test, trained / "best.ckpt", workers=1)
    bad = dict(zip(result.bad_files["path"], result.bad_files["status"], strict=True))
    assert bad == {
        "circle/cut.png": "truncated",
        "star/readme.jpg": "not_image",
        "star/star.txt": "not_image",
    }
    assert result.unknown_folders == {"zebra": 1}
    assert result.missing_classes == ["fish"]
    assert result.scores["labels"] == ["car", "circle", "house", "star", "tree"]
    assert result.scores["items"] == 5 * 5
    paths = write_outputs(result, tmp_path / "eval", explain=3)
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["macro_f1"] == pytest.approx(result.scores["macro_f1"])
    assert {"macro avg", "weighted avg"} <= set(metrics["classification_report"])
    assert 0 <= metrics["accuracy"] <= 1
    assert paths["confusion"].read_bytes()[:4] == b"\x89PNG"
    page = paths["report"].read_text()
    for text in ("zebra", "circle/cut.png", "Most confused pairs", "classification_report"):
        assert text in page
    # named like an image, it is listed; the text file beside the images is only counted
    assert "star/readme.jpg" in page and "star/star.txt" not in page
    assert "1 other files are not images and not named like images (.txt 1)" in page
    assert "<b>2</b>files that can&#39;t be read" in page
    assert len(list((tmp_path / "eval" / "explain").glob("*.png"))) == min(3, len(result.pixels))


def test_test_files_that_duplicate_training_are_scored_both_ways(trained: Path, demo_run) -> None:
    data, _ = demo_run
    result = evaluate(data / "test", trained / "best.ckpt", workers=1)
    flagged = set(result.rows[result.rows["duplicates_training"]]["path"])
    assert flagged == {"fish/fish_from_training.png"}
    assert result.scores_without_leaks["items"] == result.scores["items"] - 1


def test_evaluate_command_prints_the_classification_report(
    trained: Path, messy_test: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    result = runner.invoke(
        app, ["evaluate", "--data", str(messy_test), "--weights", str(trained), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for text in (
        "precision",
        "recall",
        "f1-score",
        "support",
        "macro avg",
        "weighted avg",
        "micro-F1",
        "not a class of the model",
        "truncated",
        "1 other files are not images (.txt 1); left out.",
    ):
        assert text in result.output
    assert "star/star.txt" not in result.output
    assert (out / "report.html").exists() and (out / "confusion_matrix.png").exists()
    # confidence: ECE, the reliability diagram and the threshold-coverage table
    metrics = json.loads((out / "metrics.json").read_text())
    calibration = metrics["calibration"]
    assert 0 <= calibration["ece"] <= 1 and calibration["items"] == metrics["scored"]
    assert sum(b["items"] for b in calibration["bins"]) == metrics["scored"]
    assert calibration["coverage"][0]["coverage"] == 1.0
    page = (out / "report.html").read_text()
    assert "Expected calibration error" in page and "reliability diagram" in page
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    missing = runner.invoke(app, ["evaluate", "--data", str(messy_test), "--weights", "nope.ckpt"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_evaluate_command_counts_the_bad_files_it_does_not_list(
    trained: Path, messy_test: Path, tmp_path: Path, monkeypatch
) -> None:
    import winnow.cli.evaluate

    monkeypatch.setattr(winnow.cli.evaluate, "BAD_FILES_SHOWN", 1)
    out = tmp_path / "e"
    result = runner.invoke(
        app, ["evaluate", "--data", str(messy_test), "--weights", str(trained), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 files could not be read" in result.output
    assert "circle/cut.png" in result.output and "star/readme.jpg" not in result.output
    assert "… and 1 more in" in result.output and "metrics.json" in result.output
    listed = json.loads((out / "metrics.json").read_text())["bad_files"]
    assert {"circle/cut.png", "star/readme.jpg"} <= {f["path"] for f in listed}


def test_predict_writes_top_k_and_marks_uncertain(trained: Path, demo_run, tmp_path: Path) -> None:
    data, _ = demo_run
    files = sorted((data / "test" / "star").glob("*.png"))[:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "preds.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            *map(str, files),
            str(broken),
            "--weights",
            str(trained),
            "--threshold",
            "1.0",
            "--top-k",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "4 files: 0 confident, 3 uncertain (below 1.0), 1 unreadable; median top-1" in said
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["path"] for r in rows] == [*map(str, files), str(broken)]
    median = sorted(float(r["confidence"]) for r in rows[:3])[1]
    assert f"median top-1 probability {median:.2f}" in said
    assert all(r["uncertain"] == "True" for r in rows[:3])  # nothing is 100 % sure
    assert list(rows[0]) == csv_header(2)
    assert rows[0]["prediction_2"] != rows[0]["prediction"]
    assert float(rows[0]["confidence"]) >= float(rows[0]["confidence_2"])
    # an unreadable file has no prediction, so it is neither confident nor uncertain
    assert rows[-1]["status"] != "ok" and rows[-1]["prediction"] == ""
    assert rows[-1]["uncertain"] == "" and rows[-1]["error"]
    sure = predict(files, trained / "best.ckpt", threshold=0.0)
    assert not any(p.uncertain for p in sure)
    # --threshold 0: the summary does not call the predictions confident
    plain = runner.invoke(
        app,
        [
            "predict",
            *map(str, files),
            "--weights",
            str(trained),
            "-o",
            str(out),
            "--threshold",
            "0",
        ],
    )
    assert "3 predicted (--threshold 0: none marked uncertain)" in " ".join(plain.output.split())
    # the stated default threshold is 0.7
    default = runner.invoke(
        app, ["predict", *map(str, files), "--weights", str(trained), "-o", str(out)]
    )
    assert "(below 0.7)" in " ".join(default.output.split())


def test_onnx_export_matches_torch_and_predicts_without_torch(
    trained: Path, demo_run, tmp_path: Path
) -> None:
    data, _ = demo_run
    # a checkpoint with a confidence map, so that the ONNX side has one to apply
    checkpoint = torch.load(trained / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["winnow"]["confidence_map"] = {"slope": 1.7, "bias": -0.4}
    mapped = tmp_path / "mapped.ckpt"
    torch.save(checkpoint, mapped)
    onnx_file = tmp_path / "new" / "folder" / "model.onnx"  # made as needed
    env_dirs = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)}
    result = runner.invoke(app, ["export-onnx", str(mapped), str(onnx_file)], env=env_dirs)
    assert result.exit_code == 0, result.output
    diff = float(result.output.split("max abs diff:")[1].split()[0])
    assert diff <= 1e-4
    files = sorted((data / "test" / "house").glob("*.png"))
    code = (
        "import sys, json; sys.modules['torch'] = None; "
        "from pathlib import Path; from winnow.inference.predict import predict; "
        f"preds = predict([Path(p) for p in {list(map(str, files))!r}], Path({str(onnx_file)!r}));"
        "print(json.dumps([[p.labels, p.probabilities] for p in preds]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env_dirs},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    onnx_preds = json.loads(done.stdout)
    torch_preds = predict(files, mapped)
    assert load_model(onnx_file).confidence_map == {"slope": 1.7, "bias": -0.4}  # metadata
    unmapped = predict(files, trained / "best.ckpt")
    for (labels, probs), expected, plain in zip(onnx_preds, torch_preds, unmapped, strict=True):
        assert labels == expected.labels == plain.labels  # the map never changes the order
        assert np.allclose(probs, expected.probabilities, atol=1e-4)
    assert not np.allclose(
        [p.probabilities[0] for p in torch_preds], [p.probabilities[0] for p in unmapped]
    )


def test_explain_writes_one_titled_png_per_image(trained: Path, demo_run, tmp_path: Path) -> None:
    data, _ = demo_run
    files = sorted((data / "test" / "tree").glob("*.png"))[:2]
    out = tmp_path / "cams"
    result = runner.invoke(
        app, ["explain", *map(str, files), "--weights", str(trained), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_weights_that_are_not_ours_are_refused_clearly(tmp_path: Path) -> None:
    import torch

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(WeightsError, match="not written by 'winnow train'"):
        load_model(foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"nope")
    with pytest.raises(WeightsError, match="not a readable"):
        load_model(garbage)


def test_a_folder_made_only_of_training_files_is_scored_and_flagged(
    trained: Path, demo_run, tmp_path: Path
) -> None:
    data, _ = demo_run
    folder = tmp_path / "copies"
    for label in ("circle", "star"):
        (folder / label).mkdir(parents=True)
        for path in sorted((data / "training" / label).glob(f"{label}_00*.png"))[:3]:
            shutil.copy(path, folder / label / path.name)
    result = evaluate(folder, trained / "best.ckpt", workers=1)
    assert result.rows["duplicates_training"].all()
    assert result.scores["items"] == 6 and result.scores_without_leaks is None


def test_undecodable_names_and_new_output_folders(trained: Path, demo_run, tmp_path: Path) -> None:
    """A file name that is not UTF-8 is written escaped (CSV, PNG names and titles); an
    output folder that does not exist yet is created; one that can't be is a message."""
    data, _ = demo_run
    folder = tmp_path / "in"
    folder.mkdir()
    image = sorted((data / "test" / "house").glob("*.png"))[0].read_bytes()
    (folder / "ok.png").write_bytes(image)
    (Path(os.fsdecode(bytes(folder)) + "/" + os.fsdecode(b"bad\xff.png"))).write_bytes(image)
    out = tmp_path / "new" / "deeper" / "preds.csv"
    result = runner.invoke(
        app, ["predict", str(folder), "--weights", str(trained), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")  # valid UTF-8
    assert "bad\\xff.png" in text and text.count(",ok,") == 2
    cams = tmp_path / "cams" / "new"
    result = runner.invoke(
        app, ["explain", str(folder), "--weights", str(trained), "--out", str(cams)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in cams.glob("*.png")) == ["0000_bad\\xff.png", "0001_ok.png"]
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = runner.invoke(
        app, ["predict", str(folder), "--weights", str(trained), "--out", str(blocker / "p.csv")]
    )
    assert result.exit_code == 2 and "its folder can't be created" in " ".join(
        result.output.split()
    )
    assert "Traceback" not in result.output


def test_explain_class_draws_another_class_and_refuses_an_unknown_one(
    trained: Path, demo_run, tmp_path: Path
) -> None:
    from winnow.inference.explain import explain_files

    data, _ = demo_run
    image = sorted((data / "test" / "tree").glob("*.png"))[0]
    loaded = load_model(trained / "best.ckpt")
    ((_, _, own),) = explain_files([image], loaded, tmp_path / "own")
    other = next(c for c in loaded.classes if c != own["predicted"])
    ((_, png, answer),) = explain_files([image], loaded, tmp_path / "other", other)
    assert answer["predicted"] == own["predicted"] and answer["explained"] == other
    assert answer["explained_probability"] < answer["confidence"]
    assert png.read_bytes() != next((tmp_path / "own").glob("*.png")).read_bytes()
    said = runner.invoke(
        app,
        ["explain", str(image), "--weights", str(trained), "--out", str(tmp_path / "c")]
        + ["--class", other],
    )
    assert said.exit_code == 0 and f"evidence for {other}" in said.output, said.output
    unknown = runner.invoke(
        app, ["explain", str(image), "--weights", str(trained), "--class", "unicorn"]
    )
    assert unknown.exit_code == 2 and "has no class 'unicorn'" in unknown.output
    assert "Traceback" not in unknown.output


def test_the_old_onnx_spelling_still_works_and_names_the_new_verb(tmp_path: Path) -> None:
    missing = tmp_path / "no.ckpt"
    old = runner.invoke(
        app, ["export", "--weights", str(missing), "--onnx", str(tmp_path / "m.onnx")]
    )
    said = " ".join(old.output.split())
    assert f"is now 'winnow export-onnx {missing} {tmp_path / 'm.onnx'}'" in said
    assert old.exit_code == 2 and "Traceback" not in old.output  # it went on to export
    half = runner.invoke(app, ["export", "--weights", str(missing)])
    assert half.exit_code == 2 and "winnow export-onnx WEIGHTS OUT.onnx" in half.output
    nothing = runner.invoke(app, ["export"])
    assert nothing.exit_code == 2 and "winnow export RUN DEST" in " ".join(nothing.output.split())


def test_the_evaluation_page_sorts_its_per_class_table_from_the_keyboard(
    trained: Path, messy_test: Path, tmp_path: Path, browser_page
) -> None:
    result = evaluate(messy_test, trained / "best.ckpt", workers=1)
    paths = write_outputs(result, tmp_path / "eval", explain=0)
    page = browser_page
    page.goto(paths["report"].resolve().as_uri())
    table = page.locator("#per-class tbody")

    def column(index: int) -> list[str]:
        return [c.strip() for c in table.locator(f"tr td:nth-child({index})").all_inner_texts()]

    assert column(1) == result.scores["labels"]  # the report's order first
    f1 = page.locator("#per-class th button", has_text="F1")
    f1.focus()
    page.keyboard.press("Enter")  # highest F1 first
    values = [float(v) for v in column(4)]
    assert values == sorted(values, reverse=True)
    page.keyboard.press("Enter")  # again: lowest first
    values = [float(v) for v in column(4)]
    assert values == sorted(values)
    # every class keeps its own numbers through the sort
    report = result.scores["report"]
    for name, value in zip(column(1), column(4), strict=True):
        assert float(value) == pytest.approx(report[name]["f1-score"], abs=5e-4)
