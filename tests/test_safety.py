"""Nothing lost, nothing escapes: export never writes through a file or outside DEST, the
source folder is fingerprinted around every case, a scan killed while the pixel settings
change recovers, every manifest writer holds RUN's lock, labels are folder names, and
`--resume` never unpickles code."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from factory import fingerprint
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.cli import app
from winnow.curate.clean import CleanError, run_clean
from winnow.curate.export import _place, export_clean, export_plan
from winnow.curate.split import run_split
from winnow.data.cache import PixelCache
from winnow.data.config import ScanConfig
from winnow.data.labels import LabelError, check_label, label_problem
from winnow.data.lock import ManifestChangedError, RunBusyError, run_lock
from winnow.data.manifest import manifest_path, read_manifest, write_manifest
from winnow.data.scan import scan

runner = CliRunner()
FAST = ScanConfig(image_size=32, workers=1)
QUICK_AUDIT = AuditConfig(checks=["exact_duplicate", "odd_size"])


def _picture(path: Path, colour: tuple[int, int, int], mark: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((24, 24, 3), colour, np.uint8)
    pixels[mark % 24, :, :] = 255 - np.array(colour, np.uint8)  # no two files alike
    Image.fromarray(pixels).save(path)


def _cleaned_run(data: Path, run: Path, decisions: Path | None = None) -> None:
    scan(data, run, FAST)
    run_audit(run, QUICK_AUDIT)
    run_clean(run, decisions_path=decisions)


def _decisions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    pd.DataFrame(rows, columns=["path", "keep", "label"]).to_csv(path, index=False)
    return path


def _bytes_by_name(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize("copy", [False, True])
def test_a_relabel_onto_a_namesake_exports_both_and_never_touches_the_source(
    tmp_path: Path, copy: bool
) -> None:
    data = tmp_path / "data"
    _picture(data / "cat" / "img001.png", (200, 30, 30), 1)
    _picture(data / "cat" / "img002.png", (200, 60, 30), 2)
    _picture(data / "dog" / "img001.png", (30, 30, 200), 3)
    _picture(data / "dog" / "img002.png", (30, 60, 200), 4)
    before = fingerprint(data)
    decisions = _decisions(tmp_path / "d.csv", [("cat/img001.png", "true", "dog")])
    _cleaned_run(data, tmp_path / "run", decisions)
    result = export_clean(tmp_path / "run", tmp_path / "out", copy=copy)

    assert fingerprint(data) == before
    exported = _bytes_by_name(tmp_path / "out")
    assert len(exported) == 4 and result["files"] == 4 and result["renamed"] == 1
    # the dog that kept its label keeps its name; the relabelled cat gets a distinct one
    assert exported["dog/img001.png"] == (data / "dog" / "img001.png").read_bytes()
    renamed = [name for name in exported if name.startswith("dog/img001~")]
    assert len(renamed) == 1
    assert exported[renamed[0]] == (data / "cat" / "img001.png").read_bytes()
    index = pd.read_csv(tmp_path / "out" / ".winnow-export.csv")
    assert set(index["source"]) == {p for p in before if p.endswith(".png")}
    assert (result["hard_links"], result["copies"]) == ((0, 4) if copy else (4, 0))


def test_flattened_sub_folders_that_meet_a_file_name_stay_apart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _picture(data / "cat" / "sub" / "x.png", (200, 30, 30), 1)
    _picture(data / "cat" / "sub__x.png", (30, 200, 30), 2)
    _picture(data / "dog" / "y.png", (30, 30, 200), 3)
    before = fingerprint(data)
    _cleaned_run(data, tmp_path / "run")
    export_clean(tmp_path / "run", tmp_path / "out")
    assert fingerprint(data) == before
    exported = _bytes_by_name(tmp_path / "out")
    sources = {
        (data / "cat" / "sub" / "x.png").read_bytes(),
        (data / "cat" / "sub__x.png").read_bytes(),
    }
    assert {v for k, v in exported.items() if k.startswith("cat/")} == sources
    assert len([k for k in exported if k.startswith("cat/")]) == 2


def test_export_names_are_unique_ignoring_case_and_deterministic() -> None:
    paths = ["a/X.png", "a/x.png", "b/x.png", "a/s/x.png", "a/s__x.png"]
    plan = export_plan(paths, ["a", "a", "b", "a", "a"], ["a", "a", "a", "a", "a"])
    folded = [(label.casefold(), name.casefold()) for _, label, name in plan]
    assert len(set(folded)) == len(paths)
    assert plan == export_plan(paths, ["a", "a", "b", "a", "a"], ["a"] * 5)
    assert dict((p, n) for p, _, n in plan)["a/X.png"] == "X.png"  # the first keeps its name


def test_placing_never_writes_through_an_existing_file(tmp_path: Path) -> None:
    source, other = tmp_path / "source.png", tmp_path / "other.png"
    _picture(source, (10, 20, 30), 1)
    _picture(other, (90, 20, 30), 2)
    original = source.read_bytes()
    target = tmp_path / "target.png"
    os.link(source, target)  # what an earlier hard-link export leaves
    for copy in (False, True):
        with pytest.raises(CleanError, match="nothing was written through it"):
            _place(other, target, copy)
    symlink = tmp_path / "link.png"
    symlink.symlink_to(source)
    with pytest.raises(CleanError):
        _place(other, symlink, copy=True)
    assert source.read_bytes() == original


@pytest.mark.parametrize(
    "label", ["../../../../escaped", "/etc", "a/b", "a\\b", "..", ".", "", ".hidden", "x\x00y"]
)
def test_a_label_must_be_one_plain_folder_name(label: str) -> None:
    assert label_problem(label) is not None
    with pytest.raises(LabelError, match="cannot be a class folder name"):
        check_label(label, "a test")


def test_good_labels_pass() -> None:
    for label in ("dog", "고양이", "hot dog", "a:b", "x" * 80):
        assert check_label(label, "a test") == label


def test_a_decisions_label_cannot_escape_the_export_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i, label in enumerate(("cat", "dog")):
        _picture(data / label / f"{label}_00.png", (40 * i, 100, 30), i)
    before = fingerprint(data)
    run = tmp_path / "deep" / "er" / "run"
    scan(data, run, FAST)
    run_audit(run, QUICK_AUDIT)
    decisions = _decisions(tmp_path / "d.csv", [("cat/cat_00.png", "true", "../../../../escaped")])
    result = runner.invoke(app, ["clean", str(run), "--decisions", str(decisions)])
    assert result.exit_code == 2 and "cannot be a class folder name" in result.output
    assert "Traceback" not in result.output

    # a manifest that says so anyway (written by hand or an older winnow) is refused by export
    run_clean(run)
    frame = read_manifest(run)
    frame.loc[frame["path"] == "cat/cat_00.png", "final_label"] = "../../../../escaped"
    write_manifest(run, frame)
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(LabelError):
        export_clean(run, out)
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*"))
    assert fingerprint(data) == before


# ------------------------------------------------------------------ scan with new settings


def _many(root: Path, count: int) -> None:
    rng = np.random.default_rng(1)
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(folder / f"{i:03d}.png")


def _rescan_and_die(data: Path, run: Path, config: ScanConfig) -> None:
    def on_progress(state) -> None:
        if state.parts_written >= 1:
            os.kill(os.getpid(), signal.SIGKILL)

    scan(data, run, config, on_progress=on_progress)


@pytest.mark.timeout(120)
def test_a_scan_killed_while_the_pixel_settings_change_recovers(tmp_path: Path) -> None:
    data, run, fresh = tmp_path / "data", tmp_path / "run", tmp_path / "fresh"
    _many(data, 600)
    old = ScanConfig(image_size=32, detail_size=16, workers=1, shard_mb=1)  # 273 a shard
    new = old.model_copy(update={"image_size": 24})
    scan(data, run, old)
    child = multiprocessing.get_context("fork").Process(
        target=_rescan_and_die, args=(data, run, new)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    # the run is still the old, consistent one
    frame = read_manifest(run)
    cache = PixelCache(run)
    assert cache.image_size == 32
    pixels = cache.take(frame["cache_shard"].to_numpy(int), frame["cache_index"].to_numpy(int))
    assert pixels.shape == (600, 32, 32, 3)

    resumed = scan(data, run, new)
    per_shard = (1 << 20) // ((24 * 24 + 16 * 16) * 3)
    assert resumed.reused == per_shard and resumed.decoded == 600 - per_shard
    scan(data, fresh, new)
    a, b = read_manifest(run), read_manifest(fresh)
    got = PixelCache(run).take(a["cache_shard"].to_numpy(int), a["cache_index"].to_numpy(int))
    want = PixelCache(fresh).take(b["cache_shard"].to_numpy(int), b["cache_index"].to_numpy(int))
    assert got.shape == (600, 24, 24, 3) and np.array_equal(got, want)
    # and back to the old settings: nothing of the new size is taken for the old
    again = scan(data, run, old)
    assert again.decoded == 600


# ------------------------------------------------------------------ one writer per RUN


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for i in range(6):
        _picture(data / ("cat" if i % 2 else "dog") / f"{i}.png", (30 * i, 90, 60), i)
    run = tmp_path / "run"
    _cleaned_run(data, run)
    return run


def test_every_manifest_writer_waits_for_the_lock(small_run: Path) -> None:
    before = manifest_path(small_run).read_bytes()
    with run_lock(small_run, "scan"):
        for attempt in (
            lambda: run_audit(small_run, QUICK_AUDIT),
            lambda: run_clean(small_run),
            lambda: run_split(small_run),
        ):
            with pytest.raises(RunBusyError, match="'winnow scan'"):
                attempt()
        result = runner.invoke(app, ["audit", str(small_run)])
        assert result.exit_code == 2 and "Another winnow process" in result.output
    assert manifest_path(small_run).read_bytes() == before
    run_split(small_run)  # released: it works again


def _failing(check, action):
    def run(context):
        action(context)
        raise RuntimeError("this check broke")

    return dataclasses.replace(check, run=run)


def test_an_audit_does_not_write_over_a_manifest_replaced_under_it(
    small_run: Path, monkeypatch
) -> None:
    import winnow.audit.checks as checks

    replacement = read_manifest(small_run).iloc[:2]

    def replace_manifest(context) -> None:  # a writer that ignores the lock
        write_manifest(small_run, replacement)

    patched = tuple(
        _failing(c, replace_manifest) if c.name == "odd_size" else c for c in checks.BUILTIN_CHECKS
    )
    monkeypatch.setattr(checks, "BUILTIN_CHECKS", patched)
    with pytest.raises(ManifestChangedError, match="changed while"):
        run_audit(small_run, QUICK_AUDIT)
    assert len(read_manifest(small_run)) == 2


def test_audit_exits_non_zero_when_a_check_failed(small_run: Path, monkeypatch) -> None:
    import winnow.audit.checks as checks

    patched = tuple(
        _failing(c, lambda context: None) if c.name == "odd_size" else c
        for c in checks.BUILTIN_CHECKS
    )
    monkeypatch.setattr(checks, "BUILTIN_CHECKS", patched)
    result = runner.invoke(app, ["audit", str(small_run), "--checks", "exact_duplicate,odd_size"])
    assert result.exit_code == 1, result.output
    assert "check(s) failed (odd_size)" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ resume loads safely

CRAFTED = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({{"state_dict": {{}}, "x": Payload()}}, sys.argv[1])
"""


@pytest.mark.slow
def test_resume_never_runs_code_from_a_crafted_checkpoint(trained: Path, tmp_path: Path) -> None:
    import shutil

    out_dir = trained.parent / "crafted"
    shutil.copytree(trained, out_dir)
    marker = tmp_path / "code-ran"
    script = tmp_path / "craft.py"
    script.write_text(CRAFTED.format())
    subprocess.run(
        [sys.executable, str(script), str(out_dir / "last.ckpt"), str(marker)], check=True
    )
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-c", "from winnow.cli import main; main()"]
    result = subprocess.run(
        [*cli, "train", "--resume", str(out_dir)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert not marker.exists()
    assert "cannot be resumed from" in result.stderr and "Traceback" not in result.stderr
    assert "weights_only=False" not in result.stderr

    (out_dir / "last.ckpt").write_bytes(os.urandom(4096))  # damaged
    result = subprocess.run(
        [*cli, "train", "--resume", str(out_dir)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "cannot be resumed from" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ a newcomer's first edges


def test_help_shows_every_text_default(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    scan_help = runner.invoke(app, ["scan", "--help"]).output
    for default in ("(default: white)", "(default: 128)", "(default: all cores)"):
        assert default in scan_help
    train_help = " ".join(runner.invoke(app, ["train", "--help"]).output.split())
    from winnow.training.config import TrainConfig

    defaults = TrainConfig()  # the help states the real defaults, whatever they become
    for text in (defaults.model, defaults.imbalance, defaults.augment):
        assert f"(default: {text})" in train_help


def test_version() -> None:
    import winnow

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"winnow {winnow.__version__}"


def test_near_duplicates_on_fewer_images_than_neighbours(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i, label in enumerate(["cat", "cat", "dog", "dog", "dog"]):
        _picture(data / label / f"{i}.png", (60 * (i % 3), 90, 200), i)
    run = tmp_path / "run"
    scan(data, run, FAST)
    summary = run_audit(run, AuditConfig(checks=["exact_duplicate", "near_duplicate"]))
    assert summary["checks"]["near_duplicate"]["status"] == "ok"
    one = tmp_path / "one"
    _picture(one / "cat" / "0.png", (10, 10, 10), 0)
    scan(one, tmp_path / "run1", FAST)
    summary = run_audit(
        tmp_path / "run1", AuditConfig(checks=["exact_duplicate", "near_duplicate"])
    )
    assert summary["checks"]["near_duplicate"]["status"] == "ok"


def test_split_says_what_to_run_first(tmp_path: Path, small_run: Path) -> None:
    result = runner.invoke(app, ["split", str(tmp_path / "never-scanned")])
    assert result.exit_code == 2 and "winnow scan" in result.output
    assert "Traceback" not in result.output
    run_audit(small_run, QUICK_AUDIT)  # a re-audit replaces the clean's columns
    result = runner.invoke(app, ["split", str(small_run)])
    assert result.exit_code == 2 and "changed since the last clean" in result.output


def test_weights_errors_say_what_the_file_is(tmp_path: Path) -> None:
    picture = tmp_path / "model.png"
    _picture(picture, (1, 2, 3), 0)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, np.uint8).tobytes())
    zipped = tmp_path / "bad.ckpt"
    zipped.write_bytes(b"PK\x03\x04 not really a zip")
    for weights, says in ((picture, "a PNG image"), (junk, "no format"), (zipped, "safely")):
        result = runner.invoke(app, ["predict", str(picture), "--weights", str(weights)])
        assert result.exit_code == 2 and says in result.output, result.output
        assert "weights_only" not in result.output and "Traceback" not in result.output
        assert "Weights are a best.ckpt" in result.output


def test_a_five_image_folder_runs_and_says_when_validation_is_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i, label in enumerate(["cat", "cat", "dog", "dog", "dog"]):
        _picture(data / label / f"{i}.png", (60 * (i % 3), 90, 200), i)
    result = runner.invoke(
        app, ["run", str(data), "--out", str(tmp_path / "r"), "--max-minutes", "0.05"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "validation split is empty: 5 training images" in result.output
    assert "--val 0.5 --test 0" in result.output
    # what the message says to do: a larger validation share, then training
    result = runner.invoke(app, ["split", str(tmp_path / "r"), "--val", "0.5", "--test", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", str(tmp_path / "r"), "--max-minutes", "0.05"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
