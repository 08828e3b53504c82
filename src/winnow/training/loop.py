"""`winnow train`: read the split run, fit the step count to the time budget, let Lightning
run the loop, then score the best checkpoint on the run's test split and write the card.

RUN/train/NAME/
    config.yaml      the resolved TrainConfig (max_steps = the steps the run trained;
                     precision, compile, batch and image size as `auto` resolved them
                     on this machine, lr scaled with the batch): a
                     run with it repeats this one step for step (a budgeted run's learning
                     rate followed the clock; the repeat follows the steps)
    plan.json        how the budget became steps (measured step time, epochs) and,
                     on a GPU, the size probe (training.sizing)
    best.ckpt        the weights inference uses (select: final = end of the annealed
                     schedule, or the best validation macro-F1 epoch), with the softmax
                     temperature and confidence map fitted on validation; last.ckpt:
                     latest state, for --resume
    metrics.csv      one row per epoch; curves.png; model_card.md; summary.json
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from winnow.config import ConfigError, build_config, dump_config
from winnow.data.cache import PixelCache
from winnow.data.io import atomic_write_bytes
from winnow.data.manifest import read_manifest
from winnow.inference.calibrated import IDENTITY_MAP
from winnow.inference.preprocess import Preprocessing, channel_stats
from winnow.models import ModelError, get_spec
from winnow.training.config import UNMIXED, TrainConfig
from winnow.training.data import (
    BatchStream,
    EvalBatches,
    SplitRows,
    TrainingDataError,
    load_pixels,
    select_rows,
)
from winnow.training.planner import build_module, plan_run
from winnow.training.sizing import Sizing, needs_sizing, resolve_sizes
from winnow.training.trainer import (
    TrainError,
    device_for,
    make_trainer,
    require_logger,
    threads_for,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# CutMix/MixUp regularise long schedules; below this many epochs they cost accuracy
# (timm's and torchvision's recipes use them for 100-600 epochs), so each mixing mode
# becomes its unmixed one (config.UNMIXED)
MIX_MIN_EPOCHS = 60


@dataclass
class TrainResult:
    out_dir: Path
    best: Path
    summary: dict[str, Any]


def train(
    run_dir: Path,
    config: TrainConfig,
    name: str | None = None,
    resume: Path | None = None,
    progress: bool = False,
    callbacks: list | None = None,
) -> TrainResult:
    """Train (or resume) one model on RUN's split; return where everything was written."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    out_dir, config, plan = _output_dir(run_dir, config, name, resume)
    require_logger(config)
    torch.set_num_threads(threads_for(config))
    device = device_for(config)
    data, config, sizing = _load_split(run_dir, config, device, started)
    if plan is not None and plan["fingerprint"] != data.rows.fingerprint:
        raise TrainError(
            f"The training data of {run_dir} changed since this run started (fingerprint "
            f"{plan['fingerprint']} → {data.rows.fingerprint}); start a new run instead of "
            "resuming."
        )
    rows = data.rows
    counts = np.bincount(rows.frames["train"]["target"], minlength=len(rows.classes))
    stream = BatchStream(
        data.images["train"],
        rows.frames["train"]["target"].to_numpy(),
        len(rows.classes),
        config.batch_size,
        config.imbalance,
        config.seed,
    )
    val = EvalBatches(
        data.images["val"], rows.frames["val"]["target"].to_numpy(), config.batch_size
    )
    if plan is None:
        plan = plan_run(
            config, stream, val, rows, counts, data.mean, data.std, data.meta, device, started
        )
        if sizing is not None:
            plan.update(sizing.as_plan())
        config = _settle_plan(config, plan, out_dir)
    module = build_module(
        config,
        rows,
        counts,
        data.mean,
        data.std,
        plan["max_steps"],
        data.meta,
        plan.get("compile", False),
    )
    module.stream = stream
    module.schedule.budget = plan.get("fit_budget_seconds")
    from winnow.training.callbacks import Throughput
    from winnow.training.schedule import StopAtDeadline

    throughput = Throughput()
    extra = [throughput, StopAtDeadline(module.schedule), *(callbacks or [])]
    trainer = make_trainer(config, plan, out_dir, device, progress, extra)
    fit_started = time.perf_counter()
    last = out_dir / "last.ckpt"
    trainer.fit(
        module,
        train_dataloaders=stream,
        val_dataloaders=val,
        ckpt_path=str(last) if resume is not None and last.exists() else None,
    )
    fit_seconds = time.perf_counter() - fit_started
    trainer.save_checkpoint(last)  # every rank: saving is a collective under DDP
    if config.select == "final":
        trainer.save_checkpoint(out_dir / "best.ckpt")
    if trainer.global_rank != 0:
        return TrainResult(out_dir, out_dir / "best.ckpt", {})
    plan = {
        **plan,
        "fit_seconds": round(fit_seconds, 1),
        "steps_done": int(trainer.global_step),
        "seconds_trained": round(module.schedule.elapsed(), 1),
        "final_lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        "train_images_per_second": throughput.images_per_second,
    }
    return _finish(run_dir, out_dir, config, plan, module, data)


def _finish(
    run_dir: Path, out_dir: Path, config: TrainConfig, plan: dict, module, data: _SplitData
) -> TrainResult:
    """On rank 0 after fitting: the config in steps, the temperature, the card and plots."""
    if plan["source"] == "max_minutes":
        # the clock decided the length: the saved config repeats it in steps
        done = config.model_copy(update={"max_steps": plan["steps_done"]})
        atomic_write_bytes(out_dir / "config.yaml", dump_config(done).encode())
    val_rows = data.rows.frames["val"]
    plan["temperature"], plan["confidence_map"] = (
        calibrate_checkpoint(out_dir / "best.ckpt", data.images["val"], val_rows)
        if config.calibrate
        else (1.0, dict(IDENTITY_MAP))
    )
    from winnow.training.report import write_outputs

    summary = write_outputs(out_dir, module, data.images, data.rows, config, plan, run_dir)
    return TrainResult(out_dir, out_dir / "best.ckpt", summary)


@dataclass
class _SplitData:
    """The run's split, decoded: rows, pixels per split, normalisation and checkpoint meta."""

    rows: SplitRows
    images: dict[str, torch.Tensor]
    mean: np.ndarray
    std: np.ndarray
    meta: dict[str, Any]


def _output_dir(
    run_dir: Path, config: TrainConfig, name: str | None, resume: Path | None
) -> tuple[Path, TrainConfig, dict | None]:
    """Where this run writes, its config, and its plan when one was already made (a resumed
    run, or a DDP worker that rank 0 planned for)."""
    if resume is not None:
        out_dir = Path(resume)
        return (out_dir, *_load_resumable(out_dir))
    config = _resolve_params(config)
    out_dir = run_dir / "train" / (name or config.model)
    if _launched_rank() > 0 and (out_dir / "plan.json").exists():
        # a DDP worker Lightning re-launched: rank 0 has planned this run already
        return (out_dir, *_load_resumable(out_dir, expect_checkpoint=False))
    if (out_dir / "config.yaml").exists():
        raise TrainError(
            f"{out_dir} already holds a training run. Choose another --name, or continue "
            f"it with 'winnow train --resume {out_dir}'."
        )
    return out_dir, config, None


def _load_split(
    run_dir: Path, config: TrainConfig, device: str, started: float
) -> tuple[_SplitData, TrainConfig, Sizing | None]:
    """The split's rows and pixels, at the sizes `auto` resolves to (training.sizing)."""
    try:
        frame = read_manifest(run_dir)
        rows = select_rows(frame, config.cleaning)
        cache = PixelCache(run_dir)
    except (TrainingDataError, FileNotFoundError) as exc:
        raise TrainError(str(exc)) from None
    sizing = None
    if needs_sizing(config):
        budget = (
            config.max_minutes * 60 - (time.perf_counter() - started)
            if config.max_steps is None and config.max_epochs is None
            else None
        )
        config, sizing = resolve_sizes(
            config,
            len(rows.classes),
            len(rows.frames["train"]),
            device,
            cache.image_size,
            budget,
        )
    images = {
        split: load_pixels(cache, frame, config.image_size) for split, frame in rows.frames.items()
    }
    mean, std = channel_stats(images["train"].permute(0, 2, 3, 1).numpy())
    preprocessing = Preprocessing(cache.image_size, config.image_size, cache.background, mean, std)
    meta = _checkpoint_meta(config, rows, preprocessing, run_dir, frame)
    return _SplitData(rows, images, mean, std, meta), config, sizing


def _settle_plan(config: TrainConfig, plan: dict, out_dir: Path) -> TrainConfig:
    """Write down what `auto` resolved to on this machine (so that config.yaml repeats the
    run anywhere) and the plan; switch a mixing augmentation off for a short plan."""
    update: dict[str, Any] = {
        "max_steps": plan["max_steps"],
        "precision": plan["precision"],
        "compile": "on" if plan["compile"] else "off",
    }
    unmixed = UNMIXED.get(config.augment)
    if unmixed and plan["epochs"] < MIX_MIN_EPOCHS:
        update["augment"] = unmixed
        plan["augment_note"] = (
            f"{config.augment} switched to {unmixed}: {plan['epochs']} epochs planned, "
            f"CutMix/MixUp pay from about {MIX_MIN_EPOCHS}"
        )
        log.warning("%s", plan["augment_note"])
    config = config.model_copy(update=update)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "config.yaml", dump_config(config).encode())
    atomic_write_bytes(out_dir / "plan.json", json.dumps(plan, indent=2).encode())
    return config


def calibrate_checkpoint(
    path: Path, val_images: torch.Tensor, val_rows: pd.DataFrame
) -> tuple[float, dict[str, float]]:
    """Fit the softmax temperature of `path`'s weights on the validation split, then the
    confidence map on the temperature-scaled probabilities (evaluate.calibration), and
    store both in the checkpoint (meta `temperature`, `confidence_map`)."""
    from winnow.evaluate.calibration import fit_calibration
    from winnow.inference.load import load_model

    loaded = load_model(path)
    logits = loaded.logits(val_images.permute(0, 2, 3, 1).numpy())
    temperature, confidence_map = fit_calibration(logits, val_rows["target"].to_numpy())
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["winnow"]["temperature"] = temperature
    checkpoint["winnow"]["confidence_map"] = confidence_map
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return temperature, confidence_map


def _launched_rank() -> int:
    """The process rank Lightning's DDP launcher gave this process (0 when not launched)."""
    return int(os.environ.get("LOCAL_RANK") or os.environ.get("RANK") or 0)


def _resolve_params(config: TrainConfig) -> TrainConfig:
    """Validate the model and its parameters now, and fill in every default."""
    from winnow.models import create_model

    try:
        get_spec(config.model)
        create_model(config.model, 2, **config.model_params)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    params = {**get_spec(config.model).defaults(), **config.model_params}
    return config.model_copy(update={"model_params": params})


def _load_resumable(out_dir: Path, expect_checkpoint: bool = True) -> tuple[TrainConfig, dict]:
    config_file, plan_file = out_dir / "config.yaml", out_dir / "plan.json"
    if not config_file.exists() or not plan_file.exists():
        raise TrainError(f"{out_dir} is not a training run (no config.yaml / plan.json).")
    if expect_checkpoint and not (out_dir / "last.ckpt").exists():
        log.warning("%s has no last.ckpt yet: training starts from the beginning", out_dir)
    config = build_config(TrainConfig, yaml.safe_load(config_file.read_text()) or {})
    return config, json.loads(plan_file.read_text())


def _checkpoint_meta(
    config: TrainConfig,
    rows: SplitRows,
    preprocessing: Preprocessing,
    run_dir: Path,
    frame: pd.DataFrame,
) -> dict[str, Any]:
    """Everything inference needs, in plain types (loads with torch.load(weights_only=True))."""
    train = rows.frames["train"]
    known = frame[frame["status"] == "ok"]
    return {
        "format": CHECKPOINT_FORMAT,
        "model": config.model,
        "model_params": dict(config.model_params),
        "classes": list(rows.classes),
        "preprocessing": preprocessing.to_dict(),
        "weights_prefix": "ema.module." if config.ema_decay > 0 else "model.",
        "tta": config.tta,
        "temperature": 1.0,  # fitted on validation after training (calibrate_checkpoint)
        "confidence_map": dict(IDENTITY_MAP),
        "data": {
            "run": str(run_dir.resolve()),
            "fingerprint": rows.fingerprint,
            "train_counts": {c: int((train["train_label"] == c).sum()) for c in rows.classes},
            "cleaning": config.cleaning,
        },
        # for leakage checks at evaluation: every readable file of the training folder
        "train_hashes": {
            "pixel_sha256": [str(h)[:16] for h in known["pixel_sha256"].fillna("")],
            "phash": [int(h) for h in known["phash"].fillna(0).astype(np.int64)],
            "dhash": [int(h) for h in known["dhash"].fillna(0).astype(np.int64)],
        },
    }
