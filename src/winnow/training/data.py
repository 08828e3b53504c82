"""Training data: the split manifest's rows, their cached pixels in RAM, batches per epoch.

Pixels are read once from the pixel cache and resized to the training size, so an epoch
costs only compute. `BatchStream` is the training loader: the epoch's order depends only on
(seed, epoch), and its state (epoch, batches trained) is saved in every checkpoint, so a
run killed mid-epoch resumes on the very next batch (Lightning calls `state_dict` /
`load_state_dict` on stateful loaders).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from winnow.data.cache import PixelCache
from winnow.data.manifest import cache_positions
from winnow.errors import WinnowError
from winnow.inference.preprocess import resize_square
from winnow.training.imbalance import STRATEGIES

LOAD_CHUNK = 2048


class TrainingDataError(WinnowError, RuntimeError):
    """The run can't be trained on; the message says which stage to run."""


@dataclass
class SplitRows:
    """Which manifest rows train, validate and test, with integer labels."""

    classes: list[str]
    frames: dict[str, pd.DataFrame]  # split name → rows, with a `target` column
    fingerprint: str  # changes when the rows, their content or labels change
    added_uncleaned: int  # rows `clean` dropped that train anyway (cleaning off)


def select_rows(frame: pd.DataFrame, cleaning: bool) -> SplitRows:
    if "split" not in frame:
        raise TrainingDataError(
            "The run has no split yet. Run 'winnow clean RUN' and 'winnow split RUN' first."
        )
    kept = frame[frame["split"].notna()].copy()
    kept["train_label"] = kept["final_label"].astype(str)
    parts = {name: kept[kept["split"] == name] for name in ("train", "val", "test")}
    added = 0
    if not cleaning:
        parts["train"], added = _with_dropped_rows(frame, parts["train"])
    classes = sorted(parts["train"]["train_label"].unique())
    if len(classes) < 2:
        raise TrainingDataError(f"Training needs at least 2 classes; found {classes}.")
    if parts["val"].empty:
        raise TrainingDataError(
            f"The validation split is empty: {len(parts['train'])} training images are too "
            "few for the split's validation share (a class goes to validation only once it "
            "holds about 1 / share images). Split again with a larger share, e.g. 'winnow "
            "split RUN --val 0.5 --test 0', then 'winnow train RUN'; or add images."
        )
    index = {name: i for i, name in enumerate(classes)}
    frames = {}
    for name, part in parts.items():
        part = part[part["train_label"].isin(index)].copy()
        part["target"] = part["train_label"].map(index).astype(np.int64)
        frames[name] = part.reset_index(drop=True)
    digest = hashlib.sha256()
    for name in ("train", "val"):
        for row in frames[name][["path", "sha256", "train_label"]].itertuples(index=False):
            digest.update(f"{name}\0{row.path}\0{row.sha256}\0{row.train_label}\n".encode())
    return SplitRows(classes, frames, digest.hexdigest()[:16], added)


def _with_dropped_rows(frame: pd.DataFrame, train: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Cleaning off: add every readable labelled row `clean` dropped, unless its duplicate
    group sits in val or test (that would leak)."""
    dropped = frame[(frame["status"] == "ok") & frame["split"].isna() & frame["label"].notna()]
    group_split = frame.dropna(subset=["split", "duplicate_group"]).set_index("duplicate_group")[
        "split"
    ]
    group_split = group_split[~group_split.index.duplicated()]
    held_out = dropped["duplicate_group"].map(group_split).isin(["val", "test"])
    extra = dropped[~held_out].copy()
    extra["train_label"] = extra["label"].astype(str)
    return pd.concat([train, extra]), len(extra)


def load_pixels(cache: PixelCache, rows: pd.DataFrame, image_size: int) -> torch.Tensor:
    """(n, 3, s, s) uint8 tensor of the rows' cached pixels at the training size."""
    out = torch.empty((len(rows), 3, image_size, image_size), dtype=torch.uint8)
    shards, indices = cache_positions(rows)
    for start in range(0, len(rows), LOAD_CHUNK):
        stop = start + LOAD_CHUNK
        pixels = resize_square(cache.take(shards[start:stop], indices[start:stop]), image_size)
        out[start:stop] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return out


class BatchStream:
    """Stateful training loader over in-RAM uint8 images.

    Yields (images uint8, targets int64, (epoch, position)). The LightningModule reports
    each trained batch with `mark_trained`, so the saved state counts trained batches, not
    prefetched ones.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: np.ndarray,
        n_classes: int,
        batch_size: int,
        strategy: str,
        seed: int,
    ) -> None:
        self.images = images
        self.targets = np.asarray(targets, dtype=np.int64)
        self.n_classes = n_classes
        self.strategy = STRATEGIES[strategy]
        self.seed = seed
        self.rank, self.world_size = 0, 1
        self.epoch, self.position = 0, 0
        draws = len(self.strategy.draw(self.targets, n_classes, np.random.default_rng(0)))
        self.batch_size = min(batch_size, draws)
        self.dataset = range(draws)  # Lightning sizes epochs from len(dataset)

    def shard(self, rank: int, world_size: int) -> None:
        """Each of `world_size` processes trains on its own slice of every epoch."""
        self.rank, self.world_size = rank, world_size

    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        order = self.strategy.draw(self.targets, self.n_classes, rng)
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, tuple[int, int]]]:
        return self.batches(self.epoch, self.position)

    def batches(
        self, epoch: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, tuple[int, int]]]:
        """Epoch `epoch` from batch `start` on; reading never changes the saved state."""
        order = self._order(epoch)
        size = self.batch_size
        for position in range(start, len(self)):
            chosen = order[position * size : (position + 1) * size]
            targets = torch.from_numpy(self.targets[chosen])
            yield self.images[torch.from_numpy(chosen)], targets, (epoch, position)

    def mark_trained(self, epoch: int, position: int) -> None:
        self.epoch, self.position = epoch, position + 1
        if self.position >= len(self):
            self.epoch, self.position = epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class EvalBatches:
    """Validation/test batches in a fixed order (uint8 images, targets)."""

    def __init__(self, images: torch.Tensor, targets: np.ndarray, batch_size: int) -> None:
        self.images = images
        self.targets = torch.from_numpy(np.array(targets, dtype=np.int64))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.targets) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.targets), self.batch_size):
            stop = start + self.batch_size
            yield self.images[start:stop], self.targets[start:stop]
