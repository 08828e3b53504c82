"""`winnow scan`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from winnow.cli.base import (
    BAD_FILES_SHOWN,
    EngineOption,
    RayAddressOption,
    command,
    out,
    with_progress,
)


@command(epilog="Example: winnow scan data/training --out runs/exp1")
def scan(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write (RUN).")],
    config: Annotated[Path | None, typer.Option(help="YAML with scan settings.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Pixel-cache side (default: 128).")] = None,
    background: Annotated[
        str | None, typer.Option(help="Colour under transparent pixels (default: white).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Decode processes (default: all cores).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Refuse images above this many pixels (default: 1e9).")
    ] = None,
    decode_memory_mb: Annotated[
        int | None,
        typer.Option(help="Largest in-memory decode; bigger ones stream (default: 256)."),
    ] = None,
    engine: EngineOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Read every file once: facts, hashes, bad-file reasons, pixel cache → RUN/manifest.parquet."""
    from winnow.config import load_config
    from winnow.data.config import ScanConfig
    from winnow.data.scan import scan as run_scan

    overrides = dict(
        image_size=image_size,
        background=background,
        workers=workers,
        max_pixels=max_pixels,
        decode_memory_mb=decode_memory_mb,
        engine=engine,
        ray_address=ray_address,
    )
    settings = load_config(ScanConfig, config, overrides)
    summary = with_progress(lambda cb: run_scan(data, out_dir, settings, on_progress=cb))
    _print_scan_summary(summary)


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
        f"last scan) in {summary.seconds:.1f} s"
        + (f" on {summary.engine}" if summary.engine != "local" else "")
        + f"; {summary.hidden_skipped} hidden files skipped.",
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
