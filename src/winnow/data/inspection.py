"""Decoding files into manifest rows: `inspect_file` reads one file (its facts, hashes and
status, its cache pixels and detail crop; never raises on bad data) and `decode_files` runs
it over many files in worker processes, or in Ray Data workers with a `RayEngine`
(winnow.data.engine). Used by `scan` and `evaluate`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np

from winnow.data.config import ScanConfig
from winnow.data.decode import EMPTY_REASON, decode_file, prepare_worker
from winnow.data.engine import Engine, RayEngine
from winnow.data.walk import FoundFile


def _base_row(item: FoundFile) -> dict[str, Any]:
    return {
        "path": item.path,
        "label": item.label,
        "bytes": item.bytes,
        "mtime_ns": item.mtime_ns,
    }


def problem_row(item: FoundFile) -> dict[str, Any]:
    status, error = item.problem or ("ok", None)
    return {**_base_row(item), "status": status, "error": error}


def inspect_file(
    item: FoundFile, config: ScanConfig, file_hash: bool = True
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """One file → its manifest row, cache pixels and detail crop (worker side; never raises
    on bad data).

    `file_hash=False` skips the sha256 of the file's bytes (evaluation does not need it).
    """
    row = _base_row(item)
    if item.bytes == 0:
        return {**row, "status": "empty", "error": EMPTY_REASON}, None, None
    try:
        if file_hash:
            with open(item.abspath, "rb") as handle:
                row["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
    except PermissionError:
        return {**row, "status": "unreadable", "error": "permission denied"}, None, None
    except OSError as exc:
        return {**row, "status": "unreadable", "error": f"cannot read: {exc.strerror}"}, None, None
    try:
        result = decode_file(item.abspath, config)
    except MemoryError:
        result = None
        row.update(status="oversized", error="ran out of memory while decoding")
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not end the scan
        result = None
        row.update(status="corrupt", error=f"unexpected decoder error: {type(exc).__name__}: {exc}")
    if result is None:
        return row, None, None
    fields = asdict(result)
    pixels = fields.pop("pixels")
    detail = fields.pop("detail")
    row.update(fields)
    return row, pixels, detail


def _inspect_task(
    args: tuple[FoundFile, ScanConfig, bool],
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    return inspect_file(*args)


def decode_files(
    tasks: list[FoundFile], config: ScanConfig, file_hash: bool = True, engine: Engine | None = None
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]]:
    """Decode files in worker processes, or in Ray Data workers with a `RayEngine` (results
    arrive in no fixed order); bad files give rows with a status and reason, never
    exceptions. Used by `scan` and `evaluate`.

    Largest files go first, so the tail of the run stays short."""
    if not tasks:
        return
    tasks = sorted(tasks, key=lambda t: -t.bytes)
    if isinstance(engine, RayEngine):
        yield from _decode_on_ray(engine, tasks, config, file_hash)
        return
    workers = min(config.workers or os.cpu_count() or 1, len(tasks))
    if workers == 1:
        prepare_worker()
        for task in tasks:
            yield inspect_file(task, config, file_hash)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["winnow.data.decode"])
    with context.Pool(workers, initializer=prepare_worker) as pool:
        yield from pool.imap_unordered(
            _inspect_task, ((t, config, file_hash) for t in tasks), chunksize=2
        )


_TASK_FIELDS = ("path", "label", "abspath", "bytes", "mtime_ns")


def _decode_on_ray(
    engine: RayEngine, tasks: list[FoundFile], config: ScanConfig, file_hash: bool
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]]:
    rows = [{name: getattr(task, name) for name in _TASK_FIELDS} for task in tasks]
    kwargs = {"config": config, "file_hash": file_hash}
    for batch in engine.map_batches(rows, _decode_batch, kwargs):
        for result in batch["result"]:
            yield pickle.loads(result)


def _decode_batch(batch: dict[str, np.ndarray], config: ScanConfig, file_hash: bool) -> dict:
    """Ray Data worker: `inspect_file` on each file of a batch; each result (row, pixels,
    detail) travels back pickled in one binary column (rows differ in their fields)."""
    prepare_worker()
    results = []
    for path, label, abspath, size, mtime in zip(*(batch[n] for n in _TASK_FIELDS), strict=True):
        item = FoundFile(
            path=str(path),
            label=None if label is None else str(label),
            abspath=str(abspath),
            bytes=int(size),
            mtime_ns=int(mtime),
        )
        results.append(pickle.dumps(inspect_file(item, config, file_hash), protocol=5))
    column = np.empty(len(results), dtype=object)
    column[:] = results
    return {"result": column}
