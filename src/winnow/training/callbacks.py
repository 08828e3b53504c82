"""Small Lightning plug-ins: atomic checkpoint files, a mid-epoch `last.ckpt`, metrics.csv."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from winnow.data.io import atomic_write_bytes
from winnow.errors import WinnowError


class ResumeError(WinnowError):
    """`last.ckpt` cannot be loaded safely (damaged, or not a winnow training state)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file and rename: a kill -9 never leaves half a file.
    Read them with `weights_only=True` whatever torch's default or environment says, so a
    crafted file given to `--resume` cannot run code."""

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        try:
            checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise ResumeError(
                f"{path} cannot be resumed from: {_first_line(exc)}. It is damaged or was not "
                "written by 'winnow train' (a training state holds tensors and plain values "
                "only). Delete it to restart this run from the beginning, or start a new run."
            ) from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ResumeError(f"{path} is not a training state written by 'winnow train'.")
        return checkpoint

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(path), buffer.getvalue())


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without torch's advice to load unsafely."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "weights_only" in first:
        return "it holds objects other than tensors and plain values"
    return first[:200]


class PeriodicCheckpoint(L.Callback):
    """`last.ckpt` every N training steps and after every validation (for --resume)."""

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path)

    def on_validation_end(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)


class Throughput(L.Callback):
    """Training images per second between consecutive training batches (data loading,
    augmentation, forward, backward, optimizer), leaving out validation and checkpoints."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.images = 0
        self._last: float | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds += now - self._last
            self.images += len(batch[1])
        self._last = time.perf_counter()  # checkpoint writes after this hook are not counted

    def on_validation_start(self, trainer, module) -> None:
        self._last = None

    def on_train_epoch_start(self, trainer, module) -> None:
        self._last = None

    @property
    def images_per_second(self) -> float | None:
        return round(self.images / self.seconds, 1) if self.seconds else None


class MetricsFile(L.Callback):
    """Rewrite metrics.csv from the module's epoch history after every validation."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0 or not module.history:
            return
        write_metrics(self.path, module.history)


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    # every column any row has (a run resumed from an older checkpoint has rows without the
    # newer columns), in the order they first appear
    fields = list(dict.fromkeys(key for row in history for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    for row in history:
        writer.writerow({k: f"{v:.6g}" for k, v in row.items()})
    atomic_write_bytes(path, buffer.getvalue().encode())
