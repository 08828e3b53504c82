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
    "Flow: scan → audit → clean → split → train → evaluate → explain → predict → serve.",
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


# top-level modules of each optional extra (pyproject.toml), to name the extra a verb needs
EXTRA_OF_MODULE = {
    **dict.fromkeys(
        ("pyarrow", "pandas", "faiss", "matplotlib", "sklearn", "scipy", "torch", "lightning",
         "torchmetrics", "kornia", "onnx", "onnxscript"),
        "pipeline",
    ),
    **dict.fromkeys(
        ("fastapi", "starlette", "uvicorn", "multipart", "jinja2", "fastapi_offline"), "serve"
    ),
    "ray": "ray",
}  # fmt: skip

# the execution options `scan` and `audit` share (winnow.data.engine)
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Where the work runs: local (this machine, default) or ray (Ray Data and tasks).",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Join this Ray cluster (e.g. auto, ray://head:10001) with --engine ray; "
        "without it a local Ray is started for the command.",
    ),
]


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The sentence for a verb whose optional dependency is not installed, else None."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (
        f"This needs {top}, which comes with the '{extra}' extra: "
        f"pip install 'winnow-vision[{extra}]' (or 'winnow-vision[all]' for every verb)."
    )


def command(*args: Any, **kwargs: Any) -> Callable:
    """`app.command`, with every `WinnowError` turned into its message and exit status 2,
    and a missing optional dependency into the extra that installs it."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def guarded(*a: Any, **k: Any) -> Any:
            from winnow.errors import WinnowError

            try:
                return function(*a, **k)
            except WinnowError as exc:
                raise fail(str(exc)) from None
            except ModuleNotFoundError as exc:
                message = missing_extra(exc)
                if message is None:
                    raise
                raise fail(message) from None

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
    """Run `work(on_progress)` under Rich progress bars: one for a scan, and one per audit
    check (its position, its own progress where it reports one, then how many rows it
    flagged and how long it took)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def task(key: str, description: str) -> Any:
            if key not in tasks:
                tasks[key] = progress.add_task(description, total=None, note="")
            return tasks[key]

        def on_progress(state) -> None:
            check = getattr(state, "check", None)
            if check is None:  # a scan (of DATA, or of the --against folder)
                description = getattr(state, "description", None) or "scanning"
                progress.update(
                    task("scan", description),
                    total=state.total,
                    completed=state.done,
                    description=description,
                )
                return
            label = f"{state.position}/{state.count} {check}"
            key = task(check, label)
            if state.state == "running":
                progress.update(key, total=state.total, completed=state.done or 0,
                                note=state.detail)  # fmt: skip
            else:
                flagged = f"{state.issues} flagged · " if state.issues is not None else ""
                progress.update(key, total=1, completed=1,
                                note=f"{state.state} · {flagged}{state.seconds:.1f} s")  # fmt: skip
                progress.stop_task(key)

        return work(on_progress)
