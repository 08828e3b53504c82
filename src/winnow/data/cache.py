"""The pixel cache: every readable image decoded once, resized, stored as uint8 shards.

Layout in RUN/cache/:
    meta.json                 image size, background, channel order (the manifest records
                              the same settings with its rows; it is read first)
    pixels-000000.npy ...     (n, size, size, 3) uint8 arrays, memory-mappable
    detail-000000.npy ...     (n, detail_size, detail_size, 3) uint8: the same rows' detail
                              crops (the image at its own resolution, see `winnow.data.decode`)

Shards are written whole and atomically and never modified afterwards (the detail shard
first, so a pixels shard always has its detail shard); manifest rows point at both with
(`cache_shard`, `cache_index`).
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from winnow.data.config import ScanConfig
from winnow.data.io import atomic_output, atomic_write_bytes
from winnow.data.manifest import manifest_path, parse_pixel_settings, pixel_settings_of
from winnow.errors import WinnowError

CACHE_DIR = "cache"


class CacheError(WinnowError):
    """The pixel cache does not match its run's settings; scanning again mends it."""


_SHARD_RE = {kind: re.compile(rf"^{kind}-(\d{{6}})\.npy$") for kind in ("pixels", "detail")}


def shard_name(shard_id: int) -> str:
    return f"pixels-{shard_id:06d}.npy"


def detail_shard_name(shard_id: int) -> str:
    return f"detail-{shard_id:06d}.npy"


def existing_shards(cache_dir: Path, kind: str = "pixels") -> list[int]:
    """Ids of the shard files of `kind` ("pixels" or "detail") in `cache_dir`."""
    if not cache_dir.exists():
        return []
    ids = []
    for name in os.listdir(cache_dir):
        match = _SHARD_RE[kind].match(name)
        if match:
            ids.append(int(match.group(1)))
    return sorted(ids)


def write_meta(cache_dir: Path, config: ScanConfig) -> None:
    meta = {**config.pixel_settings(), "dtype": "uint8", "layout": "NHWC", "channels": "RGB"}
    atomic_write_bytes(cache_dir / "meta.json", json.dumps(meta, indent=2).encode())


def read_meta(cache_dir: Path) -> dict | None:
    try:
        return parse_pixel_settings((cache_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def save_shard(cache_dir: Path, shard_id: int, pixels: np.ndarray, detail: np.ndarray) -> None:
    """Write one shard's detail crops, then its pixels, each atomically; never modified."""
    for name, array in ((detail_shard_name(shard_id), detail), (shard_name(shard_id), pixels)):
        with atomic_output(cache_dir / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def remove_shard(cache_dir: Path, shard_id: int) -> None:
    """Delete one shard, pixels first (the reverse of `save_shard`)."""
    for name in (shard_name(shard_id), detail_shard_name(shard_id)):
        (cache_dir / name).unlink(missing_ok=True)


class PixelCache:
    """Read cached pixels by (shard, index); shards are memory-mapped lazily."""

    def __init__(self, run_dir: Path, max_open: int = 64) -> None:
        self.cache_dir = Path(run_dir) / CACHE_DIR
        # the manifest's own record of its settings comes first: it is written with the rows
        meta = pixel_settings_of(manifest_path(run_dir)) or read_meta(self.cache_dir)
        if meta is None:
            raise FileNotFoundError(
                f"No pixel cache in {self.cache_dir}. Run 'winnow scan DATA --out {run_dir}'."
            )
        self.image_size: int = meta["image_size"]
        self.detail_size: int | None = meta.get("detail_size")  # None: made before detail crops
        self.background: tuple[int, int, int] = meta["background"]
        self._max_open = max_open
        self._open: OrderedDict[str, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        """Pickled (for a worker process or a Ray task) without its open memory maps: the
        copy opens the shards it reads itself."""
        return {**self.__dict__, "_open": OrderedDict()}

    def _load(self, name: str) -> np.ndarray:
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        array = np.load(self.cache_dir / name, mmap_mode="r")
        side = self.detail_size if name.startswith("detail") else self.image_size
        if array.shape[1:3] != (side, side):
            raise CacheError(
                f"{self.cache_dir / name} holds {array.shape[1]} px images where the run's "
                f"settings say {side} px (a scan was interrupted); run 'winnow scan' again."
            )
        self._open[name] = array
        if len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return array

    def shard(self, shard_id: int) -> np.ndarray:
        return self._load(shard_name(shard_id))

    def get(self, shard_id: int, index: int) -> np.ndarray:
        return self.shard(int(shard_id))[int(index)]

    def take(self, shard_ids: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """A batch (n, size, size, 3) for the given rows, read shard by shard."""
        return self._take(shard_name, self.image_size, shard_ids, indices)

    def take_detail(self, shard_ids: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """The rows' detail crops (n, detail_size, detail_size, 3), read shard by shard."""
        if self.detail_size is None:
            raise FileNotFoundError(
                f"The pixel cache in {self.cache_dir} was made before detail crops existed; "
                "run 'winnow scan' again (it re-decodes the images once)."
            )
        return self._take(detail_shard_name, self.detail_size, shard_ids, indices)

    def _take(
        self, name: Callable[[int], str], side: int, shard_ids: np.ndarray, indices: np.ndarray
    ) -> np.ndarray:
        shard_ids = np.asarray(shard_ids)
        indices = np.asarray(indices)
        out = np.empty((len(indices), side, side, 3), dtype=np.uint8)
        for shard_id in np.unique(shard_ids):
            where = np.flatnonzero(shard_ids == shard_id)
            out[where] = self._load(name(int(shard_id)))[indices[where]]
        return out
