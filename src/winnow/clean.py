"""`winnow clean`: decide `keep` and `reason` for every row from a readable policy,
with human decisions overriding rules. `winnow export` materialises the result.

Reasons (the `reason` column) are rule names a person can read:
    kept                    no rule removed it
    bad_file:<status>       not decodable (empty, truncated, ...)
    unlabeled               not in a class folder
    duplicate               a copy of the group's kept member (`duplicate_of` says which)
    label_conflict:review   same picture under several labels; dropped until reviewed
    leak                    a copy of a test item (would inflate test scores)
    odd_size                tiny or extreme aspect (only if the policy drops them)
    blank                   one colour, nothing drawn (a failed render, an empty PNG)
    out_of_domain[:review]  e.g. a photograph in an illustration set (when that check ran)
    review                  a person's decision from the decisions file
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from winnow.config import ConfigError, load_config
from winnow.errors import WinnowError
from winnow.io import atomic_write_bytes
from winnow.labels import check_label
from winnow.manifest import manifest_path, missing_manifest, read_manifest, write_manifest
from winnow.runlock import ManifestGuard, run_lock
from winnow.scan import scanned_folder

Action = Literal["drop", "review", "keep"]
CLEAN_COLUMNS = ("keep", "reason", "duplicate_of", "final_label")


class CleanPolicy(BaseModel):
    """What `clean` does with each finding. `review` drops an item until a person decides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bad_files: Literal["drop"] = "drop"
    duplicates: Literal["keep_one", "keep_all"] = "keep_one"
    label_conflicts: Action = "review"
    leaks: Action = "drop"
    odd_sizes: Action = "keep"
    blank: Action = "drop"
    out_of_domain: Action = "drop"
    out_of_domain_borderline: Action = "review"


class CleanError(WinnowError, RuntimeError):
    """Clean can't proceed; the message says what to run first or what to fix."""


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

    if "is_label_conflict_issue" in frame:
        apply(frame["is_label_conflict_issue"], policy.label_conflicts, "label_conflict")
    if "is_leak_issue" in frame:
        apply(frame["is_leak_issue"], policy.leaks, "leak")
    if "is_blank_issue" in frame:
        apply(frame["is_blank_issue"], policy.blank, "blank")
    if "is_out_of_domain_issue" in frame:
        borderline = frame.get("out_of_domain_borderline", pd.Series(False, index=frame.index))
        apply(
            frame["is_out_of_domain_issue"] & ~borderline.fillna(False).astype(bool),
            policy.out_of_domain,
            "out_of_domain",
        )
        apply(
            frame["is_out_of_domain_issue"] & borderline.fillna(False).astype(bool),
            policy.out_of_domain_borderline,
            "out_of_domain",
        )
    if "is_odd_size_issue" in frame:
        apply(frame["is_odd_size_issue"], policy.odd_sizes, "odd_size")

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
        unknown = sorted(set(decisions["path"]) - set(index_of.index))
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
    from winnow.checks import available_checks

    audited = json.loads((run_dir / "audit" / "summary.json").read_text())["checks"]
    failed = [name for name, info in audited.items() if info["status"] != "ok"]
    # a check the last audit did not run (`--checks` chose others) has no columns, so what it
    # would find is kept: said in the summary and by `winnow clean`, never silently
    not_run = [name for name in available_checks() if name not in audited]
    try:
        policy = load_config(CleanPolicy, policy_path, {})
    except ConfigError as exc:
        raise CleanError(str(exc)) from None
    decisions = read_decisions(decisions_path) if decisions_path else None
    frame = frame.drop(columns=[c for c in (*CLEAN_COLUMNS, "split") if c in frame])
    cleaned = pd.concat([frame, decide(frame, policy, decisions)], axis=1)
    write_manifest(run_dir, cleaned, guard)
    summary = {
        "policy": policy.model_dump(),
        "checks_not_applied": failed + not_run,
        "checks_failed": failed,
        "checks_not_run": not_run,
        "decisions": str(decisions_path) if decisions_path else None,
        "rows": int(len(cleaned)),
        "kept": int(cleaned["keep"].sum()),
        "dropped": int((~cleaned["keep"]).sum()),
        "reasons": cleaned["reason"].value_counts().to_dict(),
        "kept_per_class": cleaned[cleaned["keep"]]["final_label"].value_counts().to_dict(),
    }
    atomic_write_bytes(
        run_dir / "clean_summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    return summary


EXPORT_INDEX = ".winnow-export.csv"  # hidden: a scan of the export does not list it


def export_clean(run_dir: Path, destination: Path, copy: bool = False) -> dict:
    """Materialise kept rows as DEST/<label>/<name>: hard links where possible (or copies
    with `copy`), never writing through an existing file and never outside DEST.

    `name` is the path below the class folder with `__` for `/`. Two rows that would get
    one name (a relabelled file meeting a namesake, `sub/x.png` beside `sub__x.png`, names
    differing only in case) are told apart by a short hash of the source path; the row
    that keeps its own label keeps the plain name. DEST/.winnow-export.csv lists where
    every source went.
    """
    run_dir, destination = Path(run_dir), Path(destination)
    frame = read_manifest(run_dir)
    if "keep" not in frame:
        raise CleanError(f"{run_dir} has not been cleaned. Run 'winnow clean {run_dir}' first.")
    data_dir = scanned_folder(run_dir)
    if data_dir is None:
        raise CleanError(f"{run_dir} has no readable scan summary; scan it again.")
    data_real, dest_real = data_dir.resolve(), destination.resolve()
    if dest_real == data_real or data_real in dest_real.parents:
        raise CleanError(
            "The export folder lies inside the data folder; winnow never writes there."
        )
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise CleanError(
            f"{destination} exists and is not empty (or is a file); choose a new folder."
        )
    kept = frame[frame["keep"].fillna(False).astype(bool)]
    plan = export_plan(kept["path"].tolist(), kept["label"].tolist(), kept["final_label"].tolist())
    destination.mkdir(parents=True, exist_ok=True)
    linked = copied = 0
    for source, label, name in plan:
        target = destination / label / name
        if dest_real not in target.resolve().parents:  # labels are checked; this is the guard
            raise CleanError(f"Refusing to write {target}: it lies outside {destination}.")
        target.parent.mkdir(exist_ok=True)
        if _place(data_dir / source, target, copy):
            linked += 1
        else:
            copied += 1
    index = pd.DataFrame(plan, columns=["source", "label", "name"])
    atomic_write_bytes(destination / EXPORT_INDEX, index.to_csv(index=False).encode())
    return {
        "destination": str(destination),
        "files": linked + copied,
        "hard_links": linked,
        "copies": copied,
        "renamed": int(sum(name != _flat_name(src) for src, _, name in plan)),
        "index": str(destination / EXPORT_INDEX),
    }


def export_plan(
    paths: list[str], labels: list[str], final_labels: list[str]
) -> list[tuple[str, str, str]]:
    """(source path, label folder, file name) per row, every (folder, name) unique even on a
    case-insensitive file system. Deterministic: it depends only on the rows given."""
    rows = sorted(
        zip(paths, labels, final_labels, strict=True),
        key=lambda row: (row[1] != row[2], row[0]),  # rows keeping their label name first
    )
    taken: set[tuple[str, str]] = set()
    plan = []
    for path, _, final_label in rows:
        label = check_label(final_label, f"the cleaned label of {path}")
        name = _flat_name(path)
        if (label.casefold(), name.casefold()) in taken:
            stem, suffix = _split_suffix(name)
            digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()
            name = f"{stem}~{digest[:8]}{suffix}"
            n = 2
            while (label.casefold(), name.casefold()) in taken:
                name, n = f"{stem}~{digest[:8]}-{n}{suffix}", n + 1
        taken.add((label.casefold(), name.casefold()))
        plan.append((path, label, name))
    return plan


def _flat_name(path: str) -> str:
    return "__".join(Path(path).parts[1:])  # sub-folders below the class become the name


def _split_suffix(name: str) -> tuple[str, str]:
    suffix = Path(name).suffix
    return (name[: -len(suffix)], suffix) if suffix else (name, "")


def _place(source: Path, target: Path, copy: bool) -> bool:
    """A new file at `target` with `source`'s bytes; True when it is a hard link.

    Neither step can write through an existing file: `os.link` and an `O_EXCL` open both
    fail when `target` exists (a link or a symlink included), and that is an error here.
    """
    try:
        if not copy:
            try:
                os.link(source, target)
                return True
            except FileExistsError:
                raise
            except OSError:
                pass  # another file system, or links not allowed: copy instead
        with open(source, "rb") as reader, open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
        shutil.copystat(source, target)
        return False
    except FileExistsError:
        raise CleanError(
            f"{target} appeared while exporting (another process is writing there); "
            "nothing was written through it. Export into a new folder."
        ) from None
    except OSError as exc:
        raise CleanError(f"Cannot export {source} to {target}: {exc.strerror or exc}.") from None
