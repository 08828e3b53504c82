"""The manifest: one row per file under DATA, the single source of truth between stages.

`SCAN_SCHEMA` is the public contract of what `winnow scan` writes; later stages add their
own columns (audit checks, `keep`/`reason`, `split`). All writes are atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.data.io import atomic_output
from winnow.data.lock import ManifestGuard

MANIFEST_NAME = "manifest.parquet"
# the pixel-cache settings the rows' `cache_shard`/`cache_index` were made with, stored in
# the parquet schema's metadata of the manifest and of every scan part, so rows and the
# settings that explain them are committed in one atomic write
PIXEL_SETTINGS_KEY = b"winnow.pixel_settings"

SCAN_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("format", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("mode", pa.string()),
        pa.field("n_frames", pa.int32()),
        pa.field("has_alpha", pa.bool_()),
        pa.field("decoder", pa.string()),
        pa.field("pixel_sha256", pa.string()),
        pa.field("phash", pa.int64()),
        pa.field("dhash", pa.int64()),
        pa.field("cache_shard", pa.int32()),
        pa.field("cache_index", pa.int32()),
    ]
)

STATUSES = (
    "ok",
    "empty",
    "truncated",
    "not_image",
    "corrupt",
    "oversized",
    "unreadable",
    "unlabeled",
    "bad_filename",
)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCAN_SCHEMA)


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write parquet atomically (see `winnow.data.io.atomic_output`)."""
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def pixel_settings_of(path: Path) -> dict[str, Any] | None:
    """The pixel settings recorded in a manifest or part file's metadata; None when the
    file records none or does not exist."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = metadata.get(PIXEL_SETTINGS_KEY)
    return None if raw is None else parse_pixel_settings(raw)


def parse_pixel_settings(raw: str | bytes) -> dict[str, Any]:
    """Pixel settings from their JSON (the manifest's metadata or the cache's meta.json),
    with the background as the tuple `ScanConfig.pixel_settings` gives."""
    settings = json.loads(raw)
    if "background" in settings:
        settings["background"] = tuple(settings["background"])
    return settings


def with_pixel_settings(table: pa.Table, settings: dict[str, Any] | None) -> pa.Table:
    """`table` with `settings` recorded in its schema metadata (unchanged when None)."""
    if settings is None:
        return table
    metadata = dict(table.schema.metadata or {})
    metadata[PIXEL_SETTINGS_KEY] = json.dumps(settings).encode()
    return table.replace_schema_metadata(metadata)


def write_manifest(run_dir: Path, frame: Any, guard: ManifestGuard | None = None) -> None:
    """Replace RUN's manifest with `frame` (pandas or Arrow), atomically.

    The pixel settings of the manifest being replaced are carried over, and with a `guard`
    nothing is written when the manifest on disk is no longer the one the stage read.
    """
    path = manifest_path(run_dir)
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    if PIXEL_SETTINGS_KEY not in (table.schema.metadata or {}):
        table = with_pixel_settings(table, pixel_settings_of(path))
    if guard is not None:
        guard.check()
    atomic_write_table(table, path)


def manifest_path(run_dir: Path) -> Path:
    return Path(run_dir) / MANIFEST_NAME


def missing_manifest(run_dir: Path) -> str:
    """What to tell a user whose RUN has no manifest yet."""
    return f"No manifest at {manifest_path(run_dir)}. Run 'winnow scan DATA --out {run_dir}' first."


def read_table(run_dir: Path) -> pa.Table:
    """The manifest as an Arrow table (exact types; hashes stay int64 even with nulls)."""
    path = manifest_path(run_dir)
    if not path.exists():
        raise FileNotFoundError(missing_manifest(run_dir))
    return pq.read_table(path)


def read_manifest(run_dir: Path):  # -> pandas.DataFrame
    """The manifest as pandas with nullable integer/boolean dtypes (hashes never become
    floats) and plain Python strings."""
    import pandas as pd

    nullable = {
        pa.int64(): pd.Int64Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return read_table(run_dir).to_pandas(types_mapper=nullable.get)


def cache_positions(rows) -> tuple[np.ndarray, np.ndarray]:  # rows: with a pixel cache entry
    """(cache_shard, cache_index) of each row as int64 arrays: what `PixelCache.take` and
    `PixelCache.take_detail` read."""
    return (
        rows["cache_shard"].to_numpy(dtype=np.int64),
        rows["cache_index"].to_numpy(dtype=np.int64),
    )


def longer_sides(rows) -> np.ndarray:  # rows: pandas.DataFrame with width and height
    """Each row's longer side in pixels, as its file has it (float; NaN where unknown)."""
    return np.maximum(rows["width"].to_numpy(dtype=float), rows["height"].to_numpy(dtype=float))
