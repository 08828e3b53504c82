"""Stages chained: `winnow run` (the whole pipeline, run), `winnow experiment` (a grid of
training runs, experiment) and `winnow demo` (the generated demo dataset, demo)."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "run_pipeline": "run",
    "run_grid": "experiment",
    "load_grid": "experiment",
    "make_demo_dataset": "demo",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
