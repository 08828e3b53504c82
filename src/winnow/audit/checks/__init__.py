"""The audit check registry: built-ins listed here, plug-ins found by entry point.

A plug-in package declares, in its pyproject.toml:

    [project.entry-points."winnow.checks"]
    my_check = "my_package.my_module:CHECK"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from winnow.audit.checks import (
    blank,
    exact_duplicate,
    label_conflict,
    label_issue,
    leak,
    near_duplicate,
    odd_size,
    out_of_domain,
)
from winnow.audit.checks.base import Check
from winnow.config import unknown_name

# the order checks are listed, reported and applied by `clean` in (the first clean rule that
# drops a row names its reason, so a file both blank and tiny is dropped as blank)
BUILTIN_CHECKS: tuple[Check, ...] = (
    exact_duplicate.CHECK,
    near_duplicate.CHECK,
    label_conflict.CHECK,
    leak.CHECK,
    blank.CHECK,
    out_of_domain.CHECK,
    label_issue.CHECK,
    odd_size.CHECK,
)
ENTRY_POINT_GROUP = "winnow.checks"


def available_checks() -> dict[str, Check]:
    """Every check by name, built-ins first, then installed plug-ins."""
    checks = {check.name: check for check in BUILTIN_CHECKS}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        check = point.load()
        if not isinstance(check, Check):
            raise TypeError(f"entry point {point.name!r} does not point at a winnow Check")
        checks.setdefault(check.name, check)
    return checks


def get_checks(names: list[str] | None = None) -> list[Check]:
    checks = available_checks()
    if names is None:
        return list(checks.values())
    chosen = []
    for name in names:
        if name not in checks:
            raise KeyError(unknown_name("check", name, list(checks)))
        chosen.append(checks[name])
    return chosen
