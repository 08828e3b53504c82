"""`winnow train`, `winnow models`, `winnow experiment`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from winnow.cli.base import command, fail, out
from winnow.training.config import TrainConfig

DEFAULTS = TrainConfig()  # help texts state the real defaults


@command(epilog="Example: winnow experiment grid.yaml")
def experiment(
    grid: Annotated[Path, typer.Argument(help="YAML: run, budget_minutes, base, grid.")],
) -> None:
    """Train every combination of a grid under one budget; compare them in one table."""
    from winnow.workflows.experiment import run_grid

    paths = run_grid(grid, say=lambda m: out.print(m, soft_wrap=True, highlight=False))
    out.print(paths["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"table: [bold]{paths['html'].resolve()}[/]", soft_wrap=True)


def _parse_params(items: list[str] | None) -> dict:
    """`--param width=32 --param stem=cifar` → {"width": 32, "stem": "cifar"} (YAML scalars)."""
    import yaml

    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param needs KEY=VALUE, got {item!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


def _count_or_auto(option: str, what: str):
    def parse(value: str | None) -> int | str | None:
        """`--OPTION 2` → 2, `--OPTION auto` → "auto"; anything else is refused."""
        if value is None or value == "auto":
            return value
        if value.isdigit() and int(value) >= 1:
            return int(value)
        raise fail(f"{option} takes {what} or auto, got {value!r}")

    return parse


_devices = _count_or_auto("--devices", "a number of processes (1, 2, …)")
_batch_size = _count_or_auto("--batch-size", "a number of images per step")
_image_size = _count_or_auto("--image-size", "a side in pixels")


@command(epilog="Example: winnow train runs/exp1 --model resnet18 --max-minutes 10")
def train(
    run: Annotated[
        Path | None, typer.Argument(help="A split run folder (not needed with --resume).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help=f"Registered model (default: {DEFAULTS.model}).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Model parameter KEY=VALUE (repeatable)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with training settings.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name under RUN/train/ (default: model).")
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help=f"Time budget; the schedule fits it (default: {DEFAULTS.max_minutes:g})."
        ),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epochs instead of a budget.")] = None,
    imbalance: Annotated[
        str | None,
        typer.Option(
            help=f"Strategy (default: {DEFAULTS.imbalance}); 'winnow models' lists them all."
        ),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(help=f"none|shift|basic|mix|shift_mix (default: {DEFAULTS.augment})."),
    ] = None,
    image_size: Annotated[
        str | None,
        typer.Option(
            help="Training side in pixels, or auto: 64 on a CPU, measured on a GPU "
            f"(default: {DEFAULTS.image_size})."
        ),
    ] = None,
    batch_size: Annotated[
        str | None,
        typer.Option(
            help="Images per step, or auto: 128 on a CPU, measured on a GPU, the learning "
            f"rate scaled with it (default: {DEFAULTS.batch_size})."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help=f"Seed (default: {DEFAULTS.seed}).")] = None,
    cleaning: Annotated[
        bool | None,
        typer.Option("--cleaning/--no-cleaning", help="Train on cleaned rows only (default: on)."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue RUN/train/NAME from its last.ckpt.")
    ] = None,
    logger: Annotated[
        str | None,
        typer.Option(help="none|csv|tensorboard: Lightning's logger beside metrics.csv."),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            help="Processes (DDP): a number, or auto = every visible GPU, else 1 "
            f"(default: {DEFAULTS.devices})."
        ),
    ] = None,
    num_nodes: Annotated[
        int | None,
        typer.Option(
            help="Machines the run spans, --devices processes on each, started by the "
            "cluster's launcher (torchrun, SLURM) (default: 1)."
        ),
    ] = None,
) -> None:
    """Train a model from scratch on the split run → RUN/train/NAME (checkpoints, curves, card)."""
    from winnow.config import load_config
    from winnow.training.config import TrainConfig
    from winnow.training.loop import train as run_train

    if resume is None and run is None:
        raise fail("Give a RUN folder, or --resume RUN/train/NAME.")
    overrides = dict(
        model=model,
        max_minutes=max_minutes,
        max_epochs=max_epochs,
        imbalance=imbalance,
        augment=augment,
        image_size=_image_size(image_size),
        batch_size=_batch_size(batch_size),
        seed=seed,
        cleaning=cleaning,
        logger=logger,
        devices=_devices(devices),
        num_nodes=num_nodes,
    )
    if param:
        overrides["model_params"] = _parse_params(param)
    settings = load_config(TrainConfig, config, overrides)
    run_dir = run if run is not None else Path(resume).parent.parent
    result = run_train(run_dir, settings, name=name, resume=resume, progress=True)
    if not result.summary:
        return
    _print_train_summary(result)


def _print_train_summary(result) -> None:
    from winnow.training.report import map_text

    summary = result.summary
    plan = summary["plan"]
    chosen = "final weights" if summary["select"] == "final" else "best validation epoch"
    rate = plan["train_images_per_second"] or plan["images_per_second"]
    out.print(
        f"trained {summary['model']} for {summary['epochs']} epochs in "
        f"{plan['seconds_trained']} s ({rate} images/s); best.ckpt = {chosen} (epoch "
        f"{summary['best_epoch']}), softmax "
        f"temperature {summary['temperature']}, confidence map "
        f"{map_text(summary.get('confidence_map'))}",
        soft_wrap=True,
    )
    for split, scores in summary["scores"].items():
        out.print(
            f"  {split:<5} macro-F1 {scores['macro_f1']:.3f}  micro-F1 {scores['micro_f1']:.3f}"
            f"  ({int(scores['report']['macro avg']['support'])} items)"
        )
    out.print(f"weights: [bold]{result.best.resolve()}[/]", soft_wrap=True)
    out.print(f"curves:  {(result.out_dir / 'curves.png').resolve()}", soft_wrap=True)


@command(name="models", epilog="Example: winnow models")
def list_models() -> None:
    """List the registered models, their parameters, and the imbalance strategies."""
    from winnow.models import available_models, describe
    from winnow.training.imbalance import STRATEGIES

    table = Table(show_edge=False, title="models (winnow train --model NAME --param KEY=VALUE)")
    for column in ("model", "family", "parameters (defaults)", "what it is"):
        table.add_column(column, overflow="fold")
    for spec in available_models().values():
        table.add_row(spec.name, spec.family, describe(spec), spec.description)
    out.print(table)
    strategies = Table(show_edge=False, title="imbalance strategies (--imbalance NAME)")
    strategies.add_column("strategy")
    strategies.add_column("what it does", overflow="fold")
    for key, strategy in STRATEGIES.items():
        strategies.add_row(key, strategy.description)
    out.print(strategies)
