"""The `winnow` command: parses flags, calls the library, renders with Rich. No work here.

Stage modules are imported inside each command so `winnow --help` stays fast.
"""

from __future__ import annotations

import functools
import logging
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="winnow",
    help="Turn a messy folder of labeled images into a trustworthy image classifier.\n\n"
    "Flow: scan → audit → clean → split → train → evaluate → explain → predict.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

BAD_FILES_SHOWN = 15


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=False, highlight=False)
    return typer.Exit(code=2)


def command(*args: Any, **kwargs: Any) -> Callable:
    """`app.command`, with every `WinnowError` turned into its message and exit status 2."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def guarded(*a: Any, **k: Any) -> Any:
            from winnow.errors import WinnowError

            try:
                return function(*a, **k)
            except WinnowError as exc:
                raise _fail(str(exc)) from None

        return app.command(*args, **kwargs)(guarded)

    return register


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the library does.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@command(epilog="Example: winnow scan data/training --out runs/exp1")
def scan(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write (RUN).")],
    config: Annotated[Path | None, typer.Option(help="YAML with scan settings.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Pixel-cache side [128].")] = None,
    background: Annotated[
        str | None, typer.Option(help="Colour under transparent pixels [white].")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Decode processes [all cores].")] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Refuse images above this many pixels [1e9].")
    ] = None,
    decode_memory_mb: Annotated[
        int | None, typer.Option(help="Largest in-memory decode; bigger ones stream [256].")
    ] = None,
) -> None:
    """Read every file once: facts, hashes, bad-file reasons, pixel cache → RUN/manifest.parquet."""
    from winnow.config import ConfigError, ScanConfig, load_config
    from winnow.scan import ScanError
    from winnow.scan import scan as run_scan

    overrides = dict(
        image_size=image_size,
        background=background,
        workers=workers,
        max_pixels=max_pixels,
        decode_memory_mb=decode_memory_mb,
    )
    try:
        settings = load_config(ScanConfig, config, overrides)
        summary = _with_progress(lambda cb: run_scan(data, out_dir, settings, on_progress=cb))
    except (ConfigError, ScanError) as exc:
        raise _fail(str(exc)) from None
    _print_scan_summary(summary)


def _with_progress(work):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scanning", total=None)

        def on_progress(state) -> None:
            progress.update(task, total=state.total, completed=state.done)

        return work(on_progress)


def _print_scan_summary(summary) -> None:
    out.print(f"scan of [bold]{summary.data_dir}[/]", soft_wrap=True)
    table = Table(show_edge=False)
    table.add_column("status")
    table.add_column("files", justify="right")
    for status, count in summary.by_status.items():
        style = "green" if status == "ok" else "yellow"
        table.add_row(f"[{style}]{status}[/]", str(count))
    out.print(table)
    out.print(
        f"{summary.files} files ({summary.decoded} decoded, {summary.reused} reused from the "
        f"last scan) in {summary.seconds:.1f} s; {summary.hidden_skipped} hidden files skipped.",
        soft_wrap=True,
    )
    out.print(summary.headline(), soft_wrap=True, highlight=False)
    unusable = summary.unusable()  # damaged images first: sidecar files must not hide them
    if unusable:
        out.print("\n[bold]files that can't be used[/] (status  path — reason)")
        for row in unusable[:BAD_FILES_SHOWN]:
            out.print(
                f"  [yellow]{row['status']:<11}[/] {row['path']} — {row['error']}",
                soft_wrap=True,
                highlight=False,
            )
        if len(unusable) > BAD_FILES_SHOWN:
            more = len(unusable) - BAD_FILES_SHOWN
            out.print(f"  … and {more} more in {summary.run_dir}/scan_summary.json", soft_wrap=True)
    if summary.not_images():
        out.print(
            "other files (not images and not named like images: text, sound or vector files) "
            f"are rows with status not_image, each listed in {summary.run_dir}/scan_summary.json",
            soft_wrap=True,
            highlight=False,
        )
    for note in summary.notes:
        out.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    out.print(f"manifest: [bold]{summary.manifest}[/]", soft_wrap=True)


@command(epilog="Example: winnow audit runs/exp1 --against data/test")
def audit(
    run: Annotated[Path, typer.Argument(help="Run folder made by 'winnow scan'.")],
    against: Annotated[
        Path | None, typer.Option(help="Test set (data folder or RUN) to check for leaks.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with audit settings.")] = None,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated checks to run [all]. The earlier audit's other results are "
            "kept; checks that read what these make run again."
        ),
    ] = None,
) -> None:
    """Run the data checks (duplicates, label conflicts, leaks, sizes…) → RUN/audit/report.html."""
    from winnow.audit import AuditError, run_audit
    from winnow.config import AuditConfig, ConfigError, load_config

    try:
        names = [c.strip() for c in checks.split(",")] if checks else None
        settings = load_config(AuditConfig, config, {"checks": names})
        summary = _with_progress(lambda cb: run_audit(run, settings, against, on_progress=cb))
    except (ConfigError, AuditError) as exc:
        raise _fail(str(exc)) from None
    _print_audit_summary(summary)
    failed = [name for name, info in summary["checks"].items() if info["status"] == "failed"]
    if failed:
        console.print(
            f"[bold red]error:[/] {len(failed)} check(s) failed ({', '.join(failed)}); the "
            "rest of the audit was written, and 'winnow clean' says what is not applied.",
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _print_audit_summary(summary: dict) -> None:
    from winnow.audit import audit_time, kept_checks

    table = Table(show_edge=False)
    for column in ("check", "status", "rows flagged", "seconds"):
        table.add_column(column)
    for name, info in summary["checks"].items():
        style = {"ok": "green", "failed": "red", "skipped": "yellow"}[info["status"]]
        status, seconds = f"[{style}]{info['status']}[/]", str(info["seconds"])
        if info.get("from_earlier_audit"):
            status, seconds = "[cyan]kept[/]", "earlier"
        table.add_row(name, status, str(info["issues"]), seconds)
    out.print(table)
    kept = kept_checks(summary)
    if kept:
        out.print(
            f"kept from the earlier audit (they read nothing that changed): {', '.join(kept)}",
            soft_wrap=True,
        )
    for name, info in summary["checks"].items():
        if info.get("error"):
            out.print(f"[red]{name}:[/] {info['error']}", soft_wrap=True)
    out.print(f"time: {audit_time(summary)}", soft_wrap=True)
    out.print(f"report: [bold]{Path(summary['report']).resolve()}[/]", soft_wrap=True)


@command(epilog="Example: winnow compare runs/exp1 cats/a.png 'dogs/b copy.jpg' --search")
def compare(
    run: Annotated[Path, typer.Argument(help="Run folder made by 'winnow scan'.")],
    first: Annotated[str, typer.Argument(help="A picture: its manifest path or its file.")],
    second: Annotated[str, typer.Argument(help="The other picture.")],
    search: Annotated[
        bool,
        typer.Option(help="Also re-run the candidate search (describes every picture)."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML with audit settings [the latest audit's].", show_default=False),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="The test set the audit ran --against: FIRST is then a test picture and "
            "SECOND a training picture, judged as the leak check judges them.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Why two pictures are, or are not, reported as near copies (or, with --against, as a
    leak): each stage of the near-duplicate check with its value and limit."""
    from winnow.compare import CompareError, compare_pair
    from winnow.config import ConfigError

    try:
        result = compare_pair(run, first, second, config, search, against)
    except (CompareError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"[bold]{result.paths[0]}[/]  vs  [bold]{result.paths[1]}[/]", soft_wrap=True)
    table = Table(show_edge=False)
    for column in ("stage / setting", "result", "value", "limit"):
        table.add_column(column, overflow="fold")
    marks = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[dim]—[/]"}
    for step in result.steps:
        table.add_row(step.name, marks[step.passed], step.value, step.limit)
    out.print(table)
    for step in result.steps:  # what the stages that decided it ask, or why one was skipped
        if step.passed is False or step.name in ("candidate search", "series rule"):
            out.print(f"  [bold]{step.name}[/]: {step.meaning}", soft_wrap=True)
    out.print(f"settings: {result.settings_from}", soft_wrap=True)
    out.print(f"latest audit: {result.audit}", soft_wrap=True)
    out.print(f"[bold]verdict:[/] {result.verdict}", soft_wrap=True)


@command(name="checks", epilog="Example: winnow checks")
def list_checks() -> None:
    """List the audit checks (built-in and installed plug-ins)."""
    from winnow.checks import available_checks

    table = Table(show_edge=False)
    for column in ("check", "columns", "what it finds"):
        table.add_column(column, overflow="fold")
    for check in available_checks().values():
        table.add_row(check.name, ", ".join(check.columns), check.description)
    out.print(table)


@command(epilog="Example: winnow clean runs/exp1 --policy policy.yaml --decisions review.csv")
def clean(
    run: Annotated[Path, typer.Argument(help="An audited run folder.")],
    policy: Annotated[Path | None, typer.Option(help="YAML cleaning policy.")] = None,
    decisions: Annotated[
        Path | None, typer.Option(help="CSV/YAML of path,keep[,label] decisions (override rules).")
    ] = None,
) -> None:
    """Decide keep/drop for every file, with a reason, from a policy and your decisions."""
    from winnow.clean import CleanError, run_clean

    try:
        summary = run_clean(run, policy, decisions)
    except CleanError as exc:
        raise _fail(str(exc)) from None
    out.print(f"kept {summary['kept']} of {summary['rows']} files; dropped {summary['dropped']}:")
    for reason, count in summary["reasons"].items():
        if reason != "kept":
            out.print(f"  {reason:<24} {count}", highlight=False)
    if summary["checks_not_applied"]:
        console.print(
            "[yellow]not applied[/] (the last audit did not run them, or they failed): "
            f"{', '.join(summary['checks_not_applied'])}. What they would find is kept; "
            f"run 'winnow audit {run}' to apply every check.",
            soft_wrap=True,
        )


@command(
    epilog="Example: winnow export runs/exp1 cleaned/ · "
    "winnow export --weights runs/exp1/train/resnet18 --onnx model.onnx"
)
def export(
    run: Annotated[Path | None, typer.Argument(help="A cleaned run folder.")] = None,
    destination: Annotated[
        Path | None, typer.Argument(help="New folder for the cleaned dataset.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="A checkpoint (or training folder) to export.")
    ] = None,
    onnx: Annotated[Path | None, typer.Option(help="Write the model as ONNX here.")] = None,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy",
            help="Copy the files instead of hard-linking them. A hard link shares its bytes "
            "with the file in the data folder: a tool that edits an exported file in place "
            "edits the original too.",
        ),
    ] = False,
) -> None:
    """Export the cleaned dataset as DEST/<label>/<file>, or a model as ONNX (--weights --onnx)."""
    if weights is not None or onnx is not None:
        if weights is None or onnx is None:
            raise _fail("ONNX export needs both --weights MODEL and --onnx OUT.onnx.")
        from winnow.inference import WeightsError
        from winnow.onnx_export import export_onnx

        try:
            result = export_onnx(weights, onnx)
        except WeightsError as exc:
            raise _fail(str(exc)) from None
        out.print(f"wrote {result.path} (dynamic batch; checked with batches of 1 and 7)")
        out.print(f"max abs diff: {result.max_abs_diff:.3g}")
        if result.max_abs_diff > 1e-4:
            raise _fail("ONNX and PyTorch disagree by more than 1e-4; do not use this file.")
        return
    if run is None or destination is None:
        raise _fail("Dataset export needs RUN and DEST (or use --weights/--onnx for a model).")
    from winnow.clean import CleanError, export_clean

    try:
        result = export_clean(run, destination, copy=copy)
    except CleanError as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"{result['files']} files in {result['destination']} ({result['hard_links']} hard "
        f"links, {result['copies']} copies); {result['renamed']} renamed to stay unique; "
        f"where each file went: {result['index']}",
        soft_wrap=True,
    )


@command(epilog="Example: winnow split runs/exp1 --val 0.1 --test 0.1 --seed 0")
def split(
    run: Annotated[Path, typer.Argument(help="A cleaned run folder.")],
    val: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same split.")] = 0,
) -> None:
    """Stratified, group-aware split: duplicates never straddle train/val/test."""
    from winnow.clean import CleanError
    from winnow.split import SplitError, run_split

    try:
        summary = run_split(run, val, test, seed)
    except (SplitError, CleanError) as exc:
        raise _fail(str(exc)) from None
    out.print("split: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())))
    if summary["grouped_by"] != "duplicate_group":
        console.print(
            "[yellow]note:[/] the last audit did not group near duplicates, so only exact "
            f"copies are kept in one split (by {summary['grouped_by']}); run 'winnow audit "
            f"{run}' and 'winnow clean {run}' to keep near copies together too.",
            soft_wrap=True,
        )


@command(epilog="Example: winnow experiment grid.yaml")
def experiment(
    grid: Annotated[Path, typer.Argument(help="YAML: run, budget_minutes, base, grid.")],
) -> None:
    """Train every combination of a grid under one budget; compare them in one table."""
    from winnow.config import ConfigError
    from winnow.experiment import run_grid
    from winnow.training.loop import TrainError

    try:
        paths = run_grid(grid, say=lambda m: out.print(m, soft_wrap=True, highlight=False))
    except (ConfigError, TrainError) as exc:
        raise _fail(str(exc)) from None
    out.print(paths["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"table: [bold]{paths['html'].resolve()}[/]", soft_wrap=True)


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
    model: Annotated[str | None, typer.Option(help="Registered model [simple_cnn].")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Training budget [10].")] = None,
) -> None:
    """The whole pipeline: scan → audit → clean → split → train → evaluate → RUN/index.html."""
    from winnow.config import ConfigError, TrainConfig, load_config

    try:
        settings = load_config(TrainConfig, config, {"model": model, "max_minutes": max_minutes})
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _run_pipeline(data, out_dir, test, settings)


def _run_pipeline(
    data: Path,
    out_dir: Path,
    test: Path | None,
    settings,
    before_report: Callable[[], list[str]] | None = None,
) -> dict:
    from winnow.audit import AuditError
    from winnow.clean import CleanError
    from winnow.config import ConfigError
    from winnow.evaluate import EvaluateError
    from winnow.pipeline import run_pipeline
    from winnow.scan import ScanError
    from winnow.split import SplitError
    from winnow.training.loop import TrainError

    try:
        summary = run_pipeline(
            data, out_dir, test, settings, say=lambda m: out.print(m, soft_wrap=True)
        )
    except (
        ScanError,
        AuditError,
        CleanError,
        SplitError,
        TrainError,
        EvaluateError,
        ConfigError,
    ) as exc:
        raise _fail(str(exc)) from None
    if summary["evaluate"]:
        out.print("")
        out.print(summary["evaluate"]["report_text"], highlight=False, markup=False)
    for line in before_report() if before_report else []:
        out.print(line, soft_wrap=True, highlight=False, markup=False)
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

    from winnow.config import TrainConfig
    from winnow.demo import check_against_truth, describe_check, make_demo_dataset

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


def _parse_params(items: list[str] | None) -> dict:
    """`--param width=32 --param stem=cifar` → {"width": 32, "stem": "cifar"} (YAML scalars)."""
    import yaml

    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--param needs KEY=VALUE, got {item!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


@command(epilog="Example: winnow train runs/exp1 --model resnet18 --max-minutes 10")
def train(
    run: Annotated[
        Path | None, typer.Argument(help="A split run folder (not needed with --resume).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Registered model [simple_cnn].")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Model parameter KEY=VALUE (repeatable)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with training settings.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name under RUN/train/ [model].")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Time budget; the schedule fits it [10].")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epochs instead of a budget.")] = None,
    imbalance: Annotated[
        str | None,
        typer.Option(help="Strategy [weighted_sampler]; 'winnow models' lists them all."),
    ] = None,
    augment: Annotated[str | None, typer.Option(help="none|basic|mix [basic].")] = None,
    image_size: Annotated[int | None, typer.Option(help="Training side in pixels [64].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed [0].")] = None,
    cleaning: Annotated[
        bool | None,
        typer.Option("--cleaning/--no-cleaning", help="Train on cleaned rows only [on]."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue RUN/train/NAME from its last.ckpt.")
    ] = None,
) -> None:
    """Train a model from scratch on the split run → RUN/train/NAME (checkpoints, curves, card)."""
    from winnow.config import ConfigError, TrainConfig, load_config
    from winnow.training.loop import TrainError
    from winnow.training.loop import train as run_train

    if resume is None and run is None:
        raise _fail("Give a RUN folder, or --resume RUN/train/NAME.")
    overrides = dict(
        model=model,
        max_minutes=max_minutes,
        max_epochs=max_epochs,
        imbalance=imbalance,
        augment=augment,
        image_size=image_size,
        seed=seed,
        cleaning=cleaning,
    )
    if param:
        overrides["model_params"] = _parse_params(param)
    try:
        settings = load_config(TrainConfig, config, overrides)
        run_dir = run if run is not None else Path(resume).parent.parent
        result = run_train(run_dir, settings, name=name, resume=resume, progress=True)
    except (ConfigError, TrainError) as exc:
        raise _fail(str(exc)) from None
    if not result.summary:
        return
    _print_train_summary(result)


def _print_train_summary(result) -> None:
    summary = result.summary
    plan = summary["plan"]
    out.print(
        f"trained {summary['model']} for {summary['epochs']} epochs "
        f"({plan['images_per_second']} images/s); best epoch {summary['best_epoch']}",
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


@command(epilog="Example: winnow evaluate --data data/test --weights runs/exp1/train/resnet18")
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder with one sub-folder per class.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt, a training folder, or an .onnx file.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the report [next to weights]."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Decode processes [all cores].")] = None,
    explain: Annotated[
        int, typer.Option(help="Grad-CAM overlays for this many mistakes (0 = none).")
    ] = 24,
) -> None:
    """Score a model on an image folder: classification_report, confusion matrix, report.html."""
    from winnow.evaluate import EvaluateError, write_outputs
    from winnow.evaluate import evaluate as run_evaluate
    from winnow.inference import WeightsError, let_idle_threads_sleep

    let_idle_threads_sleep()

    try:
        result = run_evaluate(data, weights, workers=workers)
    except (EvaluateError, WeightsError) as exc:
        raise _fail(str(exc)) from None
    if out_dir is None:
        base = weights if weights.is_dir() else weights.parent
        out_dir = base / "evaluate" / (data.resolve().name or "data")
    paths = write_outputs(result, out_dir, explain=explain)
    _print_evaluation(result, paths)


def _print_evaluation(result, paths: dict) -> None:
    scores = result.scores
    out.print(f"evaluate: {result.data_dir} ({scores['items']} files scored, {result.seconds} s)")
    out.print(scores["report_text"], highlight=False, markup=False)
    out.print(f"micro-F1 {scores['micro_f1']:.3f}   macro-F1 {scores['macro_f1']:.3f}")
    bad = result.bad_files
    if not bad.empty:
        from winnow.scan import companion_kinds, companions, kinds_text

        companion = companions(bad)
        others, bad = bad[companion], bad[~companion]
        if not bad.empty:  # damaged images first: an image folder's companions are counted
            out.print(f"\n[yellow]{len(bad)} files could not be read[/] (left out):")
            for row in bad.head(BAD_FILES_SHOWN).itertuples():
                out.print(f"  {row.status:<10} {row.path} — {row.error}", highlight=False)
            if len(bad) > BAD_FILES_SHOWN:
                more = len(bad) - BAD_FILES_SHOWN
                out.print(f"  … and {more} more in {paths['metrics'].resolve()}", soft_wrap=True)
        if not others.empty:
            kinds = kinds_text(companion_kinds(others["path"]))
            out.print(
                f"{len(others)} other files are not images ({kinds}); left out.",
                highlight=False,
                soft_wrap=True,
            )
    for folder, count in result.unknown_folders.items():
        out.print(
            f"[yellow]folder {folder!r} is not a class of the model[/] ({count} files left out)"
        )
    if result.missing_classes:
        out.print(f"[yellow]classes with no test files:[/] {', '.join(result.missing_classes)}")
    duplicates = int((result.rows["duplicates_training"] & result.rows["in_classes"]).sum())
    if duplicates and not result.scores_without_leaks:
        out.print(
            f"\n[bold yellow]All {duplicates} scored test files duplicate training files:[/] "
            "these scores measure memory, not generalisation."
        )
    if result.scores_without_leaks:
        w = result.scores_without_leaks
        leaked = scores["items"] - w["items"]
        out.print(
            f"\n[bold yellow]{leaked} test files duplicate training files.[/] Without them "
            f"({w['items']} files): micro-F1 {w['micro_f1']:.3f}   macro-F1 {w['macro_f1']:.3f}"
        )
    out.print(f"\nreport: [bold]{paths['report'].resolve()}[/]", soft_wrap=True)
    out.print(f"metrics: {paths['metrics'].resolve()}", soft_wrap=True)


@command(epilog="Example: winnow predict photos/ --weights model.onnx --threshold 0.7")
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt, a training folder, or .onnx.")],
    threshold: Annotated[
        float, typer.Option(help="Below this confidence a prediction is marked uncertain.")
    ] = 0.0,
    top_k: Annotated[int, typer.Option(help="Labels per image.")] = 3,
    out_csv: Annotated[Path | None, typer.Option("--out", "-o", help="CSV file [stdout].")] = None,
) -> None:
    """Predict labels for images → CSV (path, top-k labels and probabilities, uncertain)."""
    from winnow.inference import WeightsError
    from winnow.predict import predict as run_predict
    from winnow.predict import to_csv, write_csv

    if not 0 <= threshold <= 1:
        raise _fail(f"--threshold must be in [0, 1], got {threshold}")
    try:
        predictions = run_predict(paths, weights, threshold=threshold, top_k=top_k)
    except WeightsError as exc:
        raise _fail(str(exc)) from None
    if out_csv is None:
        typer.echo(to_csv(predictions, top_k), nl=False)
    else:
        write_csv(predictions, top_k, out_csv)
        read = [p for p in predictions if p.status == "ok"]
        bad = len(predictions) - len(read)
        top = [p.probabilities[0] for p in read]
        median = statistics.median(top) if top else float("nan")
        if threshold > 0:
            sure = sum(1 for p in read if not p.uncertain)
            verdicts = f"{sure} confident, {len(read) - sure} uncertain (below {threshold})"
        else:  # without a threshold nothing is marked, so say so rather than "confident"
            verdicts = f"{len(read)} predicted (no --threshold: none marked uncertain)"
        console.print(
            f"{len(predictions)} files: {verdicts}, {bad} unreadable; median top-1 probability "
            f"{median:.2f} → {out_csv}",
            soft_wrap=True,
        )


@command(epilog="Example: winnow explain img1.png img2.png --weights best.ckpt --out cams/")
def explain(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt or a training folder.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs.")] = Path(
        "explain"
    ),
) -> None:
    """Grad-CAM overlays: one PNG per image, titled with the prediction."""
    from winnow.explain import explain_files
    from winnow.inference import WeightsError, load_model

    try:
        loaded = load_model(weights)
        loaded.torch_model  # noqa: B018 - Grad-CAM needs gradients: fail early for ONNX
    except WeightsError as exc:
        raise _fail(str(exc)) from None
    for path, target, answer in explain_files(paths, loaded, out_dir):
        if target is None:
            console.print(f"[yellow]skipped[/] {path}: {answer['error']}", soft_wrap=True)
            continue
        out.print(f"{target}  {answer['predicted']} ({answer['confidence']:.0%})", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
