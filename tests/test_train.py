"""Training: outputs, self-contained checkpoints, determinism, kill -9 and resume, budgets,
imbalance strategies and batch augmentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY_TRAIN
from winnow.cli import app
from winnow.config import ConfigError, build_config
from winnow.data.manifest import read_manifest
from winnow.inference.load import load_model
from winnow.training.augment import BatchAugment
from winnow.training.callbacks import write_metrics
from winnow.training.config import TrainConfig
from winnow.training.data import select_rows
from winnow.training.imbalance import STRATEGIES, SoftCrossEntropy
from winnow.training.loop import TrainError, train
from winnow.training.report import full_epochs, plot_curves

runner = CliRunner()


def test_training_writes_every_output(trained: Path) -> None:
    for name in (
        "config.yaml",
        "plan.json",
        "best.ckpt",
        "last.ckpt",
        "metrics.csv",
        "curves.png",
        "model_card.md",
        "summary.json",
    ):
        assert (trained / name).exists(), name
    resolved = build_config(TrainConfig, yaml.safe_load((trained / "config.yaml").read_text()))
    assert resolved.max_steps is not None and resolved.model_params["stem"] == "deep"
    lines = (trained / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,seconds,image_size,lr,train_loss")
    assert len(lines) == 1 + 2
    assert (trained / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (trained / "model_card.md").read_text()
    assert "from scratch" in card and "macro-F1" in card and "circle" in card


def test_checkpoint_is_self_contained(trained: Path, demo_run) -> None:
    checkpoint = torch.load(trained / "best.ckpt", map_location="cpu", weights_only=True)
    meta = checkpoint["winnow"]
    assert meta["classes"] == sorted(meta["classes"]) and meta["model"] == "resnet10"
    assert {"cache_size", "image_size", "background", "mean", "std"} <= set(meta["preprocessing"])
    loaded = load_model(trained / "best.ckpt")
    pixels = np.full((3, 128, 128, 3), 255, dtype=np.uint8)
    probabilities = loaded.probabilities(pixels)
    assert probabilities.shape == (3, len(meta["classes"]))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_same_seed_gives_the_same_metrics(trained: Path, demo_run) -> None:
    _, run = demo_run
    again = train(run, TrainConfig(**TINY_TRAIN), name="tiny-again").out_dir
    assert _scores(again / "metrics.csv").equals(_scores(trained / "metrics.csv"))


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import lightning as L
    sys.path.insert(0, {tests!r})
    from conftest import TINY_TRAIN
    from winnow.training.config import TrainConfig
    from winnow.training.loop import train

    class KillAt(L.Callback):  # a real SIGKILL after the given optimizer step
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    train(Path(sys.argv[1]), TrainConfig(**TINY_TRAIN), name="killed", callbacks=[KillAt()])
    """
)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_result(
    trained: Path, demo_run, tmp_path: Path
) -> None:
    _, run = demo_run
    steps_per_epoch = __import__("json").loads((trained / "plan.json").read_text())[
        "steps_per_epoch"
    ]
    assert steps_per_epoch >= 3, "the demo run must give several batches per epoch"
    kill_at = steps_per_epoch + 2  # inside the second epoch
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = subprocess.run(
        [sys.executable, str(script), str(run), str(kill_at)], env=env, capture_output=True
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    out_dir = run / "train" / "killed"
    state = torch.load(out_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == kill_at  # the checkpoint is mid-epoch
    result = runner.invoke(app, ["train", "--resume", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert _scores(out_dir / "metrics.csv").equals(_scores(trained / "metrics.csv"))
    resumed = load_model(out_dir / "last.ckpt").torch_model.state_dict()
    straight = load_model(trained / "last.ckpt").torch_model.state_dict()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_a_budget_is_ended_by_the_clock_with_the_schedule_annealed(demo_run) -> None:
    _, run = demo_run
    settings = {**TINY_TRAIN, "max_epochs": None, "max_minutes": 0.1, "checkpoint_minutes": 1}
    result = train(run, TrainConfig(**settings), name="budget")
    plan = result.summary["plan"]
    assert plan["source"] == "max_minutes" and result.summary["epochs"] >= 1
    assert plan["steps_done"] < plan["max_steps"]  # the step limit is only a bound
    assert plan["seconds_trained"] <= plan["fit_budget_seconds"] + 1.0
    assert plan["final_lr"] < 0.05 * settings.get("lr", TrainConfig().lr)


def test_the_progress_line_and_lightnings_csv_logger(demo_run, monkeypatch) -> None:
    _, run = demo_run
    config = run / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_TRAIN, "max_epochs": 2}))
    args = ["train", str(run), "--config", str(config), "--logger", "csv"]
    result = runner.invoke(app, [*args, "--name", "logged"])
    assert result.exit_code == 0, result.output
    # the one progress line: epochs (exact once finished), loss, validation macro-F1, its size
    val_items = int((read_manifest(run)["split"] == "val").sum())
    assert "epoch 2/2" in result.output and "loss " in result.output
    assert "val macro-F1 " in result.output and f"({val_items} items)" in result.output
    logged = pd.read_csv(run / "train" / "logged" / "logs" / "metrics.csv")
    assert {"val_macro_f1", "loss"} <= set(logged.columns)
    assert logged["val_macro_f1"].notna().sum() == 2  # one row per validation
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not installed
    missing = runner.invoke(app, [*args[:-1], "tensorboard", "--name", "tb"])
    assert missing.exit_code == 2 and "pip install" in missing.output


def test_errors_say_what_to_do(demo_run, tmp_path: Path) -> None:
    _, run = demo_run
    with pytest.raises(TrainError, match="--resume"):
        train(run, TrainConfig(**TINY_TRAIN), name="tiny")  # the session fixture's name
    with pytest.raises(ConfigError, match="Unknown model"):
        train(run, TrainConfig(**{**TINY_TRAIN, "model": "resnet7"}), name="x")
    with pytest.raises(ConfigError, match="imbalance"):
        build_config(TrainConfig, {"imbalance": "smote"})
    frame = read_manifest(run).drop(columns=["split"])
    with pytest.raises(Exception, match="winnow split"):
        select_rows(frame, cleaning=True)
    result = runner.invoke(app, ["train", str(run), "--model", "resnet7"])
    assert result.exit_code == 2 and "Available:" in result.output


def test_cleaning_off_trains_on_dropped_rows_but_never_on_held_out_groups(demo_run) -> None:
    _, run = demo_run
    frame = read_manifest(run)
    on, off = select_rows(frame, cleaning=True), select_rows(frame, cleaning=False)
    assert off.added_uncleaned > 0
    assert len(off.frames["train"]) == len(on.frames["train"]) + off.added_uncleaned
    held_out = set(frame[frame["split"].isin(["val", "test"])]["duplicate_group"].dropna())
    assert not set(off.frames["train"]["duplicate_group"].dropna()) & held_out
    photos = frame[frame["path"].str.contains("photo_")]["path"]
    assert set(photos) <= set(off.frames["train"]["path"])
    assert not set(photos) & set(on.frames["train"]["path"])


def test_decay_and_init_choose_what_is_shrunk_and_how_layers_start() -> None:
    from winnow.training.module import ClassifierModule

    def module(**settings) -> ClassifierModule:
        config = TrainConfig(
            model="fastnet",
            model_params={"width": 8},
            **{"decay": "weights", "init": "model", **settings},
        )
        return ClassifierModule(config, ["a", "b"], [5, 5], (0.5,) * 3, (0.2,) * 3, 10, {})

    def groups(built: ClassifierModule) -> list[tuple[float, int]]:
        optimizer = built.configure_optimizers()["optimizer"]
        return [(g["weight_decay"], len(g["params"])) for g in optimizer.param_groups]

    every = len(list(module().model.parameters()))
    weights_only = groups(module())
    assert weights_only[0][0] == 0.05 and weights_only[1] == (0.0, every - weights_only[0][1])
    assert weights_only[1][1] > 0  # batch-norm scales and shifts are spared
    assert groups(module(decay="all")) == [(0.05, every), (0.0, 0)]

    def first_conv_std(built: ClassifierModule) -> float:
        conv = next(m for m in built.model.modules() if isinstance(m, torch.nn.Conv2d))
        return float(conv.weight.std())

    fan_in, fan_out = 3 * 9, 8 * 9  # the stem: 3 → 8 channels, 3×3
    kaiming = first_conv_std(module())  # Kaiming-normal, fan-out: √(2 / fan_out)
    assert kaiming == pytest.approx((2 / fan_out) ** 0.5, rel=0.25)
    default = first_conv_std(module(init="torch"))  # uniform ±1/√fan_in: std 1/√(3·fan_in)
    assert default == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.25)


def test_imbalance_strategies_draw_and_weigh_as_described() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    rng = np.random.default_rng(0)
    drawn = labels[STRATEGIES["weighted_sampler"].draw(labels, 2, rng)]
    assert len(drawn) == 100 and 0.35 < drawn.mean() < 0.65
    big = np.array([0] * 9000 + [1] * 1000)  # sqrt: class 1 drawn 1 / (1 + 3) = 25 % of the time
    tempered = big[STRATEGIES["sqrt_sampler"].draw(big, 2, rng)]
    assert len(tempered) == 10_000 and 0.22 < tempered.mean() < 0.28
    three = np.array([0] * 90 + [1] * 10 + [2] * 30)
    capped = three[STRATEGIES["undersample"].draw(three, 3, rng)]
    assert np.bincount(capped).tolist() == [30, 10, 30]
    assert sorted(STRATEGIES["none"].draw(labels, 2, rng)) == list(range(100))
    counts = np.array([90, 10])
    weighted = STRATEGIES["class_weighted"].loss(counts, 2.0, 1.0)
    assert weighted.class_weights[1] > weighted.class_weights[0]
    logits, hard = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    onehot = torch.nn.functional.one_hot(hard, 2).float()
    plain = SoftCrossEntropy()(logits, onehot)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits, hard))
    assert STRATEGIES["focal"].loss(counts, 2.0, 1.0)(logits, onehot) < plain
    # logit adjustment: equal logits cost more on the rare class than on the common one
    adjusted = STRATEGIES["logit_adjusted"].loss(counts, 2.0, 1.0)
    even = torch.zeros(1, 2)
    rare, common = (torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert adjusted(even, rare) - adjusted(even, common) == pytest.approx(np.log(9), rel=1e-5)
    assert STRATEGIES["logit_adjusted"].loss(counts, 2.0, 0.0)(logits, onehot) == plain


@pytest.mark.parametrize("mode", ["mix", "shift_mix"])
def test_mixed_batches_give_soft_targets_from_two_labels(mode) -> None:
    torch.manual_seed(0)
    settings = TrainConfig(image_size=32, augment=mode, mix_prob=1.0, label_smoothing=0.1)
    augment = BatchAugment(settings, n_classes=4)
    images, targets = torch.rand(16, 3, 32, 32), torch.arange(16) % 4
    two_labels = 0
    for _ in range(6):  # both CutMix and MixUp come up
        out, soft = augment(images, targets)
        assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
        assert torch.allclose(soft.sum(dim=1), torch.ones(16))
        assert (soft >= 0.1 / 4 - 1e-6).all()  # smoothing floor
        assert ((soft > 0.1 / 4 + 1e-4).sum(dim=1) <= 2).all()
        two_labels += int(((soft > 0.1 / 4 + 1e-4).sum(dim=1) == 2).sum())
    assert two_labels > 0  # targets were mixed, not only smoothed
    plain = BatchAugment(TrainConfig(image_size=32, augment="none"), n_classes=4)
    same, soft = plain(images, targets)
    assert torch.equal(same, images) and (soft.argmax(dim=1) == targets).all()


def test_experiment_grid_trains_every_combination_and_compares_them(demo_run, tmp_path) -> None:
    _, run = demo_run
    grid = tmp_path / "grid.yaml"
    base = {k: v for k, v in TINY_TRAIN.items() if k not in ("max_epochs", "checkpoint_minutes")}
    grid.write_text(
        yaml.safe_dump(
            {
                "run": str(run),
                "budget_minutes": 0.05,
                "base": {**base, "max_epochs": 1},
                "grid": {"imbalance": ["none", "focal"], "cleaning": [True, False]},
            },
            sort_keys=False,
        )
    )
    result = runner.invoke(app, ["experiment", str(grid)])
    assert result.exit_code == 0, result.output
    out = run / "experiments" / "grid"
    table = (out / "results.csv").read_text().splitlines()
    assert len(table) == 1 + 4 and table[0].startswith("run,imbalance,cleaning,epochs")
    markdown = (out / "results.md").read_text()
    assert "**imbalance**" in markdown and "**cleaning**" in markdown
    assert (out / "results.html").read_text().count("data:image/png") == 4
    again = runner.invoke(app, ["experiment", str(grid)])  # finished runs are reused
    assert again.output.count("reused") == 4


@pytest.mark.slow
def test_two_process_ddp_on_cpu_shares_each_epoch(demo_run, trained, tmp_path: Path) -> None:
    _, run = demo_run  # `trained` is the one-process run whose plan this one halves
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump({**TINY_TRAIN, "accelerator": "cpu"}))
    winnow = Path(sys.executable).parent / "winnow"  # Lightning re-launches this command line
    command = [str(winnow), "train", str(run), "--name", "ddp", "--config", str(config)]
    done = subprocess.run(
        [*command, "--devices", "2"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    plan = __import__("json").loads((run / "train" / "ddp" / "plan.json").read_text())
    single = __import__("json").loads((trained / "plan.json").read_text())
    assert plan["steps_per_epoch"] == single["steps_per_epoch"] // 2
    lines = (run / "train" / "ddp" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + TINY_TRAIN["max_epochs"]
    assert "devices: 2" in (run / "train" / "ddp" / "config.yaml").read_text()


DDP_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import lightning as L
    sys.path.insert(0, {tests!r})
    from conftest import TINY_TRAIN
    from winnow.training.config import TrainConfig
    from winnow.training.loop import train

    class KillAll(L.Callback):  # SIGKILL both processes after the given optimizer step
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == int(sys.argv[2]) and trainer.global_rank == 0:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    settings = TrainConfig(**{{**TINY_TRAIN, "devices": 2, "accelerator": "cpu"}})
    train(Path(sys.argv[1]), settings, name="ddp-killed", callbacks=[KillAll()])
    """
)


@pytest.mark.slow
def test_ddp_killed_mid_epoch_resumes_to_the_uninterrupted_result(demo_run, tmp_path: Path) -> None:
    """Both DDP processes SIGKILLed inside the second epoch; `--resume` re-launches two
    processes from last.ckpt and ends where the uninterrupted 2-process run ended (the
    `ddp` run of the test above)."""
    _, run = demo_run
    straight = run / "train" / "ddp"
    assert (straight / "metrics.csv").exists(), "runs after the 2-process DDP test"
    steps_per_epoch = __import__("json").loads((straight / "plan.json").read_text())[
        "steps_per_epoch"
    ]
    kill_at = steps_per_epoch + 1  # inside the second epoch
    script = tmp_path / "ddp_killer.py"
    script.write_text(DDP_KILLER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = subprocess.run(
        [sys.executable, str(script), str(run), str(kill_at)],
        env=env,
        capture_output=True,
        timeout=240,
        start_new_session=True,  # its own process group: the kill takes both ranks, not us
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    out_dir = run / "train" / "ddp-killed"
    state = torch.load(out_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == kill_at
    winnow = Path(sys.executable).parent / "winnow"  # Lightning re-launches this command line
    resumed = subprocess.run(
        [str(winnow), "train", "--resume", str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _scores(out_dir / "metrics.csv").equals(_scores(straight / "metrics.csv"))
    ends = [load_model(d / "last.ckpt").torch_model.state_dict() for d in (out_dir, straight)]
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[1])


def test_devices_and_sizes_take_a_count_or_auto(demo_run) -> None:
    _, run = demo_run
    for value in ("0", "two", "-1"):
        result = runner.invoke(app, ["train", str(run), "--devices", value])
        assert result.exit_code != 0
        assert "--devices takes a number of processes" in result.output
        assert "Traceback" not in result.output
    for option in ("--batch-size", "--image-size"):
        result = runner.invoke(app, ["train", str(run), option, "big"])
        assert result.exit_code != 0
        assert f"{option} takes" in result.output and "or auto" in result.output
        assert "Traceback" not in result.output


def test_nodes_multiply_the_processes_and_share_each_machines_cores(monkeypatch) -> None:
    """The plan counts every process of every node; CPU threads are shared out among the
    processes of one machine only."""
    from winnow.training import trainer

    monkeypatch.setattr(trainer.os, "cpu_count", lambda: 8)
    two_by_three = TrainConfig(devices=2, num_nodes=3, accelerator="cpu")
    assert trainer.world_size(two_by_three, "cpu") == 6
    assert trainer.threads_for(two_by_three) == 4
    assert trainer.world_size(TrainConfig(devices=2, accelerator="cpu"), "cpu") == 2
    # on GPUs `auto` is every visible one on each node (none here: counted as CUDA would)
    monkeypatch.setattr(trainer.torch.cuda, "device_count", lambda: 4)
    assert trainer.world_size(TrainConfig(num_nodes=2), "cuda") == 8
    assert trainer.world_size(TrainConfig(devices=3), "cuda") == 3
    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(num_nodes=0)


def _scores(metrics: Path) -> pd.DataFrame:
    """metrics.csv without its wall-clock column: every other number is seed-exact."""
    return pd.read_csv(metrics).drop(columns="seconds")


@pytest.mark.slow
def test_compiled_training_keeps_the_networks_names_and_a_failed_compile_is_handled(
    demo_run, monkeypatch
) -> None:
    _, run = demo_run
    assert not TrainConfig(compile="auto").uses_compile("cpu")  # it does not pay on a CPU
    assert TrainConfig(compile="auto").uses_compile("cuda")
    settings = {**TINY_TRAIN, "max_epochs": 1, "compile": "on"}
    result = train(run, TrainConfig(**settings), name="compiled")
    plan = result.summary["plan"]
    assert plan["compile"] is True and plan["compile_seconds"] > 0  # paid in the planner
    state = torch.load(result.best, map_location="cpu", weights_only=True)["state_dict"]
    assert state and not any("_orig_mod" in key for key in state)  # no wrapper in the names
    probabilities = load_model(result.best).probabilities(np.zeros((2, 128, 128, 3), np.uint8))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    def broken(model, *args, **kwargs):
        def fails(*inputs):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nmore")

        return fails

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(TrainError, match="compile: off") as refused:
        train(run, TrainConfig(**settings), name="refused")
    assert "InvalidCxxCompiler" in str(refused.value)
    assert not (run / "train" / "refused").exists()  # refused before anything is written
    # `auto` where compiling is tried (a GPU) falls back to the network as it is
    monkeypatch.setattr(TrainConfig, "uses_compile", lambda self, device: True)
    fallback = train(run, TrainConfig(**{**settings, "compile": "auto"}), name="fallback")
    plan = fallback.summary["plan"]
    assert plan["compile"] is False and "InvalidCxxCompiler" in plan["compile_note"]


def test_precision_auto_is_bf16_where_the_cpu_multiplies_bf16(demo_run, monkeypatch) -> None:
    from winnow.training import trainer

    monkeypatch.setattr(trainer, "cpu_multiplies_bf16", lambda: True)
    assert trainer.resolved_precision(TrainConfig(), "cpu") == "bf16-mixed"
    assert trainer.resolved_precision(TrainConfig(precision="32-true"), "cpu") == "32-true"
    monkeypatch.setattr(trainer, "cpu_multiplies_bf16", lambda: False)  # emulated: slower
    assert trainer.resolved_precision(TrainConfig(), "cpu") == "32-true"
    _, run = demo_run
    settings = {**TINY_TRAIN, "max_epochs": 1, "precision": "bf16-mixed"}
    result = train(run, TrainConfig(**settings), name="bf16")
    assert result.summary["plan"]["precision"] == "bf16-mixed"
    saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    assert (saved["precision"], saved["compile"]) == ("bf16-mixed", "off")  # as resolved here
    state = torch.load(result.best, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())  # fp32 weights are kept
    probabilities = load_model(result.best).probabilities(np.zeros((2, 128, 128, 3), np.uint8))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_a_last_epoch_of_a_few_batches_is_left_out_of_the_train_curve(tmp_path) -> None:
    """The budget's last epoch can be one batch (its train metrics are noise); its row is
    kept in metrics.csv with how many images it covers, and the curves leave its train
    point out. Rows of an older run without the column count as full, and a file mixing
    both kinds of row is written with every column."""
    row = {"epoch": 1.0, "train_loss": 1.0, "train_acc": 0.5, "train_macro_f1": 0.4}
    row |= {"val_loss": 1.1, "val_acc": 0.5, "val_macro_f1": 0.4}
    history = [
        {**row, "epoch": 1.0},  # an older checkpoint's row: no train_items
        {**row, "epoch": 2.0, "train_items": 4736.0},
        {**row, "epoch": 3.0, "train_items": 4736.0},
        {**row, "epoch": 4.0, "train_items": 128.0, "train_loss": 1.4, "train_acc": 0.1},
    ]
    assert full_epochs(history) == [True, True, True, False]
    assert full_epochs(history[:1]) == [True]
    write_metrics(tmp_path / "metrics.csv", history)
    written = pd.read_csv(tmp_path / "metrics.csv")
    assert written["train_items"].isna().tolist() == [True, False, False, False]
    assert written["train_items"].iloc[3] == 128
    plot_curves(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def _probe(rows: list[tuple[int, int, float | None]]) -> list[dict]:
    return [{"side": s, "batch": b, "images_per_second": v} for s, b, v in rows]


def test_auto_sizes_are_the_recipes_on_a_cpu_and_measured_choices_on_a_gpu() -> None:
    from winnow.training.sizing import choose_sizes, resolve_sizes

    config, sizing = resolve_sizes(TrainConfig(), 19, 4800, "cpu", 128, 600.0)
    assert (config.batch_size, config.image_size, config.lr) == (128, 64, TrainConfig().lr)
    assert sizing.probe == []  # nothing is timed on a CPU
    probe = _probe(
        [(64, 128, 20_000), (64, 256, 30_000), (64, 512, 31_000),
         (96, 128, 10_000), (96, 256, 14_000), (96, 512, None),  # out of memory
         (128, 128, 5_000), (128, 256, 6_000)]
    )  # fmt: skip
    # 600 s × 14,000 images/s / 4,800 = 1,750 epochs at 96 px, 750 at 128: the largest side
    chosen = choose_sizes(TrainConfig(), probe, 4800, 600.0)
    assert (chosen.image_size, chosen.batch_size) == (128, 256)  # 6,000 ≥ 0.9 × best at 128
    assert chosen.lr == pytest.approx(TrainConfig().lr * 2**0.5, rel=1e-4)
    # a short budget: 128 px gives 40 epochs, 96 px 58; only 64 px reaches 120
    short = choose_sizes(TrainConfig(), probe, 4800, 20.0)
    assert short.image_size == 64
    assert short.batch_size == 256  # 512 adds 3 %: not worth half the steps
    assert "120 epochs" in short.reason
    # no time budget: the recipe's side; numbers that are set are kept
    assert choose_sizes(TrainConfig(max_epochs=5), probe, 4800, None).image_size == 64
    fixed = choose_sizes(TrainConfig(batch_size=128, image_size=96), probe, 4800, 600.0)
    assert (fixed.batch_size, fixed.image_size, fixed.lr) == (128, 96, TrainConfig().lr)
    with pytest.raises(TrainError, match="memory"):
        choose_sizes(TrainConfig(), _probe([(64, 128, None)]), 4800, 600.0)


def test_the_size_probe_times_real_steps_and_stops_a_side_at_out_of_memory(monkeypatch) -> None:
    from winnow.training import sizing

    config = TrainConfig(model="resnet10", model_params={"width": 8}, precision="32-true")
    rows = sizing.probe_throughput(config, 3, "cpu", [16, 24], [2, 4], steps=3)
    assert [(r["side"], r["batch"]) for r in rows] == [(16, 2), (16, 4), (24, 2), (24, 4)]
    assert all(r["images_per_second"] > 0 for r in rows)

    real = sizing.step_images_per_second

    def no_memory_for_4(config, n_classes, device, side, batch, steps):
        if batch >= 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(config, n_classes, device, side, batch, steps)

    monkeypatch.setattr(sizing, "step_images_per_second", no_memory_for_4)
    rows = sizing.probe_throughput(config, 3, "cpu", [16], [2, 4, 8], steps=3)
    assert [(r["batch"], r["images_per_second"] is None) for r in rows] == [
        (2, False),
        (4, True),
    ]  # 8 is never tried


def test_measured_sizes_are_trained_and_written_down(demo_run, monkeypatch) -> None:
    """The GPU path of `auto` sizes, run on the CPU: probe, choice, training at the chosen
    side and batch, config.yaml and plan.json saying what was chosen and why."""
    from winnow.training import sizing

    monkeypatch.setattr(sizing, "measures_sizes", lambda device: True)
    monkeypatch.setattr(sizing, "SIZE_LADDER", (16, 24, 32))
    monkeypatch.setattr(sizing, "BATCH_LADDER", (8, 16))
    monkeypatch.setattr(sizing, "SIZE_UP_EPOCHS", 1)  # every side fits: the largest wins
    _, run = demo_run
    settings = {k: v for k, v in TINY_TRAIN.items() if k not in ("image_size", "batch_size")}
    settings = {**settings, "max_epochs": None, "max_minutes": 0.2, "precision": "32-true"}
    result = train(run, TrainConfig(**settings), name="sized")
    saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    plan = json.loads((result.out_dir / "plan.json").read_text())
    assert saved["image_size"] == 32
    assert saved["batch_size"] in (8, 16)
    assert saved["lr"] == pytest.approx(TrainConfig().lr * (saved["batch_size"] / 128) ** 0.5)
    assert {(r["side"], r["batch"]) for r in plan["sizing"]["probe"]} == {
        (s, b) for s in (16, 24, 32) for b in (8, 16)
    }
    assert "32 px" in plan["sizing"]["reason"]
    meta = torch.load(result.best, map_location="cpu", weights_only=True)["winnow"]
    assert meta["preprocessing"]["image_size"] == 32


def test_the_progress_line_re_estimates_the_epochs_from_the_budget_spent() -> None:
    """A plan timed while another job ran says 12 epochs; the run, on a faster machine, is
    at epoch 20 with half its budget spent: the line says ~40, and the epochs done at the
    end."""
    from types import SimpleNamespace

    from winnow.training.progress import BudgetProgressBar

    bar = BudgetProgressBar(planned_epochs=12.3, val_items=360)
    schedule = SimpleNamespace(progress=lambda step: 0.5, budget=None)
    module = SimpleNamespace(schedule=schedule, history=[])
    trainer = SimpleNamespace(
        current_epoch=19, global_step=500, num_training_batches=25, callback_metrics={}
    )
    assert bar.status(trainer, module).startswith("epoch 20/~40")
    assert bar.status(trainer, module, finished=True).startswith("epoch 19/19")
    schedule.progress = lambda step: 0.05  # too early to tell: the plan's number
    trainer.current_epoch, trainer.global_step = 0, 10
    assert bar.status(trainer, module).startswith("epoch 1/~12")
