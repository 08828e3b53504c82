"""Stage 5, `winnow evaluate`: an image folder and trained weights → sklearn's
classification_report, a confusion matrix, a gallery (runner, scoring, report)."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "Evaluation": "runner",
    "EvaluateError": "runner",
    "evaluate": "runner",
    "write_outputs": "runner",
    "score": "scoring",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
