"""`winnow review`, `winnow clean`, `winnow export`, `winnow split`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from winnow.cli.base import command, console, fail, out


@command(epilog="Example: winnow review runs/exp1   then open the URL it prints")
def review(
    run: Annotated[Path, typer.Argument(help="An audited run folder.")],
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the page to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
) -> None:
    """A local page to confirm or override every finding → RUN/review/decisions.csv."""
    from winnow.curate.review.app import serve_review
    from winnow.curate.review.decisions import decisions_path

    shown = f"[{host}]" if ":" in host else host

    def announce(data) -> None:
        flagged = sum(len(tab.rows) for tab in data.tabs.values())
        out.print(
            f"{flagged} findings in {len(data.tabs)} tabs; decisions go to "
            f"{decisions_path(run)} as you make them",
            soft_wrap=True,
        )
        out.print(f"review on [bold]http://{shown}:{port}/[/]  (Ctrl+C stops; nothing is lost)")

    serve_review(run, host=host, port=port, on_ready=announce)


@command(epilog="Example: winnow clean runs/exp1 --policy policy.yaml --decisions review.csv")
def clean(
    run: Annotated[Path, typer.Argument(help="An audited run folder.")],
    policy: Annotated[Path | None, typer.Option(help="YAML cleaning policy.")] = None,
    decisions: Annotated[
        Path | None,
        typer.Option(
            help="CSV/YAML of decisions, columns path,keep and optionally label (override "
            "rules). Default: RUN/review/decisions.csv when 'winnow review' wrote one."
        ),
    ] = None,
) -> None:
    """Decide keep/drop for every file, with a reason, from a policy and your decisions."""
    from winnow.curate.clean import run_clean

    summary = run_clean(run, policy, decisions)
    if summary["decisions"]:
        out.print(f"decisions applied: {summary['decisions']}", soft_wrap=True)
    out.print(f"kept {summary['kept']} of {summary['rows']} files; dropped {summary['dropped']}:")
    for reason, count in summary["dropped_by_reason"].items():
        out.print(f"  {reason:<24} {count}", highlight=False)
    _warn_lost_classes(summary, run)
    if summary["kept_by_decision"]:
        relabelled = f", {summary['relabelled']} relabelled" if summary["relabelled"] else ""
        out.print(
            f"kept by a person's decision: {summary['kept_by_decision']}{relabelled}",
            highlight=False,
        )
    if summary["checks_not_applied"]:
        console.print(
            "[yellow]not applied[/] (the last audit did not run them, or they failed): "
            f"{', '.join(summary['checks_not_applied'])}. What they would find is kept; "
            f"run 'winnow audit {run}' to apply every check.",
            soft_wrap=True,
        )


def _warn_lost_classes(summary: dict, run: Path) -> None:
    """Say which classes `clean` emptied or more than halved, and why."""
    from winnow.curate.clean import lost_classes

    for line in lost_classes(summary, run):
        console.print(f"[yellow]{escape(line)}[/]", soft_wrap=True, highlight=False)


@command(epilog="Example: winnow export runs/exp1 cleaned/ (a model as ONNX: winnow export-onnx)")
def export(
    run: Annotated[Path | None, typer.Argument(help="A cleaned run folder.")] = None,
    destination: Annotated[
        Path | None, typer.Argument(help="New folder for the cleaned dataset.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Deprecated: use 'winnow export-onnx WEIGHTS OUT'.")
    ] = None,
    onnx: Annotated[
        Path | None, typer.Option(help="Deprecated: use 'winnow export-onnx WEIGHTS OUT'.")
    ] = None,
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
    """Export the cleaned dataset as DEST/<label>/<file> (hard links, or copies)."""
    if weights is not None or onnx is not None:
        if weights is None or onnx is None:
            raise fail("A model is exported with 'winnow export-onnx WEIGHTS OUT.onnx'.")
        from winnow.cli.evaluate import write_onnx

        console.print(
            "[yellow]deprecated:[/] 'winnow export --weights W --onnx OUT' is now "
            f"'winnow export-onnx {escape(str(weights))} {escape(str(onnx))}'.",
            soft_wrap=True,
        )
        write_onnx(weights, onnx)
        return
    if run is None or destination is None:
        raise fail(
            "Dataset export needs RUN and DEST: winnow export RUN DEST "
            "(a model as ONNX: winnow export-onnx WEIGHTS OUT.onnx)."
        )
    from winnow.curate.export import export_clean

    result = export_clean(run, destination, copy=copy)
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
    from winnow.curate.split import run_split

    summary = run_split(run, val, test, seed)
    out.print("split: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())))
    if summary["grouped_by"] != "duplicate_group":
        console.print(
            "[yellow]note:[/] the last audit did not group near duplicates, so only exact "
            f"copies are kept in one split (by {summary['grouped_by']}); run 'winnow audit "
            f"{run}' and 'winnow clean {run}' to keep near copies together too.",
            soft_wrap=True,
        )
