"""`batch_size: auto` and `image_size: auto`: the batch and the training side a run uses.

On a CPU `auto` is the measured winner of the 10-minute recipe (batch 128 at 64 px,
docs/benchmarks.md): two cores are busy at that batch, and larger inputs cost more epochs
than they return at that budget. A GPU is idle at that batch, so there the sizes are
measured before the run, inside its budget: the model's forward + backward + AdamW step
on random tensors, at the run's precision and memory format, for each batch of
BATCH_LADDER at each side of SIZE_LADDER up to the pixel cache's side (a batch the GPU has
no memory for ends that side's ladder).

- batch: the smallest batch within BATCH_TOLERANCE of the best throughput at the chosen
  side (a larger batch takes fewer optimiser steps for almost no more images a second),
  and never more than 1/MIN_STEPS_PER_EPOCH of the training items;
  the learning rate then grows with the square root of the batch (`lr` is stated for
  BASE_BATCH), the usual rule for Adam-type optimisers.
- side: the largest side at which the budget still trains SIZE_UP_EPOCHS epochs (about
  the epochs the recipe trains at 64 px in 10 minutes on a CPU with bf16 units, where it
  scored best); without a time budget (max_steps, max_epochs) the side stays BASE_SIZE.

A size given as a number is used as it is. `config.yaml` stores what `auto` became, and
plan.json the probe's table, so a repeat on another machine trains the same way.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from winnow.training.config import TrainConfig
from winnow.training.trainer import TrainError, autocast, resolved_precision

log = logging.getLogger(__name__)

BASE_BATCH = 128  # `lr` is stated for this batch; `auto` on a CPU
BASE_SIZE = 64  # `auto` on a CPU and without a time budget
BATCH_LADDER = (128, 256, 512, 1024)
SIZE_LADDER = (64, 96, 128)
BATCH_TOLERANCE = 0.9  # the smallest batch with at least 90 % of the best images a second
MIN_STEPS_PER_EPOCH = 16  # a batch never takes more than 1/16 of the training items
SIZE_UP_EPOCHS = 120
PROBE_STEPS = 5  # the first two warm up (cuDNN's algorithm search, the allocator)


@dataclass
class Sizing:
    """What `auto` became, and the probe behind it (empty on a CPU)."""

    batch_size: int
    image_size: int
    lr: float
    reason: str
    probe: list[dict[str, Any]] = field(default_factory=list)

    def as_plan(self) -> dict[str, Any]:
        return {"sizing": {"reason": self.reason, "probe": self.probe}}


def needs_sizing(config: TrainConfig) -> bool:
    return config.batch_size == "auto" or config.image_size == "auto"


def measures_sizes(device: str) -> bool:
    """Whether `auto` sizes are measured on this device (a GPU) or the recipe's (a CPU)."""
    return device == "cuda"


def resolve_sizes(
    config: TrainConfig,
    n_classes: int,
    train_items: int,
    device: str,
    cache_side: int,
    budget_seconds: float | None,
) -> tuple[TrainConfig, Sizing]:
    """The config with every `auto` size replaced by a number, and why."""
    if not measures_sizes(device):
        recipe = recipe_sizes(config)
        sizing = Sizing(
            int(recipe.batch_size),
            int(recipe.image_size),
            config.lr,
            "CPU: the recipe's measured batch and side",
        )
    else:
        sides = (
            [config.image_size]
            if config.image_size != "auto"
            else [s for s in SIZE_LADDER if s <= cache_side] or [min(BASE_SIZE, cache_side)]
        )
        batches = (
            [config.batch_size]
            if config.batch_size != "auto"
            else [
                b for b in BATCH_LADDER if b <= max(BASE_BATCH, train_items // MIN_STEPS_PER_EPOCH)
            ]
        )
        probe = probe_throughput(config, n_classes, device, sides, batches)
        sizing = choose_sizes(config, probe, train_items, budget_seconds)
    resolved = config.model_copy(
        update={
            "batch_size": sizing.batch_size,
            "image_size": sizing.image_size,
            "lr": sizing.lr,
        }
    )
    log.info("sizes: batch %d, %d px (%s)", sizing.batch_size, sizing.image_size, sizing.reason)
    return resolved, sizing


def recipe_sizes(config: TrainConfig) -> TrainConfig:
    """The config with every `auto` size at the recipe's CPU value (no measuring)."""
    return config.model_copy(
        update={
            "batch_size": BASE_BATCH if config.batch_size == "auto" else config.batch_size,
            "image_size": BASE_SIZE if config.image_size == "auto" else config.image_size,
        }
    )


def choose_sizes(
    config: TrainConfig,
    probe: list[dict[str, Any]],
    train_items: int,
    budget_seconds: float | None,
) -> Sizing:
    """Pick the side, then the batch, from the probe's rows (side, batch, images_per_second;
    a batch that ran out of memory has none)."""
    measured = [row for row in probe if row.get("images_per_second")]
    if not measured:
        raise TrainError(
            "No batch of the size probe fitted in the device's memory: set batch_size "
            "(and image_size) to numbers small enough for it."
        )
    best_at: dict[int, dict[str, Any]] = {}
    for row in measured:
        if row["images_per_second"] > best_at.get(row["side"], {}).get("images_per_second", 0):
            best_at[row["side"]] = row
    sides = sorted(best_at)
    if config.image_size != "auto":
        side, why = int(config.image_size), f"{config.image_size} px as set"
    elif budget_seconds is None:
        side = BASE_SIZE if BASE_SIZE in best_at else sides[0]
        why = f"{side} px: no time budget to spend on larger inputs"
    else:
        fits = [
            s
            for s in sides
            if best_at[s]["images_per_second"] * budget_seconds / max(1, train_items)
            >= SIZE_UP_EPOCHS
        ]
        side = max(fits) if fits else sides[0]
        epochs = best_at[side]["images_per_second"] * budget_seconds / max(1, train_items)
        why = (
            f"{side} px: the largest side with at least {SIZE_UP_EPOCHS} epochs in the budget "
            f"(about {epochs:.0f})"
            if fits
            else f"{side} px: no side reaches {SIZE_UP_EPOCHS} epochs in the budget"
        )
    at_side = sorted((r for r in measured if r["side"] == side), key=lambda r: r["batch"])
    if config.batch_size != "auto":
        batch, lr = int(config.batch_size), config.lr
        why += f"; batch {batch} as set"
    else:
        top = max(r["images_per_second"] for r in at_side)
        batch = next(r["batch"] for r in at_side if r["images_per_second"] >= BATCH_TOLERANCE * top)
        lr = config.lr * math.sqrt(batch / BASE_BATCH)
        why += (
            f"; batch {batch}: the smallest within {BATCH_TOLERANCE:.0%} of the best "
            f"images a second ({top:.0f}), lr {config.lr:g} × √({batch}/{BASE_BATCH})"
        )
    return Sizing(batch, side, float(f"{lr:.6g}"), why, probe)


def probe_throughput(
    config: TrainConfig,
    n_classes: int,
    device: str,
    sides: list[int],
    batches: list[int],
    steps: int = PROBE_STEPS,
) -> list[dict[str, Any]]:
    """Images a second of the model's training step on random tensors, per (side, batch);
    at each side the ladder stops at the first batch the device has no memory for."""
    rows = []
    for side in sides:
        for batch in sorted(batches):
            try:
                speed = step_images_per_second(config, n_classes, device, side, batch, steps)
            except torch.cuda.OutOfMemoryError:
                speed = None
            rows.append(
                {"side": side, "batch": batch, "images_per_second": speed and round(speed, 1)}
            )
            if device == "cuda":
                torch.cuda.empty_cache()  # the step's tensors are gone: give the memory back
            if speed is None:
                break
    return rows


def step_images_per_second(
    config: TrainConfig, n_classes: int, device: str, side: int, batch: int, steps: int = 8
) -> float:
    """Forward + backward + AdamW on random tensors (no data, no augmentation) at the
    precision and memory format the run uses: the model's own floor. The first two steps
    are not counted."""
    from winnow.models import create_model

    torch.manual_seed(0)
    model = create_model(config.model, n_classes, **config.model_params).to(device).train()
    images = torch.randn(batch, 3, side, side, device=device)
    targets = torch.randint(0, n_classes, (batch,), device=device)
    if config.uses_channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    precision = resolved_precision(config, device)
    times = []
    for _ in range(max(3, steps)):
        tick = time.perf_counter()
        with autocast(precision, device):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
    return batch / float(np.median(times[2:]))
