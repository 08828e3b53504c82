"""The training recipe: the time-driven schedule, weight averaging, test-time augmentation,
temperature scaling, progressive resizing, and MixUp/CutMix switched off for short runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_TRAIN
from winnow.evaluate.calibration import (
    IDENTITY_MAP,
    coverage_curve,
    fit_confidence_map,
    fit_temperature,
    map_confidence,
    reliability,
    softmax,
)
from winnow.inference.load import load_model
from winnow.models import create_model
from winnow.training.config import TrainConfig
from winnow.training.loop import train
from winnow.training.schedule import BudgetSchedule, mean_step_cost, progressive_size


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_schedule_follows_the_clock_when_the_machine_slows_down() -> None:
    schedule = BudgetSchedule(total_steps=100, warmup_fraction=0.2, budget_seconds=100.0)
    schedule.clock = clock = FakeClock()
    schedule.start()
    factors = []
    for step in range(100):
        clock.now += 1.0 if step < 10 else 4.0  # four times slower after step 10
        factors.append(schedule.lr_factor(step + 1))
        if schedule.progress(step + 1) >= 1:
            break
    # the deadline arrives after 10 + 22.5 steps, long before the 100 planned ones
    assert len(factors) == 33
    assert factors[-1] == pytest.approx(0.0, abs=1e-9)  # annealed to zero by the deadline
    assert max(factors) == pytest.approx(1.0, abs=0.05)
    # without a budget the schedule is step-exact
    steps_only = BudgetSchedule(total_steps=100, warmup_fraction=0.2)
    steps_only.clock = clock
    steps_only.start()
    clock.now += 1e6
    assert steps_only.progress(50) == 0.5
    assert steps_only.lr_factor(100) == pytest.approx(0.0, abs=1e-9)
    assert steps_only.lr_factor(0) == pytest.approx(1 / 25)


def test_a_run_slowed_on_purpose_still_anneals_and_stops_by_its_deadline(demo_run) -> None:
    _, run = demo_run

    class SlowDown(L.Callback):
        """Another job arrives after a few steps: every step now takes 0.4 s longer."""

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.global_step > 3:
                time.sleep(0.4)

    settings = {k: v for k, v in TINY_TRAIN.items() if k != "max_epochs"}
    config = TrainConfig(**settings, max_minutes=0.25)
    started = time.perf_counter()
    result = train(run, config, name="slowed", callbacks=[SlowDown()])
    wall = time.perf_counter() - started
    plan = result.summary["plan"]
    assert plan["source"] == "max_minutes"
    assert plan["steps_done"] < plan["max_steps"]  # cut by the clock, not by the step count
    assert plan["final_lr"] < 0.05 * config.lr  # ... with the learning rate annealed
    # the deadline is checked after each step: one slowed step (0.4 s + its own time) and
    # the validation closing the epoch can still be in flight when it passes
    assert plan["seconds_trained"] <= plan["fit_budget_seconds"] + 2.5
    assert wall < config.max_minutes * 60 + 10
    saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    assert saved["max_steps"] == plan["steps_done"]  # a repeat trains as many steps


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 5))
    truth = softmax(logits, 2.0)  # the labels follow softmax(logits / 2)
    targets = np.array([rng.choice(5, p=p) for p in truth])
    assert fit_temperature(logits, targets) == pytest.approx(2.0, rel=0.1)
    # overconfident probabilities have a large calibration error, calibrated ones a small one
    correct = rng.random(4000) < truth.max(axis=1)
    raw = softmax(logits).max(axis=1)
    assert reliability(raw, correct)["ece"] > 0.1
    assert reliability(truth.max(axis=1), correct)["ece"] < 0.03
    curve = coverage_curve(truth.max(axis=1), correct)
    coverage = [c["coverage"] for c in curve]
    assert coverage[0] == 1.0 and coverage == sorted(coverage, reverse=True)
    assert curve[-1]["accuracy"] > curve[0]["accuracy"]  # keeping the confident pays
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    # a validation split without mistakes (a tiny one, typically) can't set a temperature:
    # its likelihood would pick the smallest allowed and make every prediction near-certain
    winners = logits.argmax(axis=1)
    assert fit_temperature(logits, winners) == 1.0
    assert fit_temperature(logits[:20], targets[:20]) == 1.0


def test_the_confidence_map_corrects_what_one_temperature_cannot() -> None:
    """A model sure of too much in the middle and too little at the top: the right answer
    comes with probability sigmoid(1.6 · logit(c) − 0.5) of its stated confidence c."""
    rng = np.random.default_rng(0)
    n, k = 3000, 6
    logits = rng.normal(0, 2.5, size=(n, k))
    stated = softmax(logits)
    winner, confidence = stated.argmax(axis=1), stated.max(axis=1)
    logit_c = np.log(confidence / (1 - np.clip(confidence, None, 1 - 1e-9)))
    truly = 1 / (1 + np.exp(-(1.6 * logit_c - 0.5)))
    right = rng.random(n) < truly
    other = (winner + rng.integers(1, k, n)) % k  # a wrong answer: any other class
    targets = np.where(right, winner, other)
    fitted = fit_confidence_map(stated, targets)
    assert fitted["slope"] == pytest.approx(1.6, abs=0.2)
    assert fitted["bias"] == pytest.approx(-0.5, abs=0.2)
    mapped = map_confidence(stated, **fitted)
    # the order of the classes is kept, each row sums to one, the winner has the map's value
    np.testing.assert_array_equal(np.argsort(mapped, axis=1), np.argsort(stated, axis=1))
    np.testing.assert_allclose(mapped.sum(axis=1), 1, atol=1e-9)
    z = fitted["slope"] * logit_c + fitted["bias"]
    reachable = np.clip(1 / (1 + np.exp(-z)), 1 / k + 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(mapped.max(axis=1), reachable, atol=1e-6)
    before = reliability(confidence, right)["ece"]
    after = reliability(mapped.max(axis=1), right)["ece"]
    best_temperature = softmax(logits, fit_temperature(logits, targets)).max(axis=1)
    assert after < 0.03 < before
    assert after < reliability(best_temperature, right)["ece"] - 0.02  # one T falls short
    # too few items, or too few mistakes, to fit two numbers: the identity
    assert fit_confidence_map(stated[:50], targets[:50]) == IDENTITY_MAP
    assert fit_confidence_map(stated, winner) == IDENTITY_MAP
    assert map_confidence(stated, **IDENTITY_MAP) is not None
    np.testing.assert_array_equal(map_confidence(stated, **IDENTITY_MAP), stated)


def test_the_checkpoint_declares_flip_tta_and_its_temperature(trained: Path) -> None:
    loaded = load_model(trained / "best.ckpt")
    meta = loaded.meta
    assert meta["tta"] == "flip" and meta["weights_prefix"] == "model."
    summary = json.loads((trained / "summary.json").read_text())
    assert meta["temperature"] == summary["temperature"] > 0
    assert summary["select"] == "final" and summary["val_items"] > 0
    # flip TTA: a picture and its mirror get the same probabilities
    pixels = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    mirrored = np.ascontiguousarray(pixels[:, :, ::-1])
    np.testing.assert_allclose(
        loaded.probabilities(pixels), loaded.probabilities(mirrored), atol=1e-5
    )
    # the probabilities are softmax(logits / temperature), then the confidence map (the
    # identity here: the demo's validation split is under MAP_MIN_ITEMS)
    assert meta["confidence_map"] == summary["confidence_map"] == IDENTITY_MAP
    expected = softmax(loaded.logits(pixels), loaded.temperature)
    np.testing.assert_allclose(loaded.probabilities(pixels), expected, atol=1e-5)
    card = (trained / "model_card.md").read_text()
    assert "then the confidence map identity (both fitted on validation)" in card


def test_with_ema_the_checkpoint_loads_the_averaged_weights(demo_run) -> None:
    _, run = demo_run
    result = train(run, TrainConfig(**TINY_TRAIN, ema_decay=0.99), name="ema")
    loaded = load_model(result.best)
    assert loaded.meta["weights_prefix"] == "ema.module."
    state = torch.load(result.best, weights_only=True)["state_dict"]
    name = next(k for k in state if k.startswith("model.") and k.endswith("weight"))
    averaged = state["ema.module." + name[len("model.") :]]
    assert not torch.equal(averaged, state[name])
    model_weights = dict(loaded.torch_model.state_dict())[name[len("model.") :]]
    assert torch.equal(model_weights, averaged)


@pytest.mark.parametrize(("mode", "unmixed"), [("mix", "basic"), ("shift_mix", "shift")])
def test_mix_is_switched_off_for_a_short_plan(demo_run, mode, unmixed) -> None:
    _, run = demo_run
    result = train(run, TrainConfig(**TINY_TRAIN, augment=mode), name=f"short-{mode}")
    assert f"{mode} switched to {unmixed}" in result.summary["plan"]["augment_note"]
    saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    assert saved["augment"] == unmixed


def test_progressive_resizing_grows_to_the_training_size(demo_run) -> None:
    assert progressive_size(0.0, 48, 64, 0.5) == 48
    assert progressive_size(0.25, 48, 64, 0.5) == 56
    assert progressive_size(0.5, 48, 64, 0.5) == 64
    assert progressive_size(0.9, 48, 64, 0.5) == 64
    assert 0.6 < mean_step_cost(48, 64, 0.5) < 1.0 and mean_step_cost(None, 64, 0.5) == 1.0
    _, run = demo_run
    config = TrainConfig(**TINY_TRAIN, progressive_min_size=16, progressive_fraction=1.0)
    result = train(run, config, name="progressive")
    sizes = [row["image_size"] for row in _history(result.out_dir)]
    assert sizes == [24, 32]  # half-way, then the full size


def _history(out_dir: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(out_dir / "metrics.csv").to_dict("records")


def test_fastnet_is_registered_with_its_parameters() -> None:
    model = create_model("fastnet", 5, width=8, stages=2, blocks=1)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5)
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 32, 8, 8)
