"""`--engine ray`: scan and audit on Ray give what the local engine gives."""

from __future__ import annotations

import json
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_info
from typer.testing import CliRunner

from conftest import TINY_TRAIN
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.cli import app
from winnow.data import engine as engine_module
from winnow.data.cache import PixelCache
from winnow.data.config import ScanConfig
from winnow.data.engine import (
    EngineError,
    LocalEngine,
    WorkersLost,
    _check_reachable,
    open_engine,
)
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan
from winnow.workflows.demo import make_demo_dataset

runner = CliRunner()
PLACEMENT = ("cache_shard", "cache_index")  # where a row's pixels lie: decoding order decides


@pytest.fixture(scope="module")
def ray_engine():
    """One local Ray for the module (2 CPUs); commands run inside it join it."""
    with open_engine("ray", cpus=2) as engine:
        yield engine


def _scan_and_audit(data: Path, run: Path, engine: str) -> tuple[object, dict]:
    summary = scan(data / "training", run, ScanConfig(engine=engine))
    # small verification chunks: the demo's ~900 candidate pairs become 15 engine tasks,
    # more than either engine keeps in flight at once
    config = AuditConfig(skip=["label_issue"], engine=engine, near_duplicate={"batch_pairs": 64})
    return summary, run_audit(run, config, data / "test")


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    audit = run / "audit"
    tables = {path.name: pd.read_parquet(path) for path in audit.glob("*.parquet")}
    tables.update({path.name: pd.read_csv(path) for path in audit.glob("*.csv")})
    return tables


def test_scan_and_audit_on_ray_equal_the_local_engine(tmp_path: Path, ray_engine) -> None:
    """Same manifest rows (every column but where a row's pixels lie), the same pixels and
    detail crops for every file, and the same findings and tables, with the planted
    duplicates, leak and photographs found; the local engine's process pool and Ray's
    tasks both give what one process gives."""
    make_demo_dataset(tmp_path / "data")
    local_scan, local_audit = _scan_and_audit(tmp_path / "data", tmp_path / "local", "local")
    ray_scan, ray_audit = _scan_and_audit(tmp_path / "data", tmp_path / "ray", "ray")
    assert (local_scan.engine, ray_scan.engine) == ("local", "ray")
    assert (local_audit["engine"], ray_audit["engine"]) == ("local", "ray")

    local = read_manifest(tmp_path / "local").set_index("path")
    on_ray = read_manifest(tmp_path / "ray").set_index("path").loc[local.index]
    columns = [c for c in local.columns if c not in PLACEMENT]
    pd.testing.assert_frame_equal(local[columns], on_ray[columns])
    assert local["duplicate_group"].notna().sum() >= 4
    assert local["is_leak_issue"].any() and local["is_out_of_domain_issue"].sum() >= 4

    caches = PixelCache(tmp_path / "local"), PixelCache(tmp_path / "ray")
    ok = local["status"] == "ok"
    for take in ("take", "take_detail"):
        pixels = [
            getattr(cache, take)(*(frame.loc[ok, c].to_numpy(np.int64) for c in PLACEMENT))
            for cache, frame in zip(caches, (local, on_ray), strict=True)
        ]
        assert np.array_equal(*pixels)

    local_tables, ray_tables = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert {"near_duplicate_pairs.parquet", "out_of_domain.parquet", "leaks.csv"} <= set(
        local_tables
    )
    assert local_tables.keys() == ray_tables.keys()
    for name, table in local_tables.items():
        pd.testing.assert_frame_equal(table, ray_tables[name], obj=name)
    in_process = tmp_path / "in-process"
    scan(tmp_path / "data" / "training", in_process, ScanConfig(workers=1))
    one = AuditConfig(skip=["label_issue"], workers=1, near_duplicate={"batch_pairs": 64})
    run_audit(in_process, one, tmp_path / "data" / "test")
    alone = read_manifest(in_process).set_index("path").loc[local.index]
    pd.testing.assert_frame_equal(local[columns], alone[columns])
    summaries = local_audit["checks"], ray_audit["checks"]
    for check in ("near_duplicate", "leak", "out_of_domain"):
        drop = {"seconds"}
        assert {k: v for k, v in summaries[0][check].items() if k not in drop} == {
            k: v for k, v in summaries[1][check].items() if k not in drop
        }


def test_cli_scan_and_audit_take_the_engine(tmp_path: Path, ray_engine) -> None:
    make_demo_dataset(tmp_path / "data")
    run = tmp_path / "run"
    scanned = runner.invoke(
        app, ["scan", str(tmp_path / "data" / "training"), "--out", str(run), "--engine", "ray"]
    )
    assert scanned.exit_code == 0, scanned.output
    assert " on ray;" in scanned.output
    audited = runner.invoke(
        app, ["audit", str(run), "--checks", "exact_duplicate,near_duplicate", "--engine", "ray"]
    )
    assert audited.exit_code == 0, audited.output
    assert "on ray" in audited.output
    assert (run / "scan_config.yaml").read_text().count("engine: ray") == 1


def test_the_whole_pipeline_takes_the_engine(tmp_path: Path, ray_engine) -> None:
    """`winnow run --engine ray` scans and audits (the test folder too) on Ray."""
    make_demo_dataset(tmp_path / "data")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "max_epochs": 1}))
    (tmp_path / "audit.yaml").write_text("skip: [label_issue]\n")
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", str(tmp_path / "data" / "training"), "--out", str(run)]
        + ["--test", str(tmp_path / "data" / "test"), "--config", str(tmp_path / "train.yaml")]
        + ["--audit-config", str(tmp_path / "audit.yaml"), "--engine", "ray"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "scan_summary.json").read_text())["engine"] == "ray"
    audit = json.loads((run / "audit" / "summary.json").read_text())
    assert audit["engine"] == "ray" and audit["checks"]["leak"]["issues"] >= 1
    assert (
        json.loads((run / "against" / "test" / "scan_summary.json").read_text())["engine"] == "ray"
    )


def test_a_ray_address_without_the_ray_engine_is_refused(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "data")
    result = runner.invoke(
        app,
        ["scan", str(tmp_path / "data" / "training"), "--out", str(tmp_path / "run")]
        + ["--ray-address", "auto"],
    )
    assert result.exit_code == 2
    assert "ray_address needs engine: ray" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "manifest.parquet").exists()
    with pytest.raises(EngineError, match="--engine ray"):
        with open_engine("local", address="auto"):
            pass


def test_an_unreachable_or_malformed_cluster_address_fails_at_once() -> None:
    """Ray retries an unreachable head without end; winnow tries one connection first."""
    started = time.perf_counter()
    with pytest.raises(EngineError, match="Could not reach the Ray cluster at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")  # port 1: nothing listens, refused at once
    with pytest.raises(EngineError, match="not auto, HOST:PORT"):
        _check_reachable("head-node")
    _check_reachable("auto")  # Ray's to resolve
    assert time.perf_counter() - started < 10


def test_without_ray_installed_the_message_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(EngineError, match=r"pip install 'winnow-vision\[ray\]'"):
        with open_engine("ray"):
            pass


def _slow_square(item: int, shared: int) -> int:
    time.sleep(0.02 * (8 - item % 8))  # early items finish last
    return item * item + shared


def test_ray_map_returns_results_in_input_order(ray_engine) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    items = list(range(24))
    assert list(ray_engine.map(_slow_square, iter(items), 5)) == [i * i + 5 for i in items]
    glibc = platform.libc_ver()[0] == "glibc"  # Ray's workers keep freed memory too
    assert set(ray_engine.map(_worker_settings, range(4), None)) == {(glibc, 1)}
    assert list(LocalEngine(1).map(_slow_square, items[:3], 1)) == [1, 2, 5]
    assert list(LocalEngine(2).map(_slow_square, iter(items), 5)) == [i * i + 5 for i in items]


def test_a_pixel_cache_pickles_without_its_memory_maps(demo_run) -> None:
    _, run = demo_run
    cache = PixelCache(run)
    frame = read_manifest(run)
    row = frame[frame["status"] == "ok"].iloc[0]
    pixels = cache.get(row["cache_shard"], row["cache_index"])
    assert cache._open  # a shard is mapped
    copy = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < 4096 and not copy._open
    assert np.array_equal(copy.get(row["cache_shard"], row["cache_index"]), pixels)


def _pid_and_shared(item: int, shared: str) -> tuple[int, str]:
    time.sleep(0.01)
    return os.getpid(), shared


def _fails_on_three(item: int, shared: int) -> int:
    if item == 3:
        raise ValueError("three")
    return item + shared


def _worker_settings(_item: int, _shared: None) -> tuple[bool | None, int]:
    from threadpoolctl import threadpool_info

    from winnow.data.engine import _WORKER

    threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
    return _WORKER.get("keeps_freed_memory"), threads


def test_pool_workers_are_single_threaded_and_keep_freed_memory() -> None:
    with LocalEngine(2) as engine:
        settings = set(engine.map(_worker_settings, range(4), None))
    glibc = platform.libc_ver()[0] == "glibc"
    assert settings == {(glibc, 1)}  # the allocator setting is glibc's only
    # in this process (one worker) each call also runs with one BLAS thread, so that
    # products round as in the workers; the process's own setting is back afterwards
    before = max(pool["num_threads"] for pool in threadpool_info())
    assert set(LocalEngine(1).map(_worker_settings, range(2), None)) == {(None, 1)}
    assert max(pool["num_threads"] for pool in threadpool_info()) == before


def test_an_open_local_engine_keeps_its_workers_across_maps() -> None:
    with LocalEngine(2) as engine:
        first = list(engine.map(_pid_and_shared, range(8), "a"))
        second = list(engine.map(_pid_and_shared, range(8), "b"))
        folder = engine._folder
        assert [shared for _, shared in first] == ["a"] * 8  # each map sees its own input
        assert [shared for _, shared in second] == ["b"] * 8
        assert {pid for pid, _ in second} <= {pid for pid, _ in first} != {os.getpid()}
        with pytest.raises(ValueError, match="three"):  # a task's error reaches the caller
            list(engine.map(_fails_on_three, range(6), 10))
        assert list(engine.map(_fails_on_three, [0, 1, 2], 10)) == [10, 11, 12]  # still usable
        stopped = engine.map(_slow_square, range(40), 0)
        assert next(stopped) == 0
        stopped.close()  # a caller that stops early: its waiting tasks are cancelled
        assert list(folder.iterdir()) == []  # no map's input is left behind
    assert not folder.exists() and engine._pool is None
    # outside a `with` each map starts and stops its own pool
    assert list(LocalEngine(2).map(_fails_on_three, [0, 1], 1)) == [1, 2]


def _dies_on_five(item: int, shared: int) -> int:
    if item == 5:
        os._exit(3)  # a worker killed (out of memory, a crash in native code)
    time.sleep(0.01)
    return item + shared


def test_an_unordered_map_gives_every_result_once_and_names_what_a_dead_worker_held() -> None:
    with LocalEngine(2) as engine:
        results = dict(engine.map_unordered(_fails_on_three, [0, 1, 2, 4, 5, 6, 7], 10))
        assert results == {0: 10, 1: 11, 2: 12, 3: 14, 4: 15, 5: 16, 6: 17}  # by position
        with pytest.raises(WorkersLost) as lost:
            for _ in engine.map_unordered(_dies_on_five, range(20), 0):
                pass
        # the item that killed its worker is among those named, and no more items than the
        # window of tasks in flight are (items after it may have finished on the other
        # worker meanwhile, so the window is a count, not a range from 5)
        assert 5 in lost.value.positions
        assert len(lost.value.positions) <= engine_module.TASKS_IN_FLIGHT_PER_CPU * 2
        assert engine._pool is None
        assert sorted(p for p, _ in engine.map_unordered(_dies_on_five, [0, 1, 2], 0)) == [0, 1, 2]
