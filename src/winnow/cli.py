"""The `winnow` command: parses flags, calls the library, renders with Rich. No work here.

Stage modules are imported inside each command so `winnow --help` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

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
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=2)


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


@app.command(epilog="Example: winnow scan data/training --out runs/exp1")
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
    if summary.bad_files:
        out.print("\n[bold]files that can't be used[/] (status  path — reason)")
        for row in summary.bad_files[:BAD_FILES_SHOWN]:
            out.print(
                f"  [yellow]{row['status']:<11}[/] {row['path']} — {row['error']}",
                soft_wrap=True,
                highlight=False,
            )
        if len(summary.bad_files) > BAD_FILES_SHOWN:
            more = len(summary.bad_files) - BAD_FILES_SHOWN
            out.print(f"  … and {more} more in {summary.run_dir}/scan_summary.json", soft_wrap=True)
    for note in summary.notes:
        out.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    out.print(f"manifest: [bold]{summary.manifest}[/]", soft_wrap=True)


@app.command(epilog="Example: winnow audit runs/exp1 --against data/test")
def audit(
    run: Annotated[Path, typer.Argument(help="Run folder made by 'winnow scan'.")],
    against: Annotated[
        Path | None, typer.Option(help="Test set (data folder or RUN) to check for leaks.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with audit settings.")] = None,
    checks: Annotated[str | None, typer.Option(help="Comma-separated checks to run [all].")] = None,
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


def _print_audit_summary(summary: dict) -> None:
    table = Table(show_edge=False)
    for column in ("check", "status", "rows flagged", "seconds"):
        table.add_column(column)
    for name, info in summary["checks"].items():
        style = {"ok": "green", "failed": "red", "skipped": "yellow"}[info["status"]]
        table.add_row(
            name, f"[{style}]{info['status']}[/]", str(info["issues"]), str(info["seconds"])
        )
    out.print(table)
    for name, info in summary["checks"].items():
        if info.get("error"):
            out.print(f"[red]{name}:[/] {info['error']}", soft_wrap=True)
    out.print(f"report: [bold]{Path(summary['report']).resolve()}[/]", soft_wrap=True)


@app.command(name="checks", epilog="Example: winnow checks")
def list_checks() -> None:
    """List the audit checks (built-in and installed plug-ins)."""
    from winnow.checks import available_checks

    table = Table(show_edge=False)
    for column in ("check", "columns", "what it finds"):
        table.add_column(column, overflow="fold")
    for check in available_checks().values():
        table.add_row(check.name, ", ".join(check.columns), check.description)
    out.print(table)


@app.command(epilog="Example: winnow clean runs/exp1 --policy policy.yaml --decisions review.csv")
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


@app.command(epilog="Example: winnow export runs/exp1 cleaned/")
def export(
    run: Annotated[Path, typer.Argument(help="A cleaned run folder.")],
    destination: Annotated[Path, typer.Argument(help="New folder for the cleaned dataset.")],
) -> None:
    """Write the kept files as DEST/<label>/<file> (hard links where possible)."""
    from winnow.clean import CleanError, export_clean

    try:
        result = export_clean(run, destination)
    except CleanError as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"{result['files']} files in {result['destination']} ({result['hard_links']} hard links)"
    )


@app.command(epilog="Example: winnow split runs/exp1 --val 0.1 --test 0.1 --seed 0")
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


@app.command(epilog="Example: winnow demo --out demo")
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write data and runs.")
    ] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Seed of the generated dataset.")] = 0,
) -> None:
    """Generate a small messy dataset and run every stage that exists on it."""
    from winnow.audit import run_audit
    from winnow.clean import run_clean
    from winnow.demo import make_demo_dataset
    from winnow.scan import scan as run_scan
    from winnow.split import run_split

    data, run = out_dir / "data", out_dir / "run"
    truth = make_demo_dataset(data, seed=seed)
    planted = ", ".join(f"{len(v)} {k}" for k, v in truth.items())
    out.print(f"demo dataset: [bold]{data}[/] (planted: {planted})", soft_wrap=True)
    summary = _with_progress(lambda cb: run_scan(data / "training", run, on_progress=cb))
    _print_scan_summary(summary)
    audited = _with_progress(lambda cb: run_audit(run, against=data / "test", on_progress=cb))
    _print_audit_summary(audited)
    cleaned = run_clean(run)
    out.print(f"clean: kept {cleaned['kept']} of {cleaned['rows']} files", soft_wrap=True)
    splits = run_split(run)
    out.print("split: " + ", ".join(f"{k} {v}" for k, v in sorted(splits["counts"].items())))
    out.print(f"\nreport: [bold]{Path(audited['report']).resolve()}[/]", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
