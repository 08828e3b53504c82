"""Stage 3: a person and a policy decide. `winnow clean` sets `keep` and `reason`,
`winnow split` deals group-aware, stratified splits, `winnow export` writes the cleaned
dataset as a new folder."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "CleanPolicy": "clean",
    "CleanError": "clean",
    "decide": "clean",
    "read_decisions": "clean",
    "run_clean": "clean",
    "SplitError": "split",
    "assign_splits": "split",
    "run_split": "split",
    "export_clean": "export",
    "export_plan": "export",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
