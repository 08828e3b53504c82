"""`winnow clean`: decide `keep` and `reason` for every row from a readable policy,
with human decisions overriding rules. `winnow.curate.export` materialises the result.

Reasons (the `reason` column) are rule names a person can read:
    kept                    no rule removed it
    bad_file:<status>       not decodable (empty, truncated, ...)
    unlabeled               not in a class folder
    duplicate               a copy of the group's kept member (`duplicate_of` says which)
    label_conflict:review   same picture under several labels; dropped until reviewed
                            (a `:review` reason is given only where no rule drops the row)
    leak                    a copy of a test item (would inflate test scores)
    odd_size                tiny or extreme aspect (only if the policy drops them)
    blank                   one colour, nothing drawn (a failed render, an empty PNG)
    out_of_domain[:review]  e.g. a photograph in an illustration set (when that check ran)
    label_issue[:review]    its class folder contradicted by out-of-fold predictions (only
                            if the policy drops them or sends them to review)
    review                  a person's decision from the decisions file (`--decisions`, or
                            RUN/review/decisions.csv that `winnow review` writes)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from winnow.audit.checks.base import ACTIONS, Action, Check, CleanRule
from winnow.config import ConfigError, load_config
from winnow.data.io import atomic_write_bytes
from winnow.data.labels import check_label
from winnow.data.lock import ManifestGuard, run_lock
from winnow.data.manifest import manifest_path, missing_manifest, read_manifest, write_manifest
from winnow.errors import WinnowError

CLEAN_COLUMNS = ("keep", "reason", "duplicate_of", "final_label")


def _rule_keys() -> dict[str, tuple[Check, CleanRule]]:
    """Every key the policy takes for a check's rule: the rule's key, and the check's name
    for its first rule (so `leak: keep` and `leaks: keep` are the same setting)."""
    from winnow.audit.checks import available_checks

    keys: dict[str, tuple[Check, CleanRule]] = {}
    for check in available_checks().values():
        for rule in check.rules:
            keys.setdefault(rule.key, (check, rule))
        if check.rules:
            keys.setdefault(check.name, (check, check.rules[0]))
    return keys


class CleanPolicy(BaseModel):
    """What `clean` does with each finding. `review` drops an item until a person decides.

    bad_files: unreadable files are always dropped. duplicates: keep_one (the group's best
    copy) or keep_all. Every other key is a check's rule (`winnow checks` lists them, with
    their defaults): drop, review or keep, by the rule's key or the check's name, e.g.
    `leaks: keep`, `out_of_domain_borderline: drop`, `label_issue: review`.
    """

    # the extra keys are the checks' rules, validated against the registry below
    model_config = ConfigDict(frozen=True, extra="allow")

    bad_files: Literal["drop"] = "drop"
    duplicates: Literal["keep_one", "keep_all"] = "keep_one"

    @classmethod
    def extra_keys(cls) -> list[str]:
        return list(_rule_keys())

    @model_validator(mode="before")
    @classmethod
    def _rule_actions(cls, data: Any) -> Any:
        if not isinstance(data, dict) or all(k in cls.model_fields for k in data):
            return data
        keys = _rule_keys()
        actions = {k: v for k, v in data.items() if k in cls.model_fields}
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            if key not in keys:
                raise ValueError(f"unknown key {key!r}")
            if value not in ACTIONS:
                raise ValueError(f"{key} must be one of {', '.join(ACTIONS)}; got {value!r}")
            actions[keys[key][1].key] = value
        return actions

    def action(self, rule: CleanRule) -> Action:
        return (self.model_extra or {}).get(rule.key, rule.default)

    def action_for(self, check_name: str) -> Action | None:
        """The action of a check's first rule (None: the check has no clean rule)."""
        found = _rule_keys().get(check_name)
        return self.action(found[1]) if found else None

    def resolved(self) -> dict[str, str]:
        """Every setting with its value, defaults included (what clean_summary.json shows)."""
        rules = {rule.key: self.action(rule) for _, rule in _rule_keys().values()}
        return {"bad_files": self.bad_files, "duplicates": self.duplicates, **rules}


class CleanError(WinnowError, RuntimeError):
    """Clean can't proceed; the message says what to run first or what to fix."""


def review_decisions(run_dir: Path) -> Path:
    """RUN/review/decisions.csv: where `winnow review` saves decisions and `clean` finds them."""
    return Path(run_dir) / "review" / "decisions.csv"


def read_decisions(path: Path) -> pd.DataFrame:
    """A CSV or YAML list of {path, keep, label?}: a person's decisions, by path."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            decisions = pd.DataFrame(data)
        else:
            decisions = pd.read_csv(path, dtype={"path": str, "label": str})
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CleanError(f"Cannot read decisions file {path}: {exc}") from None
    if "path" not in decisions or "keep" not in decisions:
        raise CleanError(
            f"Decisions file {path} needs columns 'path' and 'keep' (and optionally 'label')."
        )
    truthy = {"true", "1", "yes", "keep", "y"}
    decisions["keep"] = decisions["keep"].map(lambda v: str(v).strip().lower() in truthy)
    if "label" not in decisions:
        decisions["label"] = None
    for item, label in zip(decisions["path"], decisions["label"], strict=True):
        if pd.notna(label):
            check_label(label, f"{path} (the row of {item})")
    return decisions[["path", "keep", "label"]]


def decide(
    frame: pd.DataFrame, policy: CleanPolicy, decisions: pd.DataFrame | None
) -> pd.DataFrame:
    """The clean columns for `frame` (pure: returns new columns, never edits `frame`)."""
    keep = pd.Series(True, index=frame.index)
    reason = pd.Series("kept", index=frame.index, dtype=object)

    def apply(mask: pd.Series, action: str, name: str) -> None:
        mask = mask.fillna(False).astype(bool) & keep
        if action == "keep":
            return
        keep[mask] = False
        reason[mask] = name if action == "drop" else f"{name}:review"

    bad = frame["status"] != "ok"
    keep[bad] = False
    reason[bad] = "bad_file:" + frame.loc[bad, "status"].astype(str)
    reason[frame["status"] == "unlabeled"] = "unlabeled"

    from winnow.audit.checks import available_checks

    # in the registry's order, the rules that drop first: the first rule that drops a row
    # names its reason, and a row waits for review only when no rule drops it (a blank
    # picture filed under two classes is blank, not a question for a person)
    rules = [(check, rule) for check in available_checks().values() for rule in check.rules]
    for wanted in ("drop", "review"):
        for check, rule in rules:
            action = policy.action(rule)
            rows = check.rule_rows(rule, frame) if action == wanted else None
            if rows is not None:
                apply(rows, action, rule.reason)

    duplicate_of = pd.Series(None, index=frame.index, dtype=object)
    if policy.duplicates == "keep_one" and "duplicate_group" in frame:
        grouped = frame[frame["duplicate_group"].notna() & keep]
        for _, members in grouped.groupby("duplicate_group"):
            keeper = members.sort_values("duplicate_keep", ascending=False).index[0]
            others = members.index.drop(keeper)
            keep[others] = False
            reason[others] = "duplicate"
            duplicate_of[others] = frame.at[keeper, "path"]

    final_label = frame["label"].astype(object).copy()
    if decisions is not None and len(decisions):
        index_of = pd.Series(frame.index, index=frame["path"].to_numpy())
        unknown = sorted(
            str(p) if isinstance(p, str) else "(an empty path)"
            for p in set(decisions["path"]) - set(index_of.index)
        )
        if unknown:
            raise CleanError(f"Decisions name paths not in the manifest: {unknown[:5]}")
        rows = index_of.loc[decisions["path"].to_numpy()].to_numpy()
        decided_keep = decisions["keep"].to_numpy(bool)
        keep[rows] = decided_keep & (frame.loc[rows, "status"] == "ok").to_numpy()
        reason[rows] = "review"
        relabel = decisions["label"].notna().to_numpy()
        final_label[rows[relabel]] = decisions["label"].to_numpy()[relabel]
    return pd.DataFrame(
        {"keep": keep, "reason": reason, "duplicate_of": duplicate_of, "final_label": final_label}
    )


def classes_losing_rows(cleaned: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """The classes (folder labels) `clean` empties (`classes_emptied`: no row kept) and those
    it leaves with under half of their readable rows (`classes_halved`), each with its rows
    dropped by reason: a whole class can go without any rule being about it (e.g. its
    pictures are all also filed under another class, so all wait for review)."""
    labelled = cleaned[cleaned["label"].notna() & (cleaned["status"] == "ok")]
    emptied: dict[str, dict[str, int]] = {}
    halved: dict[str, dict[str, int]] = {}
    for label, rows in labelled.groupby("label", sort=True):
        kept = int(rows["keep"].sum())
        if kept * 2 >= len(rows):
            continue
        dropped = rows.loc[~rows["keep"], "reason"].value_counts().to_dict()
        (emptied if kept == 0 else halved)[str(label)] = {
            "rows": int(len(rows)),
            "kept": kept,
            **{str(reason): int(count) for reason, count in dropped.items()},
        }
    return {"classes_emptied": emptied, "classes_halved": halved}


def lost_classes(summary: dict, run_dir: Path) -> list[str]:
    """Lines for a person: the classes `clean` emptied or more than halved, and why (from
    `clean_summary.json`'s `classes_emptied` / `classes_halved`); none when no class lost
    half of its files."""

    def why(counts: dict[str, int]) -> str:
        reasons = {k: v for k, v in counts.items() if k not in ("rows", "kept")}
        return ", ".join(f"{reason} {count}" for reason, count in reasons.items())

    lines, waiting = [], False
    for label, counts in summary.get("classes_emptied", {}).items():
        lines.append(
            f"class {label!r} has no file left (of {counts['rows']}: {why(counts)}): "
            "a model trained now will not know it."
        )
        waiting |= ":review" in why(counts)
    for label, counts in summary.get("classes_halved", {}).items():
        lines.append(
            f"class {label!r} keeps {counts['kept']} of {counts['rows']} files ({why(counts)})."
        )
        waiting |= ":review" in why(counts)
    if waiting:
        lines.append(
            f"Files waiting for review are dropped until decided: 'winnow review {run_dir}' "
            "decides them; a policy key set to keep (e.g. label_conflicts: keep) keeps them."
        )
    return lines


def run_clean(
    run_dir: Path, policy_path: Path | None = None, decisions_path: Path | None = None
) -> dict:
    """Set `keep`, `reason`, `duplicate_of` and `final_label` in RUN's manifest from the
    policy and the decisions; RUN's write lock is held from the first read to the write."""
    run_dir = Path(run_dir)
    if not manifest_path(run_dir).exists():
        raise CleanError(missing_manifest(run_dir))
    with run_lock(run_dir, "clean"):
        return _run_clean(run_dir, policy_path, decisions_path)


def _run_clean(run_dir: Path, policy_path: Path | None, decisions_path: Path | None) -> dict:
    guard = ManifestGuard.of(manifest_path(run_dir))
    frame = read_manifest(run_dir)
    if not (run_dir / "audit" / "summary.json").exists():
        raise CleanError(f"{run_dir} has not been audited. Run 'winnow audit {run_dir}' first.")
    from winnow.audit.checks import available_checks

    audited = json.loads((run_dir / "audit" / "summary.json").read_text())["checks"]
    failed = [name for name, info in audited.items() if info["status"] != "ok"]
    # a check the last audit did not run (`--checks` chose others) has no columns, so what it
    # would find is kept: said in the summary and by `winnow clean`, never silently
    not_run = [name for name in available_checks() if name not in audited]
    try:
        policy = load_config(CleanPolicy, policy_path, {})
    except ConfigError as exc:
        raise CleanError(str(exc)) from None
    if decisions_path is None and review_decisions(run_dir).exists():
        decisions_path = review_decisions(run_dir)  # what `winnow review` saved
    decisions = read_decisions(decisions_path) if decisions_path else None
    frame = frame.drop(columns=[c for c in (*CLEAN_COLUMNS, "split") if c in frame])
    cleaned = pd.concat([frame, decide(frame, policy, decisions)], axis=1)
    write_manifest(run_dir, cleaned, guard)
    summary = {
        "policy": policy.resolved(),
        "checks_not_applied": failed + not_run,
        "checks_failed": failed,
        "checks_not_run": not_run,
        "decisions": str(decisions_path) if decisions_path else None,
        "rows": int(len(cleaned)),
        "kept": int(cleaned["keep"].sum()),
        "dropped": int((~cleaned["keep"]).sum()),
        "reasons": cleaned["reason"].value_counts().to_dict(),
        "dropped_by_reason": cleaned.loc[~cleaned["keep"], "reason"].value_counts().to_dict(),
        "kept_by_decision": int((cleaned["keep"] & (cleaned["reason"] == "review")).sum()),
        "relabelled": int(
            (
                cleaned["keep"]
                & (cleaned["final_label"].astype(str) != cleaned["label"].astype(str))
            ).sum()
        ),
        "kept_per_class": cleaned[cleaned["keep"]]["final_label"].value_counts().to_dict(),
        **classes_losing_rows(cleaned),
    }
    atomic_write_bytes(
        run_dir / "clean_summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    return summary
