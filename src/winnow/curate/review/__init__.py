"""`winnow review RUN`: a local page where a person confirms or overrides every audit
finding; decisions go to RUN/review/decisions.csv, which `winnow clean` applies."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "DecisionStore": "decisions",
    "decisions_path": "decisions",
    "Tab": "findings",
    "build_tabs": "findings",
    "ReviewData": "app",
    "ReviewError": "app",
    "create_review_app": "app",
    "serve_review": "app",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
