"""The budget planner of `winnow train`: time a few real steps on a throwaway copy of the
model (compiled and under the run's precision, as the run will take them) and turn the
time budget into a step plan (`plan.json`)."""

from __future__ import annotations

import io
import itertools
import logging
import time
from typing import Any

import numpy as np
import torch

from winnow.training.trainer import (
    TrainError,
    autocast,
    resolved_precision,
    world_size,
)

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 6  # the first two warm up oneDNN and the allocator and are not counted
# with a time budget the clock ends the run (training.schedule): the step count is only an
# upper bound, set far above the estimate so that a calibration timed on a busy machine
# never ends the run early once the machine is free again
STEP_HEADROOM = 20.0
EPOCH_OVERHEAD_SECONDS = 0.05  # Lightning's own bookkeeping per epoch
FINISH_SECONDS = 3.0  # after the fit: final checkpoint, temperature, curves, card


def build_module(config, rows, counts, mean, std, total_steps, meta, compiled: bool = False):
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


def plan_run(config, stream, val, rows, counts, mean, std, meta, device, started) -> dict[str, Any]:
    """Time a few real steps and estimate the epochs that fit the remaining budget; with a
    budget the step limit is STEP_HEADROOM × the estimate and the clock ends the run."""
    stream.shard(0, world_size(config, device))  # each process's share of an epoch
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
    module = build_module(config, rows, counts, mean, std, 10_000, meta, compiled).to(device)
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
