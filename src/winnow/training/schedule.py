"""The learning-rate schedule and the stopping rule of a run, driven by steps and time.

Progress through a run is the larger of (steps done / planned steps) and, when the run has
a time budget, (seconds trained / budget). The one-cycle learning rate (linear warm-up from
lr / WARMUP_DIVISOR, then cosine down to zero) is a function of that progress, and the run
stops when progress reaches 1. A machine that slows down mid-run therefore moves the run
along its schedule by the clock: it still anneals to zero and stops at the deadline, with
fewer steps than planned, instead of being cut with the learning rate still high.
Runs planned in steps or epochs (no budget) are step-exact and reproducible.
"""

from __future__ import annotations

import math
import time

import lightning as L

WARMUP_DIVISOR = 25.0  # torch's OneCycleLR default: start at lr / 25


class BudgetSchedule:
    def __init__(
        self, total_steps: int, warmup_fraction: float, budget_seconds: float | None = None
    ) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup = warmup_fraction
        self.budget = budget_seconds
        self.elapsed_before = 0.0  # seconds trained before a resume
        self._started: float | None = None
        self.clock = time.perf_counter  # tests replace it to simulate a slow machine

    def start(self, elapsed_before: float = 0.0) -> None:
        self.elapsed_before = elapsed_before
        self._started = self.clock()

    def elapsed(self) -> float:
        if self._started is None:
            return self.elapsed_before
        return self.elapsed_before + self.clock() - self._started

    def progress(self, step: int) -> float:
        done = step / self.total_steps
        if self.budget and self._started is not None:
            done = max(done, self.elapsed() / self.budget)
        return min(1.0, done)

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at `step` (and the current time)."""
        if self.total_steps < 4 and not self.budget:
            return 1.0  # too short for a warm-up and an annealing phase
        p = self.progress(step)
        if p < self.warmup:
            start = 1 / WARMUP_DIVISOR
            return start + (1 - start) * p / self.warmup
        return 0.5 * (1 + math.cos(math.pi * (p - self.warmup) / max(1e-9, 1 - self.warmup)))


def progressive_size(progress: float, min_size: int, size: int, fraction: float) -> int:
    """Training side at `progress`: from min_size growing linearly to `size` by `fraction`
    of the run, in steps of 8 pixels, then `size`."""
    if fraction <= 0 or progress >= fraction or min_size >= size:
        return size
    side = min_size + (size - min_size) * progress / fraction
    return min(size, max(min_size, int(round(side / 8)) * 8))


def mean_step_cost(min_size: int | None, size: int, fraction: float, points: int = 200) -> float:
    """Average cost of a step relative to a full-size one over a progressive run
    (cost ∝ pixels), for the budget planner."""
    if not min_size:
        return 1.0
    sides = [progressive_size(i / points, min_size, size, fraction) for i in range(points)]
    return sum((s / size) ** 2 for s in sides) / points


class StopAtDeadline(L.Callback):
    """Stop the run once its progress reaches 1 (steps planned, or the time budget)."""

    def __init__(self, schedule: BudgetSchedule) -> None:
        self.schedule = schedule

    def on_train_start(self, trainer, module) -> None:
        self.schedule.start(self.schedule.elapsed_before)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.schedule.progress(trainer.global_step) >= 1:
            trainer.should_stop = True
