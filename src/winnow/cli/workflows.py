"""`winnow run`, `winnow demo`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.base import EngineOption, RayAddressOption, command, out
from winnow.training.config import TrainConfig

TRAIN_DEFAULTS = TrainConfig()  # help texts state the real defaults

# the demo's training: small enough to finish in half a minute on 2 cores
DEMO_TRAIN = {
    "model": "resnet10",
    "model_params": {"width": 16},
    "image_size": 48,
    "batch_size": 32,
    "max_minutes": 0.5,
}


@command(epilog="Example: winnow run data/training --test data/test --out runs/exp1")
def run(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write (RUN).")],
    test: Annotated[
        Path | None, typer.Option(help="Test folder: checked for leaks, then scored.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with training settings.")] = None,
    model: Annotated[
        str | None, typer.Option(help=f"Registered model (default: {TRAIN_DEFAULTS.model}).")
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(help=f"Training budget (default: {TRAIN_DEFAULTS.max_minutes:g})."),
    ] = None,
    audit_config: Annotated[
        Path | None, typer.Option(help="YAML with audit settings (as 'winnow audit --config').")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="YAML cleaning policy (as 'winnow clean --policy').")
    ] = None,
    decisions: Annotated[
        Path | None,
        typer.Option(
            help="CSV/YAML of decisions (as 'winnow clean --decisions'). Default: "
            "RUN/review/decisions.csv when 'winnow review RUN' wrote one."
        ),
    ] = None,
    val: Annotated[float, typer.Option(help="Validation fraction of the split.")] = 0.1,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the split and of training (default: the config's, or 0)."),
    ] = None,
    engine: EngineOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """The whole pipeline: scan → audit → clean → split → train → evaluate → RUN/index.html.

    Run it again on the same --out after 'winnow review' to train on what was decided."""
    from winnow.audit.config import AuditConfig
    from winnow.config import load_config
    from winnow.data.config import ScanConfig
    from winnow.training.config import TrainConfig

    overrides = {"model": model, "max_minutes": max_minutes, "seed": seed}
    settings = load_config(TrainConfig, config, overrides)
    where = {"engine": engine, "ray_address": ray_address}  # for scan and audit alike
    audit_settings = load_config(AuditConfig, audit_config, where)
    _run_pipeline(
        data,
        out_dir,
        test,
        settings,
        scan_config=load_config(ScanConfig, None, where),
        audit_config=audit_settings,
        policy=policy,
        decisions=decisions,
        val=val,
        split_seed=settings.seed,
    )


def _run_pipeline(
    data: Path,
    out_dir: Path,
    test: Path | None,
    settings,
    before_report: Callable[[], list[str]] | None = None,
    **options,
) -> dict:
    from winnow.cli.base import with_progress
    from winnow.workflows.run import run_pipeline

    summary = run_pipeline(
        data,
        out_dir,
        test,
        settings,
        say=lambda m: out.print(m, soft_wrap=True),
        progress=True,
        with_progress=with_progress,
        **options,
    )
    if summary["evaluate"]:
        out.print("")
        out.print(summary["evaluate"]["report_text"], highlight=False, markup=False)
    for line in before_report() if before_report else []:
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    review = summary["review"]
    if review["awaiting"]:
        out.print(
            f"\n{review['awaiting']} flagged files await review: [bold]{review['command']}[/] "
            "(then 'winnow clean' applies the decisions)",
            soft_wrap=True,
        )
    # the report's path is the last line, so scripts can take it from the end
    out.print(f"\nreport: [bold]{Path(summary['page']).resolve()}[/]", soft_wrap=True)
    return summary


@command(epilog="Example: winnow demo --out demo")
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write data and runs.")
    ] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Seed of the generated dataset.")] = 0,
) -> None:
    """Generate a small messy dataset and run the whole pipeline on it (about a minute)."""
    import shutil

    from winnow.training.config import TrainConfig
    from winnow.workflows.demo import check_against_truth, describe_check, make_demo_dataset

    data, run_dir = out_dir / "data", out_dir / "run"
    truth = make_demo_dataset(data, seed=seed)
    planted = ", ".join(f"{len(v)} {k}" for k, v in truth.items())
    out.print(f"demo dataset: [bold]{data}[/] (planted: {planted})", soft_wrap=True)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a demo always starts fresh
    _run_pipeline(
        data / "training",
        run_dir,
        data / "test",
        TrainConfig(**DEMO_TRAIN),
        before_report=lambda: describe_check(check_against_truth(run_dir, truth)),
    )
