"""`winnow audit`, `winnow compare`, `winnow checks`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from winnow.cli.base import (
    EngineOption,
    RayAddressOption,
    command,
    console,
    out,
    with_progress,
)


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
            help="Comma-separated checks to run (default: all). The earlier audit's other "
            "results are kept; checks that read what these make run again."
        ),
    ] = None,
    skip: Annotated[
        str | None,
        typer.Option(help="Comma-separated checks not to run (e.g. label_issue, which trains)."),
    ] = None,
    engine: EngineOption = None,
    ray_address: RayAddressOption = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes for the per-image work (default: one per core)."),
    ] = None,
) -> None:
    """Run the data checks (duplicates, label conflicts, leaks, sizes…) → RUN/audit/report.html."""
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import run_audit
    from winnow.config import load_config

    names = [c.strip() for c in checks.split(",")] if checks else None
    overrides: dict = {
        "checks": names,
        "engine": engine,
        "ray_address": ray_address,
        "workers": workers,
    }
    if skip:
        overrides["skip"] = [c.strip() for c in skip.split(",") if c.strip()]
    settings = load_config(AuditConfig, config, overrides)
    summary = with_progress(lambda cb: run_audit(run, settings, against, on_progress=cb))
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
    from winnow.audit.summary import audit_time, kept_checks

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
    if not summary["dataset"].get("ok"):
        out.print(
            "[yellow]warning:[/] the scan holds no readable image, so the checks had nothing "
            "to look at; 'winnow scan' listed why each file can't be used.",
            soft_wrap=True,
        )
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
        typer.Option(
            help="YAML with audit settings (default: the latest audit's).", show_default=False
        ),
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
    from winnow.audit.neardup.explain import compare_pair

    result = compare_pair(run, first, second, config, search, against)
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
    from winnow.audit.checks import available_checks

    table = Table(show_edge=False)
    columns = ("check", "columns", "what it finds", "settings (defaults)", "clean rule: default")
    for column in columns:
        table.add_column(column, overflow="fold")
    for check in available_checks().values():
        rules = ", ".join(f"{rule.key}: {rule.default}" for rule in check.rules) or "–"
        defaults = check.settings().model_dump(mode="json") if check.settings else {}
        settings = ", ".join(f"{key}={value}" for key, value in defaults.items()) or "–"
        table.add_row(
            check.name, ", ".join(check.columns), check.description, escape(settings), rules
        )
    out.print(table)
    out.print(
        "An audit config YAML sets a check's settings under its name (near_duplicate: "
        "{min_correlation: 0.92}). A policy YAML for 'winnow clean' sets any clean rule (or "
        "the check's name) to drop, review or keep; copies found by the duplicate checks "
        "follow 'duplicates: keep_one' (or keep_all).",
        soft_wrap=True,
    )
