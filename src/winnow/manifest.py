"""The manifest: one row per file under DATA, the single source of truth between stages.

`SCAN_SCHEMA` is the public contract of what `winnow scan` writes; later stages add their
own columns (audit checks, `keep`/`reason`, `split`). All writes are atomic.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.io import atomic_output

MANIFEST_NAME = "manifest.parquet"

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
    """Write parquet atomically (see `winnow.io.atomic_output`)."""
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def manifest_path(run_dir: Path) -> Path:
    return Path(run_dir) / MANIFEST_NAME


def read_table(run_dir: Path) -> pa.Table:
    """The manifest as an Arrow table (exact types; hashes stay int64 even with nulls)."""
    path = manifest_path(run_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"No manifest at {path}. Run 'winnow scan DATA --out {run_dir}' first."
        )
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
