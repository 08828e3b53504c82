"""`winnow train`: read the split run, fit the step count to the time budget, let Lightning
run the loop, then score the best checkpoint on the run's test split and write the card.

RUN/train/NAME/
    config.yaml      the resolved TrainConfig (max_steps = the steps the run trained,
                     precision and compile as `auto` resolved them on this machine): a
                     run with it repeats this one step for step (a budgeted run's learning
                     rate followed the clock; the repeat follows the steps)
    plan.json        how the budget became steps (measured step time, epochs)
    best.ckpt        the weights inference uses (select: final = end of the annealed
                     schedule, or the best validation macro-F1 epoch), with the softmax
                     temperature fitted on validation; last.ckpt: latest state, for --resume
    metrics.csv      one row per epoch; curves.png; model_card.md; summary.json
"""

from __future__ import annotations

import io
import itertools
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
from winnow.inference.preprocess import Preprocessing, channel_stats
from winnow.models import ModelError, get_spec
from winnow.training.config import TrainConfig
from winnow.training.data import (
    BatchStream,
    EvalBatches,
    SplitRows,
    TrainingDataError,
    load_pixels,
    select_rows,
)
from winnow.training.trainer import (
    TrainError,
    autocast,
    make_trainer,
    require_logger,
    resolved_precision,
)

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 6  # the first two warm up oneDNN and the allocator and are not counted
# with a time budget the clock ends the run (training.schedule): the step count is only an
# upper bound, set far above the estimate so that a calibration timed on a busy machine
# never ends the run early once the machine is free again
STEP_HEADROOM = 20.0
CHECKPOINT_FORMAT = 1
EPOCH_OVERHEAD_SECONDS = 0.05  # Lightning's own bookkeeping per epoch
FINISH_SECONDS = 3.0  # after the fit: final checkpoint, temperature, curves, card
# CutMix/MixUp regularise long schedules; below this many epochs they cost accuracy
# (timm's and torchvision's recipes use them for 100-600 epochs), so `mix` becomes `basic`
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
    if resume is not None:
        out_dir = Path(resume)
        config, plan = _load_resumable(out_dir)
    else:
        config = _resolve_params(config)
        out_dir = run_dir / "train" / (name or config.model)
        if _launched_rank() > 0 and (out_dir / "plan.json").exists():
            # a DDP worker Lightning re-launched: rank 0 has planned this run already
            config, plan = _load_resumable(out_dir, expect_checkpoint=False)
        elif (out_dir / "config.yaml").exists():
            raise TrainError(
                f"{out_dir} already holds a training run. Choose another --name, or continue "
                f"it with 'winnow train --resume {out_dir}'."
            )
        else:
            plan = None
    require_logger(config)
    torch.set_num_threads(_threads(config))
    try:
        frame = read_manifest(run_dir)
        rows = select_rows(frame, config.cleaning)
        cache = PixelCache(run_dir)
    except (TrainingDataError, FileNotFoundError) as exc:
        raise TrainError(str(exc)) from None
    images = {
        split: load_pixels(cache, frame, config.image_size) for split, frame in rows.frames.items()
    }
    mean, std = channel_stats(images["train"].permute(0, 2, 3, 1).numpy())
    preprocessing = Preprocessing(cache.image_size, config.image_size, cache.background, mean, std)
    meta = _checkpoint_meta(config, rows, preprocessing, run_dir, frame)
    if plan is not None and plan["fingerprint"] != rows.fingerprint:
        raise TrainError(
            f"The training data of {run_dir} changed since this run started (fingerprint "
            f"{plan['fingerprint']} → {rows.fingerprint}); start a new run instead of resuming."
        )
    counts = np.bincount(rows.frames["train"]["target"], minlength=len(rows.classes))
    stream = BatchStream(
        images["train"],
        rows.frames["train"]["target"].to_numpy(),
        len(rows.classes),
        config.batch_size,
        config.imbalance,
        config.seed,
    )
    val = EvalBatches(images["val"], rows.frames["val"]["target"].to_numpy(), config.batch_size)
    device = _device(config)
    if plan is None:
        plan = _plan(config, stream, val, rows, counts, mean, std, meta, device, started)
        # what `auto` resolved to on this machine, so that config.yaml repeats the run anywhere
        update: dict[str, Any] = {
            "max_steps": plan["max_steps"],
            "precision": plan["precision"],
            "compile": "on" if plan["compile"] else "off",
        }
        if config.augment == "mix" and plan["epochs"] < MIX_MIN_EPOCHS:
            update["augment"] = "basic"
            plan["augment_note"] = (
                f"mix switched to basic: {plan['epochs']} epochs planned, CutMix/MixUp "
                f"pay from about {MIX_MIN_EPOCHS}"
            )
            log.warning("%s", plan["augment_note"])
        config = config.model_copy(update=update)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / "config.yaml", dump_config(config).encode())
        atomic_write_bytes(out_dir / "plan.json", json.dumps(plan, indent=2).encode())
    module = _module(
        config, rows, counts, mean, std, plan["max_steps"], meta, plan.get("compile", False)
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
    if plan["source"] == "max_minutes":
        # the clock decided the length: the saved config repeats it in steps
        done = config.model_copy(update={"max_steps": int(trainer.global_step)})
        atomic_write_bytes(out_dir / "config.yaml", dump_config(done).encode())
    temperature = (
        calibrate_checkpoint(out_dir / "best.ckpt", images["val"], rows.frames["val"])
        if config.calibrate
        else 1.0
    )
    plan = {
        **plan,
        "fit_seconds": round(fit_seconds, 1),
        "steps_done": int(trainer.global_step),
        "seconds_trained": round(module.schedule.elapsed(), 1),
        "final_lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        "train_images_per_second": throughput.images_per_second,
        "temperature": temperature,
    }
    from winnow.training.report import write_outputs

    summary = write_outputs(out_dir, module, images, rows, config, plan, run_dir)
    return TrainResult(out_dir, out_dir / "best.ckpt", summary)


def calibrate_checkpoint(path: Path, val_images: torch.Tensor, val_rows: pd.DataFrame) -> float:
    """Fit the softmax temperature of `path`'s weights on the validation split and store
    it in the checkpoint (meta `temperature`); returns it."""
    from winnow.evaluate.calibration import fit_temperature
    from winnow.inference.load import load_model

    loaded = load_model(path)
    logits = loaded.logits(val_images.permute(0, 2, 3, 1).numpy())
    temperature = fit_temperature(logits, val_rows["target"].to_numpy())
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["winnow"]["temperature"] = temperature
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return temperature


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


def _device(config: TrainConfig) -> str:
    if config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _threads(config: TrainConfig) -> int:
    """Intra-op threads per process: `threads` when set; otherwise, for several processes on
    the CPU, the cores shared out among them (each process defaulting to every core would
    run cores × processes threads on the cores); else PyTorch's default."""
    if config.threads:
        return config.threads
    device = _device(config)
    processes = _processes_per_node(config, device)
    if device == "cpu" and processes > 1:
        return max(1, (os.cpu_count() or 1) // processes)
    return torch.get_num_threads()


def _processes_per_node(config: TrainConfig, device: str) -> int:
    if isinstance(config.devices, int):
        return config.devices
    if device == "cuda" and config.devices == "auto":
        return torch.cuda.device_count()
    return 1


def _world_size(config: TrainConfig, device: str) -> int:
    """Processes in the run: each node's processes times the nodes."""
    return _processes_per_node(config, device) * config.num_nodes


def _module(config, rows, counts, mean, std, total_steps, meta, compiled: bool = False):
    from winnow.training.module import ClassifierModule

    module = ClassifierModule(config, rows.classes, counts.tolist(), mean, std, total_steps, meta)
    if config.uses_channels_last:
        module.channels_last = True
        module.model = module.model.to(memory_format=torch.channels_last)
        if module.ema is not None:
            module.ema.module = module.ema.module.to(memory_format=torch.channels_last)
    if compiled:
        module.compile_training()
    return module


class CompileFailed(Exception):
    """torch.compile could not compile the training step (the planner's first step)."""


def _plan(config, stream, val, rows, counts, mean, std, meta, device, started) -> dict[str, Any]:
    """Time a few real steps and estimate the epochs that fit the remaining budget; with a
    budget the step limit is STEP_HEADROOM × the estimate and the clock ends the run."""
    stream.shard(0, _world_size(config, device))  # each process's share of an epoch
    steps_per_epoch = len(stream)
    stream.shard(0, 1)  # the module shards for real once Lightning knows the ranks
    compiled, compile_note = config.uses_compile(device), None
    try:
        timing = _calibrate(config, stream, val, rows, counts, mean, std, meta, device, compiled)
    except CompileFailed as exc:
        if config.compile == "on":
            raise TrainError(
                f"compile: on, but torch.compile failed on {config.model}: {exc}. "
                "Train without it (compile: off)."
            ) from None
        compiled, compile_note = False, f"torch.compile failed, trained without it: {exc}"
        log.warning("%s", compile_note)
        timing = _calibrate(config, stream, val, rows, counts, mean, std, meta, device, False)
    from winnow.training.schedule import mean_step_cost

    # a progressive run's early steps are smaller: plan with the run's mean step
    step_seconds = timing["step"] * mean_step_cost(
        config.progressive_min_size, config.image_size, config.progressive_fraction
    )
    every = max(1, round(config.checkpoint_minutes * 60 / timing["step"]))
    fit_budget = None
    if config.max_steps is not None:
        max_steps, source = config.max_steps, "max_steps"
        estimate = max_steps / steps_per_epoch
    elif config.max_epochs is not None:
        max_steps, source = config.max_epochs * steps_per_epoch, "max_epochs"
        estimate = float(config.max_epochs)
    else:
        budget = config.max_minutes * 60 - (time.perf_counter() - started) - FINISH_SECONDS
        budget -= timing["val"] + timing["save"]  # the final checkpoint and calibration
        fit_budget = max(1.0, budget)
        saves_per_epoch = 2 + steps_per_epoch / every  # best + last at the end, periodic ones
        epoch_seconds = (
            steps_per_epoch * step_seconds
            + timing["val"]
            + saves_per_epoch * timing["save"]
            + EPOCH_OVERHEAD_SECONDS
        )
        estimate = max(1.0, budget / epoch_seconds)
        max_steps, source = int(estimate * STEP_HEADROOM * steps_per_epoch), "max_minutes"
    return {
        "fingerprint": rows.fingerprint,
        "source": source,
        "device": device,
        "steps_per_epoch": steps_per_epoch,
        "max_steps": int(max_steps),
        # an estimate: a budgeted run trains until the clock says stop (STEP_HEADROOM)
        "epochs": round(estimate, 2),
        "step_seconds": round(timing["step"], 4),
        "val_seconds": round(timing["val"], 3),
        "checkpoint_seconds": round(timing["save"], 3),
        "images_per_second": round(stream.batch_size / timing["step"], 1),
        "budget_seconds": config.max_minutes * 60 if source == "max_minutes" else None,
        "fit_budget_seconds": round(fit_budget, 1) if fit_budget else None,
        "checkpoint_every_steps": every,
        "threads": torch.get_num_threads(),
        "precision": resolved_precision(config, device),
        "compile": compiled,
        # the planner's first compiled step, less a step: paid once, inside the budget
        "compile_seconds": round(timing["compile"], 1) if compiled else None,
        **({"compile_note": compile_note} if compile_note else {}),
        "train_items": int(len(rows.frames["train"])),
        "val_items": int(len(rows.frames["val"])),
        "uncleaned_items_added": rows.added_uncleaned,
    }


def _calibrate(
    config, stream, val, rows, counts, mean, std, meta, device, compiled: bool
) -> dict[str, float]:
    """Seconds per training step, validation pass and checkpoint save, measured on a
    throwaway copy of the model (the real run starts from the same initialisation). With
    `compiled`, the steps run through torch.compile: the first one compiles (its excess
    over a step is the compile time; the real run reuses the compiled code), and a
    failure to compile raises CompileFailed."""
    module = _module(config, rows, counts, mean, std, 10_000, meta, compiled).to(device)
    optimizer = module.configure_optimizers()["optimizer"]
    precision = resolved_precision(config, device)  # steps run as Lightning will run them
    batches = itertools.chain.from_iterable(stream.batches(e) for e in itertools.count())
    times = []
    for step in range(CALIBRATION_STEPS):
        images, targets, _ = next(batches)
        images, targets = images.to(device), targets.to(device)
        tick = time.perf_counter()
        try:
            with autocast(precision, device):
                _, _, loss = module.forward_loss(images, targets)
            optimizer.zero_grad()
            loss.backward()
        except Exception as exc:  # torch.compile's errors have no common base class
            if compiled and step == 0:
                first_line = (str(exc).strip().splitlines() or [""])[0]
                raise CompileFailed(f"{type(exc).__name__}: {first_line}") from exc
            raise
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
    module.eval()
    tick = time.perf_counter()
    measured = 0
    with torch.no_grad(), autocast(precision, device):
        for images, _ in itertools.islice(val, 2):
            module.predict_logits(images.to(device))
            measured += 1
    val_seconds = (time.perf_counter() - tick) / max(1, measured) * len(val)
    tick = time.perf_counter()
    torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict()}, io.BytesIO())
    save_seconds = (time.perf_counter() - tick) * 1.5  # plus the write and rename
    step = float(np.median(times[2:]))
    return {
        "step": step,
        "val": val_seconds,
        "save": save_seconds,
        "compile": max(0.0, times[0] - step) if compiled else 0.0,
    }
