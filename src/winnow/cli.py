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


@app.command(epilog="Example: winnow demo --out demo")
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write data and runs.")
    ] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Seed of the generated dataset.")] = 0,
) -> None:
    """Generate a small messy dataset and run every stage that exists on it."""
    from winnow.demo import make_demo_dataset
    from winnow.scan import scan as run_scan

    data = out_dir / "data"
    truth = make_demo_dataset(data, seed=seed)
    planted = ", ".join(f"{len(v)} {k}" for k, v in truth.items())
    out.print(f"demo dataset: [bold]{data}[/] (planted: {planted})", soft_wrap=True)
    summary = _with_progress(
        lambda cb: run_scan(data / "training", out_dir / "run", on_progress=cb)
    )
    _print_scan_summary(summary)
    out.print(
        f"\nresults: [bold]{(out_dir / 'run').resolve()}[/] (manifest.parquet, scan_summary.json)",
        soft_wrap=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
