"""Out-of-fold predicted probabilities: K short from-scratch trainings, each scoring the
fold it did not see (what confident learning needs: every item judged by a model that
never trained on it).

Folds are stratified by label and group-aware (`sklearn.model_selection.StratifiedGroupKFold`):
members of one duplicate group share a fold, so a copy in the training folds cannot vouch
for its twin. Each fold trains with the project's own recipe (`ClassifierModule`: the
model, augmentation, sampler, loss and one-cycle schedule of `winnow train`) on pixels
already in RAM, driven by the clock (`BudgetSchedule`): the learning rate anneals to zero
at the fold's deadline, or after `max_epochs` epochs on a small folder. No checkpoints,
no validation passes: the fold's only output is its probabilities.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from winnow.inference.preprocess import channel_stats
from winnow.training.config import TrainConfig
from winnow.training.data import BatchStream
from winnow.training.module import STEP_SEED_STRIDE, ClassifierModule

PREDICT_BATCH = 512
MIN_BATCH = 16


@dataclass
class FoldProgress:
    """What a progress bar shows: the fold under way and its share of the budget done."""

    total: int  # folds × 100
    done: int = 0
    description: str = "label_issue"


@dataclass(frozen=True)
class FoldReport:
    fold: int
    train_items: int
    held_out: int
    epochs: float
    steps: int
    seconds: float
    accuracy: float  # argmax accuracy on the held-out fold, against the given labels


def assign_folds(targets: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every item: stratified by target, one fold per group."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(targets), dtype=np.int64)
    with warnings.catch_warnings():  # a class smaller than `folds` is expected and harmless
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        for fold, (_, held_out) in enumerate(
            splitter.split(np.zeros(len(targets)), targets, groups)
        ):
            fold_of[held_out] = fold
    return fold_of


def out_of_fold(
    images: torch.Tensor,
    targets: np.ndarray,
    n_classes: int,
    fold_of: np.ndarray,
    seconds_per_fold: float,
    config: TrainConfig,
    max_epochs: int,
    on_progress: Callable | None = None,
) -> tuple[np.ndarray, list[FoldReport]]:
    """(n, n_classes) softmax probabilities, each row from the fold model that did not
    train on it, and one report per fold. `images` are (n, 3, s, s) uint8 at the
    training size."""
    folds = int(fold_of.max()) + 1
    probabilities = np.zeros((len(targets), n_classes), dtype=np.float32)
    progress = FoldProgress(total=folds * 100)
    reports = []
    for fold in range(folds):
        progress.description = f"label_issue: fold {fold + 1}/{folds}"
        held_out = np.flatnonzero(fold_of == fold)
        training = np.flatnonzero(fold_of != fold)

        def tick(share: float, fold: int = fold) -> None:
            if on_progress is not None:
                progress.done = fold * 100 + min(100, int(share * 100))
                on_progress(progress)

        module, report = _train_fold(
            images[torch.from_numpy(training)],
            targets[training],
            n_classes,
            seconds_per_fold,
            config.model_copy(update={"seed": config.seed + fold}),
            max_epochs,
            tick,
        )
        probabilities[held_out] = _predict(module, images[torch.from_numpy(held_out)], n_classes)
        accuracy = float((probabilities[held_out].argmax(1) == targets[held_out]).mean())
        reports.append(
            FoldReport(fold, len(training), len(held_out), *report, accuracy=round(accuracy, 4))
        )
    if on_progress is not None:
        progress.done = progress.total
        on_progress(progress)
    return probabilities, reports


def _train_fold(
    images: torch.Tensor,
    targets: np.ndarray,
    n_classes: int,
    seconds: float,
    config: TrainConfig,
    max_epochs: int,
    tick: Callable[[float], None],
) -> tuple[ClassifierModule, tuple[float, int, float]]:
    """One from-scratch training on (images, targets): the module, and (epochs, steps,
    seconds) trained."""
    mean, std = channel_stats(images.permute(0, 2, 3, 1).numpy())
    counts = np.bincount(targets, minlength=n_classes)
    # a small folder trains in smaller batches: epochs of one or two steps learn nothing
    batch_size = min(config.batch_size, max(MIN_BATCH, len(targets) // 8))
    stream = BatchStream(images, targets, n_classes, batch_size, config.imbalance, config.seed)
    total_steps = max(1, max_epochs * len(stream))
    module = ClassifierModule(
        config, list(range(n_classes)), counts.tolist(), mean, std, total_steps, {}
    )
    if config.uses_channels_last:
        module.channels_last = True
        module.model = module.model.to(memory_format=torch.channels_last)
    module.schedule.budget = seconds
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"]
    scheduler = optimizers["lr_scheduler"]["scheduler"]
    module.train()
    started = time.perf_counter()
    module.schedule.start()
    step, done = 0, 0.0
    batches = ((e, b) for e in itertools.count() for b in stream.batches(e))
    while done < 1:
        epoch, (batch, batch_targets, (_, position)) = next(batches)
        # every batch's randomness depends only on (seed, epoch, batch), as in `winnow train`
        torch.manual_seed(config.seed * STEP_SEED_STRIDE + epoch * 65_537 + position)
        _, _, loss = module.forward_loss(batch, batch_targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        done = module.schedule.progress(step)
        tick(done)
    epochs = step / max(1, len(stream))
    return module, (round(epochs, 2), step, round(time.perf_counter() - started, 2))


@torch.no_grad()
def _predict(module: ClassifierModule, images: torch.Tensor, n_classes: int) -> np.ndarray:
    module.eval()
    parts = []
    for start in range(0, len(images), PREDICT_BATCH):
        logits = module.predict_logits(images[start : start + PREDICT_BATCH])
        parts.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, n_classes), np.float32)
