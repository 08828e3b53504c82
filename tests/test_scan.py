"""`winnow scan`: the manifest contract, a read-only source, incremental and crash-safe runs."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from factory import fingerprint, gradient
from winnow.data.cache import PixelCache, existing_shards
from winnow.data.config import ScanConfig
from winnow.data.lock import RunBusyError
from winnow.data.manifest import SCAN_SCHEMA, STATUSES, read_manifest, read_table
from winnow.data.scan import ScanError, scan

FAST = ScanConfig(image_size=32, workers=1)


def test_manifest_contract(messy, tmp_path: Path) -> None:
    data, expected = messy
    summary = scan(data, tmp_path / "run", FAST)
    table = read_table(tmp_path / "run")
    assert table.schema.equals(SCAN_SCHEMA, check_metadata=False)
    frame = read_manifest(tmp_path / "run")
    assert dict(zip(frame.path, frame.status, strict=True)) == expected  # one row per file
    assert set(frame.status) <= set(STATUSES)
    assert frame.path.is_unique
    ok, bad = frame[frame.status == "ok"], frame[frame.status != "ok"]
    assert ok.error.isna().all() and bad.error.notna().all()
    for column in ("sha256", "format", "width", "height", "phash", "dhash", "cache_shard"):
        assert ok[column].notna().all(), column
    assert bad.cache_shard.isna().all()
    assert list(frame.label) == [p.split("/")[0] for p in frame.path]
    cache = PixelCache(tmp_path / "run")
    pixels = cache.take(ok.cache_shard.to_numpy(int), ok.cache_index.to_numpy(int))
    assert pixels.shape == (len(ok), 32, 32, 3)
    red = ok[ok.path == "red/red_0.png"].iloc[0]
    assert cache.get(red.cache_shard, red.cache_index)[16, 16].tolist() == [220, 20, 20]
    assert summary.hidden_skipped == 2
    assert summary.by_status["ok"] == len(ok)
    assert {b["path"] for b in summary.bad_files} == set(bad.path)


def test_source_folder_is_never_written(messy, tmp_path: Path) -> None:
    data, _ = messy
    before = fingerprint(data)
    scan(data, tmp_path / "run", ScanConfig(image_size=32, workers=2))
    scan(data, tmp_path / "run", ScanConfig(image_size=32, workers=2))
    assert fingerprint(data) == before


def test_run_folder_inside_data_is_refused(messy) -> None:
    data, _ = messy
    with pytest.raises(ScanError, match="never writes into your data"):
        scan(data, data / "run", FAST)
    assert not (data / "run").exists()


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="does not exist"):
        scan(tmp_path / "nope", tmp_path / "run", FAST)


def test_rescan_reuses_unchanged_files_and_decodes_only_changes(messy, tmp_path: Path) -> None:
    data, _ = messy
    run = tmp_path / "run"
    first = scan(data, run, FAST)
    again = scan(data, run, FAST)
    assert again.decoded == 0 and again.reused == first.files - 0
    assert read_table(run).equals(pq.read_table(run / "manifest.parquet"))

    gradient(30, 30).save(data / "red" / "red_0.png")  # changed content
    gradient(20, 40).save(data / "blue" / "new.png")  # new file
    (data / "blue" / "blue_1.png").unlink()  # deleted file
    third = scan(data, run, FAST)
    assert third.decoded == 2
    frame = read_manifest(run)
    assert "blue/blue_1.png" not in set(frame.path) and "blue/new.png" in set(frame.path)
    changed = frame[frame.path == "red/red_0.png"].iloc[0]
    assert changed.width == 30
    pixel = PixelCache(run).get(changed.cache_shard, changed.cache_index)
    assert pixel.std() > 10  # the gradient, not the old solid red


def test_changed_cache_settings_decode_again(messy, tmp_path: Path) -> None:
    data, _ = messy
    run = tmp_path / "run"
    scan(data, run, FAST)
    summary = scan(data, run, ScanConfig(image_size=48, workers=1))
    assert summary.reused == 0
    frame = read_manifest(run)
    ok = frame[frame.status == "ok"]
    cache = PixelCache(run)
    assert cache.image_size == 48
    assert cache.take(ok.cache_shard.to_numpy(int), ok.cache_index.to_numpy(int)).shape[1:] == (
        48,
        48,
        3,
    )
    referenced = set(ok.cache_shard.astype(int))
    assert set(existing_shards(run / "cache")) == referenced  # old shards removed
    assert set(existing_shards(run / "cache", "detail")) == referenced


def test_a_detail_shard_left_without_its_pixels_is_removed(messy, tmp_path: Path) -> None:
    data, _ = messy
    run = tmp_path / "run"
    scan(data, run, FAST)
    orphan = run / "cache" / "detail-000999.npy"  # as a scan killed between the two writes
    orphan.write_bytes(b"")
    scan(data, run, FAST)
    assert not orphan.exists()


def test_parallel_and_serial_scans_agree(messy, tmp_path: Path) -> None:
    data, _ = messy
    scan(data, tmp_path / "serial", FAST)
    scan(data, tmp_path / "parallel", ScanConfig(image_size=32, workers=2))
    columns = [c for c in SCAN_SCHEMA.names if not c.startswith("cache_")]
    serial = read_table(tmp_path / "serial").select(columns)
    parallel = read_table(tmp_path / "parallel").select(columns)
    assert serial.equals(parallel)


def test_a_second_scan_of_the_same_run_is_refused(messy, tmp_path: Path) -> None:
    import fcntl

    data, _ = messy
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(RunBusyError, match="Another winnow process"):
            scan(data, run, FAST)


_SMALL_SHARDS = ScanConfig(image_size=32, detail_size=16, workers=1, shard_mb=1)


def _scan_and_die_after_parts(data: Path, run: Path, parts: int) -> None:
    def on_progress(state) -> None:
        if state.parts_written >= parts:
            os.kill(os.getpid(), signal.SIGKILL)

    scan(data, run, _SMALL_SHARDS, on_progress=on_progress)


def _many_images(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(folder / f"{i:03d}.png")


@pytest.mark.timeout(120)
def test_a_scan_killed_half_way_ends_correct_when_rerun(tmp_path: Path) -> None:
    data, run, clean = tmp_path / "data", tmp_path / "run", tmp_path / "clean"
    _many_images(data, 800)  # shard_mb=1 at 32 + 16 px → 273 images a shard → 3 parts
    child = multiprocessing.get_context("fork").Process(
        target=_scan_and_die_after_parts, args=(data, run, 1)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert not (run / "manifest.parquet").exists()
    assert len(list((run / ".scan-parts").glob("part-*.parquet"))) == 1

    config = _SMALL_SHARDS
    resumed = scan(data, run, config)
    assert resumed.reused == 273 and resumed.decoded == 800 - 273
    scan(data, clean, config)
    columns = [c for c in SCAN_SCHEMA.names if not c.startswith("cache_")]
    assert read_table(run).select(columns).equals(read_table(clean).select(columns))
    a, b = read_manifest(run), read_manifest(clean)
    pixels_a = PixelCache(run).take(a.cache_shard.to_numpy(int), a.cache_index.to_numpy(int))
    pixels_b = PixelCache(clean).take(b.cache_shard.to_numpy(int), b.cache_index.to_numpy(int))
    assert np.array_equal(pixels_a, pixels_b)
    detail_a = PixelCache(run).take_detail(a.cache_shard.to_numpy(int), a.cache_index.to_numpy(int))
    detail_b = PixelCache(clean).take_detail(
        b.cache_shard.to_numpy(int), b.cache_index.to_numpy(int)
    )
    assert detail_a.shape == (800, 16, 16, 3) and np.array_equal(detail_a, detail_b)
    assert not list((run / ".scan-parts").iterdir())


def test_a_newer_decoder_decodes_everything_again(messy, tmp_path: Path, monkeypatch) -> None:
    import winnow.data.config

    data, _ = messy
    run = tmp_path / "run"
    scan(data, run, FAST)
    monkeypatch.setattr(
        winnow.data.config, "DECODER_VERSION", winnow.data.config.DECODER_VERSION + 1
    )
    assert scan(data, run, FAST).reused == 0
    assert scan(data, run, FAST).decoded == 0


def _dies_on_a_killer(task, config, file_hash):
    from winnow.data.inspection import inspect_file

    if "killer" in task.path:
        os._exit(3)  # as a decoder killed for memory, or crashing in native code, would
    return inspect_file(task, config, file_hash)


def test_a_file_that_kills_its_decoding_process_is_a_row_and_the_rest_is_decoded(
    tmp_path: Path,
) -> None:
    from winnow.data.engine import LocalEngine
    from winnow.data.inspection import KILLED_REASON, _decode_in_pool
    from winnow.data.walk import WalkStats, iter_files

    _many_images(tmp_path / "data", 150)  # 3 decoding batches of small files
    gradient(24).save(tmp_path / "data" / "a" / "killer.png")
    tasks = list(iter_files(tmp_path / "data", WalkStats()))
    with LocalEngine(2) as engine:
        results = list(_decode_in_pool(engine, tasks, FAST, True, _dies_on_a_killer))
    rows = {row["path"]: row for row, _, _ in results}
    assert sorted(rows) == sorted(task.path for task in tasks)  # every file, once
    assert len(results) == len(tasks)
    killer = rows["a/killer.png"]
    assert (killer["status"], killer["error"]) == ("corrupt", KILLED_REASON)
    assert all(row["status"] == "ok" for path, row in rows.items() if path != "a/killer.png")
    decoded = [pixels for row, pixels, _ in results if row["status"] == "ok"]
    assert len(decoded) == len(tasks) - 1 and all(p is not None for p in decoded)
