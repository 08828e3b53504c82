"""The pixel cache: every readable image decoded once, resized, stored as uint8 shards.

Layout in RUN/cache/:
    meta.json                 image size, background, channel order
    pixels-000000.npy ...     (n, size, size, 3) uint8 arrays, memory-mappable

Shards are written whole and atomically by `ShardWriter` and never modified afterwards;
manifest rows point at them with (`cache_shard`, `cache_index`).
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from winnow.config import ScanConfig
from winnow.io import atomic_output, atomic_write_bytes

CACHE_DIR = "cache"
_SHARD_RE = re.compile(r"^pixels-(\d{6})\.npy$")


def shard_name(shard_id: int) -> str:
    return f"pixels-{shard_id:06d}.npy"


def existing_shards(cache_dir: Path) -> list[int]:
    if not cache_dir.exists():
        return []
    ids = []
    for name in os.listdir(cache_dir):
        match = _SHARD_RE.match(name)
        if match:
            ids.append(int(match.group(1)))
    return sorted(ids)


def write_meta(cache_dir: Path, config: ScanConfig) -> None:
    meta = {**config.pixel_settings(), "dtype": "uint8", "layout": "NHWC", "channels": "RGB"}
    atomic_write_bytes(cache_dir / "meta.json", json.dumps(meta, indent=2).encode())


def read_meta(cache_dir: Path) -> dict | None:
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    meta["background"] = tuple(meta["background"])
    return meta


def save_shard(cache_dir: Path, shard_id: int, pixels: np.ndarray) -> None:
    """Write one shard atomically; shards are never modified afterwards."""
    with atomic_output(cache_dir / shard_name(shard_id)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, pixels, allow_pickle=False)


class PixelCache:
    """Read cached pixels by (shard, index); shards are memory-mapped lazily."""

    def __init__(self, run_dir: Path, max_open: int = 64) -> None:
        self.cache_dir = Path(run_dir) / CACHE_DIR
        meta = read_meta(self.cache_dir)
        if meta is None:
            raise FileNotFoundError(
                f"No pixel cache in {self.cache_dir}. Run 'winnow scan DATA --out {run_dir}'."
            )
        self.image_size: int = meta["image_size"]
        self.background: tuple[int, int, int] = meta["background"]
        self._max_open = max_open
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def shard(self, shard_id: int) -> np.ndarray:
        if shard_id in self._open:
            self._open.move_to_end(shard_id)
            return self._open[shard_id]
        array = np.load(self.cache_dir / shard_name(shard_id), mmap_mode="r")
        self._open[shard_id] = array
        if len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return array

    def get(self, shard_id: int, index: int) -> np.ndarray:
        return self.shard(int(shard_id))[int(index)]

    def take(self, shard_ids: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """A batch (n, size, size, 3) for the given rows, read shard by shard."""
        shard_ids = np.asarray(shard_ids)
        indices = np.asarray(indices)
        out = np.empty((len(indices), self.image_size, self.image_size, 3), dtype=np.uint8)
        for shard_id in np.unique(shard_ids):
            where = np.flatnonzero(shard_ids == shard_id)
            out[where] = self.shard(int(shard_id))[indices[where]]
        return out
