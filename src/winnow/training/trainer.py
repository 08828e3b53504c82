"""Engineering around the training step: Lightning's Trainer for a run (devices, precision,
callbacks, checkpoints, the logger), the processes and threads a run uses on each machine,
and the quieting of Lightning's chatter in a CLI."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from winnow.errors import WinnowError
from winnow.training.config import TrainConfig


class TrainError(WinnowError, RuntimeError):
    """Training can't start or resume; the message says why and what to do."""


def device_for(config: TrainConfig) -> str:
    if config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def threads_for(config: TrainConfig) -> int:
    """Intra-op threads per process: `threads` when set; otherwise, for several processes on
    the CPU, the cores shared out among them (each process defaulting to every core would
    run cores × processes threads on the cores); else PyTorch's default."""
    if config.threads:
        return config.threads
    device = device_for(config)
    processes = processes_per_node(config, device)
    if device == "cpu" and processes > 1:
        return max(1, (os.cpu_count() or 1) // processes)
    return torch.get_num_threads()


def processes_per_node(config: TrainConfig, device: str) -> int:
    if isinstance(config.devices, int):
        return config.devices
    if device == "cuda" and config.devices == "auto":
        return torch.cuda.device_count()
    return 1


def world_size(config: TrainConfig, device: str) -> int:
    """Processes in the run: each node's processes times the nodes."""
    return processes_per_node(config, device) * config.num_nodes


def resolved_precision(config: TrainConfig, device: str) -> str:
    """Lightning's precision for the run: `precision` when set; `auto` is bf16 mixed
    precision where the hardware multiplies bf16 matrices (a GPU that has bf16, a CPU with
    Intel AMX), fp16 mixed on an older GPU, and full fp32 on other CPUs, where bf16 is
    emulated and slower."""
    if config.precision != "auto":
        return config.precision
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_multiplies_bf16() else "32-true"


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (Intel AMX tiles), asked of PyTorch's CPU
    feature detection; False where the check is missing or fails. AVX-512 BF16 without
    AMX (e.g. AMD Zen 4) does not count: its steps are faster but a 10-minute run did not
    score better than fp32 (docs/benchmarks.md)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check is not None and check())
    except Exception:  # a private check: never let it stop a run
        return False


def autocast(precision: str, device: str):
    """The autocast context Lightning's mixed `precision` runs steps under, from Lightning's
    own precision plugin (a no-op for full precision), for timing steps outside Lightning
    as it will run them."""
    import contextlib

    if precision not in ("bf16-mixed", "16-mixed"):
        return contextlib.nullcontext()
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision(precision, device).autocast_context_manager()


def require_logger(config: TrainConfig) -> None:
    """Refuse, before anything is written, a logger whose package is missing."""
    if config.logger != "tensorboard":
        return
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise TrainError(
            "logger: tensorboard needs the tensorboard package: "
            "pip install -c constraints.txt tensorboard (or use logger: csv)."
        ) from None


def _logger(config: TrainConfig, out_dir: Path):
    """Lightning's logger beside metrics.csv: none, csv (RUN/train/NAME/logs/) or
    tensorboard (RUN/train/NAME/tensorboard/, `tensorboard --logdir` it)."""
    if config.logger == "none":
        return False
    if config.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(out_dir, name="logs", version="")
    require_logger(config)
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(out_dir, name="tensorboard", version="")


def _quiet_lightning() -> None:
    """Lightning's banners and tips are noise in a CLI; real warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        "Checkpoint directory .* exists and is not empty",
        ".*weights_only. was not set",
        ".*isinstance.treespec, LeafSpec.",
        ".*does not have many workers",
    ):
        warnings.filterwarnings("ignore", message=message)


def make_trainer(config, plan: dict, out_dir: Path, device: str, progress: bool, extra: list):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from winnow.training.callbacks import AtomicCheckpointIO, MetricsFile, PeriodicCheckpoint

    callbacks: list[Any] = [
        PeriodicCheckpoint(out_dir / "last.ckpt", plan["checkpoint_every_steps"]),
        MetricsFile(out_dir / "metrics.csv"),
        *extra,
    ]
    if config.select == "best_macro_f1":
        best = ModelCheckpoint(
            dirpath=out_dir,
            filename="best",
            monitor="val_macro_f1",
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        callbacks.insert(0, best)
    if config.early_stopping_patience:
        callbacks.append(
            EarlyStopping("val_macro_f1", mode="max", patience=config.early_stopping_patience)
        )
    if progress:
        from winnow.training.progress import BudgetProgressBar

        callbacks.append(BudgetProgressBar(plan["epochs"], plan.get("val_items", 0)))
    _quiet_lightning()
    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=config.devices,
        num_nodes=config.num_nodes,
        precision=resolved_precision(config, device),
        max_steps=plan["max_steps"],
        max_epochs=-(-plan["max_steps"] // plan["steps_per_epoch"]),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=_logger(config, out_dir),
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=min(50, plan["steps_per_epoch"]),
        num_sanity_val_steps=0,
        deterministic=device == "cpu",
        default_root_dir=str(out_dir),
    )
