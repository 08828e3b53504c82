"""The Typer app every verb module registers on, the consoles, and the error boundary.

Stage modules are imported inside each command so `winnow --help` stays fast.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
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
                raise fail(str(exc)) from None

        return app.command(*args, **kwargs)(guarded)

    return register


def _print_version(value: bool) -> None:
    if value:
        from winnow import __version__

        out.print(f"winnow {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the library does.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def with_progress(work):
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
