"""Stage 2, `winnow audit`: run the registered checks over the manifest and write
findings (columns and flags), RUN/audit/summary.json and report.html.

Modules: runner (plans and runs the checks), report, config (AuditConfig); checks/ (one
file per check, the registry in its `__init__`), neardup/ (descriptors, candidate search,
pixel verification, explain one pair), style/ (photograph-or-drawing statistics).
"""

from winnow.lazy import lazy_exports

EXPORTS = {
    "AuditConfig": "config",
    "AuditError": "runner",
    "run_audit": "runner",
    "audit_time": "summary",
    "kept_checks": "summary",
    "write_audit_report": "report",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
