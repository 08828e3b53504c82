"""Which checks an audit runs and in what order: the ones asked for (less `skip`, with the
leak check whenever there is a test set), ordered so that each finds the columns it
`needs` (and, where it can, those it reads `after` others), and which of an earlier
audit's results are kept when only some checks run again."""

from __future__ import annotations

from typing import Any

from winnow.audit.checks import get_checks
from winnow.audit.checks.base import Check
from winnow.audit.config import AuditConfig
from winnow.config import unknown_name
from winnow.errors import WinnowError


class AuditError(WinnowError, RuntimeError):
    """The audit can't start (no manifest, an unknown check named in `checks` or `skip`);
    the message says why and what to do."""


def requested_checks(config: AuditConfig, registry: dict, against: bool) -> list:
    """The checks this audit runs: `checks` (all by default) less `skip`, with the leak
    check whenever there is a test set to compare with."""
    try:
        requested = get_checks(config.checks)
    except KeyError as exc:
        raise AuditError(str(exc.args[0])) from None
    skipped = set(config.skip)
    unknown = sorted(skipped - set(registry))
    if unknown:
        raise AuditError(unknown_name("check", unknown[0], list(registry)))
    requested = [check for check in requested if check.name not in skipped]
    if against and "leak" in registry and all(c.name != "leak" for c in requested):
        requested.append(registry["leak"])  # --against is what the leak check compares with
    return requested


def order_checks(checks: list[Check], columns: set[str]) -> tuple[list[Check], list[Check]]:
    """Checks in an order that satisfies their needs; the second list can't be satisfied.
    Among the ready ones, a check waits for the others that make a column in its `after`
    (a preference: it never blocks a check for good)."""
    available, ordered, waiting = set(columns), [], list(checks)

    def comes_later(check: Check) -> bool:
        made_by_others = {
            column for other in waiting if other is not check for column in other.columns
        }
        return bool(set(check.after) & made_by_others)

    while waiting:
        ready = [c for c in waiting if set(c.needs) <= available]
        ready = [c for c in ready if not comes_later(c)] or ready
        if not ready:
            break
        for check in ready:
            ordered.append(check)
            available.update(check.columns)
            waiting.remove(check)
    return ordered, waiting


def plan_checks(
    requested: list[Check],
    registry: dict[str, Check],
    earlier: dict[str, dict[str, Any]],
    columns: set[str],
) -> tuple[list[Check], list[str]]:
    """The checks to run, and the earlier audit's checks whose results are kept.

    An earlier check is kept when it succeeded, is still registered and its columns are
    all in the manifest, unless it reads (`needs` or `after`) a column of a check that runs
    now: then it runs again too, so that nothing kept was computed from replaced columns.
    """
    run = {check.name: check for check in requested}
    kept = [
        name
        for name, info in earlier.items()
        if name not in run
        and name in registry
        and info.get("status") == "ok"
        and set(registry[name].columns) <= columns
    ]
    while True:
        made = {column for check in run.values() for column in check.columns}
        stale = [n for n in kept if set(registry[n].needs + registry[n].after) & made]
        if not stale:
            return list(run.values()), kept
        for name in stale:
            run[name] = registry[name]
            kept.remove(name)
