"""The `winnow` command: a thin layer that parses flags, calls the library and renders.

One module per verb group; each registers its verbs on the app in `winnow.cli.base`.
They are imported in the order the flow runs, which is the order `--help` lists them.
"""

# isort: off
from winnow.cli import data, audit, curate, train, evaluate, serve, workflows  # noqa: F401
from winnow.cli.base import app

# isort: on


def main() -> None:
    app()


__all__ = ["app", "main"]
