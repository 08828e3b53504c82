"""`winnow scan`: one decode pass per image → RUN/manifest.parquet + RUN/cache/.

Incremental and crash-safe:
- a file whose (path, size, mtime) matches a row of the previous manifest, or of a part a
  killed scan left behind, is not decoded again;
- newly decoded rows are committed in parts: the pixel shard is written (atomically) first,
  then its rows (atomically), so every committed row points at pixels that exist;
- the final manifest is written atomically and the parts are then removed.
The data folder is only ever read.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.config import dump_config
from winnow.data.cache import (
    CACHE_DIR,
    existing_shards,
    read_meta,
    remove_shard,
    save_shard,
    write_meta,
)
from winnow.data.config import ScanConfig
from winnow.data.decode import IMAGE_SUFFIXES
from winnow.data.engine import open_engine
from winnow.data.inspection import decode_files, problem_row
from winnow.data.io import atomic_write_bytes, remove_temporaries
from winnow.data.lock import run_lock
from winnow.data.manifest import (
    SCAN_SCHEMA,
    atomic_write_table,
    manifest_path,
    pixel_settings_of,
    rows_to_table,
    with_pixel_settings,
)
from winnow.data.walk import FoundFile, WalkStats, iter_files
from winnow.errors import WinnowError

log = logging.getLogger(__name__)

PARTS_DIR = ".scan-parts"
SUMMARY_NAME = "scan_summary.json"
NOT_IMAGE = "not_image"  # the status of a file whose content is no image format
_ROWS_PER_PART_LIMIT = 8192


class ScanError(WinnowError, RuntimeError):
    """The scan can't start (bad folders, another scan running); the message says why."""


@dataclass
class ScanProgress:
    total: int
    done: int = 0
    decoded: int = 0
    reused: int = 0
    parts_written: int = 0


@dataclass
class ScanSummary:
    data_dir: str
    run_dir: str
    manifest: str
    files: int
    by_status: dict[str, int]
    decoded: int
    reused: int
    hidden_skipped: int
    loops_skipped: int
    seconds: float
    bad_files: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine: str = "local"  # where the files were decoded (winnow.data.engine)

    def unusable(self) -> list[dict[str, str]]:
        """The bad files except an image folder's companions (a text, sound or vector file:
        not an image, and not named like one): damaged images (empty, truncated, corrupt,
        oversized, unreadable), a file named like an image whose content is none (an HTML
        error page saved as .png), images outside a class folder, names that are not UTF-8."""
        return [row for row in self.bad_files if not is_companion(row["path"], row["status"])]

    def not_images(self) -> Counter:
        """The companions (`unusable` leaves them out) by extension, commonest first."""
        return companion_kinds(
            row["path"] for row in self.bad_files if is_companion(row["path"], row["status"])
        )

    def headline(self) -> str:
        """One line: how many images were read, how many files can't be used, and how many
        are not images (by extension)."""
        others = self.not_images()
        line = (
            f"{self.files} files: {self.by_status.get('ok', 0)} images read, "
            f"{len(self.unusable())} can't be used"
        )
        if others:
            line += f", {sum(others.values())} other files ({kinds_text(others, top=4)})"
        return line


def is_companion(path: str, status: str) -> bool:
    """A file that is not an image and is not named like one: a companion of the images (a
    text, sound or vector file). The name only sorts the reports; the content decided the
    status, and a file named like an image whose content is none is a broken image."""
    return status == NOT_IMAGE and Path(path).suffix.lower() not in IMAGE_SUFFIXES


def companions(rows: Any) -> np.ndarray:
    """`is_companion` for each row of a frame with `path` and `status` columns (only the
    not_image rows' names are looked at, so a manifest of a million images costs little)."""
    mask = rows["status"].to_numpy() == NOT_IMAGE
    paths = rows["path"].to_numpy()[mask]
    mask[mask] = [Path(path).suffix.lower() not in IMAGE_SUFFIXES for path in paths]
    return mask


def companion_kinds(paths: Iterable[str]) -> Counter:
    """Companion files by extension, commonest first."""
    return Counter(Path(path).suffix.lower() or "(no extension)" for path in paths)


def kinds_text(kinds: Counter, top: int | None = None) -> str:
    """`companion_kinds` as text, commonest first: ".ogg 7858, .txt 952, …"."""
    shown = ", ".join(f"{ext} {n}" for ext, n in kinds.most_common(top))
    return shown + (", …" if top is not None and len(kinds) > top else "")


def scan(
    data_dir: Path,
    run_dir: Path,
    config: ScanConfig | None = None,
    on_progress: Callable[[ScanProgress], None] | None = None,
) -> ScanSummary:
    """Scan `data_dir` into `run_dir`; see the module docstring for the guarantees."""
    config = config or ScanConfig()
    data_dir, run_dir = _check_folders(Path(data_dir), Path(run_dir))
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir, "scan"):
        cache_dir = run_dir / CACHE_DIR
        parts_dir = run_dir / PARTS_DIR
        cache_dir.mkdir(exist_ok=True)
        parts_dir.mkdir(exist_ok=True)
        for folder in (run_dir, cache_dir, parts_dir):
            remove_temporaries(folder)
        previous = _previous_rows(run_dir, cache_dir, parts_dir, config)

        stats = WalkStats()
        found = list(iter_files(data_dir, stats))
        reused_idx, walk_rows, tasks = _plan(found, previous, cache_dir)
        progress = ScanProgress(total=len(found), reused=len(reused_idx))
        progress.done = len(reused_idx) + len(walk_rows)
        if on_progress:
            on_progress(progress)

        writer = _PartWriter(cache_dir, parts_dir, config, _next_shard_id(cache_dir, previous))
        engine_name = config.engine if tasks else "local"  # nothing to decode: no Ray to start
        with open_engine(engine_name, config.ray_address, config.workers) as engine:
            for row, pixels, detail in decode_files(tasks, config, engine=engine):
                writer.add(row, pixels, detail)
                progress.done += 1
                progress.decoded += 1
                progress.parts_written = len(writer.parts)
                if on_progress:
                    on_progress(progress)
        writer.flush()

        table = _merge(previous, reused_idx, walk_rows, writer.parts)
        # the rows and the settings they were cached with are committed in one write; the
        # cache's meta.json follows (a scan killed in between leaves a manifest that says
        # its own settings, which `PixelCache` and the next scan read first)
        atomic_write_table(
            with_pixel_settings(table, config.pixel_settings()), manifest_path(run_dir)
        )
        write_meta(cache_dir, config)
        _drop_parts_and_orphans(table, cache_dir, parts_dir)
        atomic_write_bytes(run_dir / "scan_config.yaml", dump_config(config).encode())

        summary = _summarise(table, data_dir, run_dir, stats, progress, started)
        summary.engine = engine_name
        atomic_write_bytes(
            run_dir / SUMMARY_NAME,
            json.dumps(asdict(summary), indent=2, ensure_ascii=False).encode(),
        )
    return summary


def scanned_folder(run_dir: Path) -> Path | None:
    """The data folder the run was scanned from (its scan summary's `data_dir`), or None
    when the run has no readable scan summary."""
    try:
        data_dir = json.loads((Path(run_dir) / SUMMARY_NAME).read_text()).get("data_dir")
    except (OSError, ValueError):
        return None
    return Path(data_dir) if data_dir else None


def _check_folders(data_dir: Path, run_dir: Path) -> tuple[Path, Path]:
    if not data_dir.exists():
        raise ScanError(f"Data folder {data_dir} does not exist.")
    if not data_dir.is_dir():
        raise ScanError(f"{data_dir} is a file; give the folder that holds the class folders.")
    data_real, run_real = data_dir.resolve(), run_dir.resolve()
    if run_real == data_real or data_real in run_real.parents:
        raise ScanError(
            f"The run folder {run_dir} lies inside the data folder {data_dir}; winnow never "
            "writes into your data. Choose --out outside it."
        )
    return data_real, run_dir


# ---------------------------------------------------------------- previous work


@dataclass
class _Previous:
    table: pa.Table  # SCAN_SCHEMA rows from the old manifest and leftover parts
    by_path: dict[str, int]  # path -> row index in `table` (latest wins)


def _previous_rows(
    run_dir: Path, cache_dir: Path, parts_dir: Path, config: ScanConfig
) -> _Previous:
    """Rows of the last manifest and of parts a killed scan left, where they were cached
    with the settings asked for now. Each source is judged by the settings it records
    itself; a manifest without them (written before they were recorded) by meta.json."""
    tables = []
    settings = config.pixel_settings()
    meta = read_meta(cache_dir)
    meta_settings = {key: meta.get(key) for key in settings} if meta is not None else None
    sources = [manifest_path(run_dir)] + sorted(parts_dir.glob("part-*.parquet"))
    for source in sources:
        if not source.exists():
            continue
        recorded = pixel_settings_of(source)
        recorded = meta_settings if recorded is None else recorded
        if recorded != settings:
            log.info("%s was cached with other settings (%s); not reused", source, recorded)
            continue
        try:
            tables.append(pq.read_table(source).select(SCAN_SCHEMA.names).cast(SCAN_SCHEMA))
        except (pa.ArrowException, OSError, KeyError) as exc:
            log.warning("ignoring unreadable previous rows in %s: %s", source, exc)
    table = pa.concat_tables(tables) if tables else SCAN_SCHEMA.empty_table()
    by_path = {path: i for i, path in enumerate(table.column("path").to_pylist())}
    return _Previous(table, by_path)


def _plan(
    found: list[FoundFile], previous: _Previous, cache_dir: Path
) -> tuple[list[int], list[dict[str, Any]], list[FoundFile]]:
    """Split found files into reusable previous rows, rows the walk decided, files to decode."""
    shards = set(existing_shards(cache_dir))
    columns = {
        name: previous.table.column(name).to_pylist()
        for name in ("bytes", "mtime_ns", "status", "cache_shard")
    }
    reused, walk_rows, tasks = [], [], []
    for item in found:
        if item.problem is not None:
            walk_rows.append(problem_row(item))
            continue
        i = previous.by_path.get(item.path)
        if i is not None and _reusable(columns, i, item, shards):
            reused.append(i)
        else:
            tasks.append(item)
    return reused, walk_rows, tasks


def _reusable(columns: dict[str, list], i: int, item: FoundFile, shards: set[int]) -> bool:
    if columns["bytes"][i] != item.bytes or columns["mtime_ns"][i] != item.mtime_ns:
        return False
    status = columns["status"][i]
    if status == "unreadable":
        return False  # permissions may have been fixed without touching the file
    return status != "ok" or columns["cache_shard"][i] in shards


def _next_shard_id(cache_dir: Path, previous: _Previous) -> int:
    ids = existing_shards(cache_dir)
    referenced = previous.table.column("cache_shard").drop_null()
    top = max(ids[-1] if ids else -1, pa.compute.max(referenced).as_py() if len(referenced) else -1)
    return top + 1


class _PartWriter:
    """Buffers decoded rows; commits shard then rows, atomically, one part at a time."""

    def __init__(self, cache_dir: Path, parts_dir: Path, config: ScanConfig, first_id: int):
        self.cache_dir = cache_dir
        self.parts_dir = parts_dir
        per_image = (config.image_size**2 + config.detail_size**2) * 3
        self.capacity = max(1, config.shard_mb * 2**20 // per_image)
        self.shard_id = first_id
        self.settings = config.pixel_settings()
        self.rows: list[dict[str, Any]] = []
        self.pixels: list[np.ndarray] = []
        self.details: list[np.ndarray] = []
        self.parts: list[Path] = []

    def add(
        self, row: dict[str, Any], pixels: np.ndarray | None, detail: np.ndarray | None
    ) -> None:
        if pixels is not None:
            row["cache_shard"] = self.shard_id
            row["cache_index"] = len(self.pixels)
            self.pixels.append(pixels)
            self.details.append(detail)
        self.rows.append(row)
        if len(self.pixels) >= self.capacity or len(self.rows) >= _ROWS_PER_PART_LIMIT:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.pixels:
            save_shard(self.cache_dir, self.shard_id, np.stack(self.pixels), np.stack(self.details))
        part = self.parts_dir / f"part-{self.shard_id:06d}.parquet"
        table = with_pixel_settings(rows_to_table(self.rows), self.settings)
        atomic_write_table(table, part)
        self.parts.append(part)
        self.shard_id += 1
        self.rows, self.pixels, self.details = [], [], []


# ---------------------------------------------------------------- finishing


def _merge(
    previous: _Previous, reused_idx: list[int], walk_rows: list[dict], parts: list[Path]
) -> pa.Table:
    """Reused rows + rows the walk decided + rows decoded by this run, sorted by path.

    Parts left by an earlier, killed scan were already folded into `previous`, so only
    this run's parts hold new rows; every found path appears exactly once.
    """
    pieces = [previous.table.take(pa.array(reused_idx, type=pa.int64())), rows_to_table(walk_rows)]
    pieces += [pq.read_table(part).cast(SCAN_SCHEMA) for part in parts]
    return pa.concat_tables(pieces).sort_by("path")


def _drop_parts_and_orphans(table: pa.Table, cache_dir: Path, parts_dir: Path) -> None:
    referenced = set(table.column("cache_shard").drop_null().to_pylist())
    for part in parts_dir.glob("part-*.parquet"):
        part.unlink()
    # a detail shard without its pixels shard is left by a scan killed between two writes
    on_disk = set(existing_shards(cache_dir)) | set(existing_shards(cache_dir, "detail"))
    for shard_id in sorted(on_disk - referenced):
        remove_shard(cache_dir, shard_id)


def _summarise(
    table: pa.Table,
    data_dir: Path,
    run_dir: Path,
    stats: WalkStats,
    progress: ScanProgress,
    started: float,
) -> ScanSummary:
    statuses = table.column("status").to_pylist()
    bad = [
        {"path": p, "status": s, "error": e or ""}
        for p, s, e in zip(
            table.column("path").to_pylist(),
            statuses,
            table.column("error").to_pylist(),
            strict=True,
        )
        if s != "ok"
    ]
    return ScanSummary(
        data_dir=str(data_dir),
        run_dir=str(run_dir),
        manifest=str(manifest_path(run_dir)),
        files=table.num_rows,
        by_status=dict(Counter(statuses).most_common()),
        decoded=progress.decoded,
        reused=progress.reused,
        hidden_skipped=stats.hidden_skipped,
        loops_skipped=stats.loops_skipped,
        seconds=round(time.perf_counter() - started, 3),
        bad_files=bad,
        notes=stats.notes + stats.class_notes(Path(data_dir)),
    )
