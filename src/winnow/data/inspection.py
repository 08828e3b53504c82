"""Decoding files into manifest rows: `inspect_file` reads one file (its facts, hashes and
status, its cache pixels and detail crop; never raises on bad data) and `decode_files` runs
it over many files in worker processes, or in Ray Data workers with a `RayEngine`
(winnow.data.engine). Used by `scan` and `evaluate`.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np

from winnow.data.config import ScanConfig
from winnow.data.decode import EMPTY_REASON, decode_file, prepare_worker
from winnow.data.engine import Engine, LocalEngine, RayEngine, WorkersLost
from winnow.data.walk import FoundFile

log = logging.getLogger(__name__)


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


def decode_files(
    tasks: list[FoundFile], config: ScanConfig, file_hash: bool = True, engine: Engine | None = None
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]]:
    """Decode files in worker processes (the local engine's pool), or in Ray Data workers
    with a `RayEngine`; results arrive in no fixed order. Bad files give rows with a status
    and reason, never exceptions; a file that kills its decoding process is a `corrupt`
    row. Used by `scan` and `evaluate`.

    Largest files go first, so the tail of the run stays short; small files travel in
    batches (`file_batches`), so a folder of thumbnails is not paced by messages."""
    if not tasks:
        return
    tasks = sorted(tasks, key=lambda t: -t.bytes)
    if isinstance(engine, RayEngine):
        yield from _decode_on_ray(engine, tasks, config, file_hash)
        return
    # without an engine: a pool of config.workers processes for this call (the engine
    # runs one worker, or a single batch, in this process)
    local = engine if isinstance(engine, LocalEngine) else LocalEngine(config.workers)
    yield from _decode_in_pool(local, tasks, config, file_hash)


BATCH_FILES = 64  # at most this many files per decoding task
BATCH_BYTES = 4 << 20  # and at most this many bytes (a larger file travels alone)


def file_batches(tasks: list[FoundFile]) -> list[list[FoundFile]]:
    """Consecutive files grouped into decoding tasks of at most BATCH_FILES files and
    BATCH_BYTES bytes: one message per batch instead of one per file."""
    batches: list[list[FoundFile]] = []
    size = 0
    for task in tasks:
        if not batches or len(batches[-1]) >= BATCH_FILES or size + task.bytes > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(task)
        size += task.bytes
    return batches


Inspect = Callable[[FoundFile, ScanConfig, bool], tuple[dict[str, Any], Any, Any]]


def _decode_in_pool(
    engine: LocalEngine,
    tasks: list[FoundFile],
    config: ScanConfig,
    file_hash: bool,
    inspect: Inspect = inspect_file,
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]]:
    """The batches on the engine's pool, as the workers finish them.

    When a worker dies, the batches that were in flight go back one file per task; when
    one of those is in flight as a worker dies, it is decoded in a process of its own, so
    that only the file that kills its process is lost (as a `corrupt` row)."""
    remaining = {(key,): batch for key, batch in enumerate(file_batches(tasks))}
    shared = (config, file_hash, inspect)
    while remaining:
        order = sorted(remaining)  # largest files first, split batches where they were
        try:
            for position, results in engine.map_unordered(
                _inspect_batch, [remaining[key] for key in order], shared
            ):
                del remaining[order[position]]
                yield from results
        except WorkersLost as lost:
            log.warning("a decoding process died: the files it held are decoded again")
            for position in lost.positions:
                key = order[position]
                batch = remaining.pop(key)
                if len(batch) > 1:  # one file per task, to find the one that kills
                    remaining.update({(*key, i): [task] for i, task in enumerate(batch)})
                else:
                    yield _inspect_alone(batch[0], config, file_hash, inspect)


def _inspect_batch(batch: list[FoundFile], shared: tuple[ScanConfig, bool, Inspect]) -> list:
    prepare_worker()
    config, file_hash, inspect = shared
    return [inspect(task, config, file_hash) for task in batch]


KILLED_REASON = (
    "the decoding process died on this file (killed for memory, or a crash in a native decoder)"
)


def _inspect_alone(
    task: FoundFile, config: ScanConfig, file_hash: bool, inspect: Inspect = inspect_file
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """`inspect` in a process of its own: a file that kills it becomes a row."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, context, initializer=prepare_worker) as pool:
        try:
            return pool.submit(inspect, task, config, file_hash).result()
        except BrokenProcessPool:
            return {**_base_row(task), "status": "corrupt", "error": KILLED_REASON}, None, None


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
