"""`winnow export`: the cleaned dataset as a new folder DEST/<label>/<file>.

The data folder is only read: every file in DEST is new (a hard link or an exclusive
copy), no existing file is written through, and nothing is written outside DEST.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from winnow.curate.clean import CleanError
from winnow.data.io import atomic_write_bytes
from winnow.data.labels import check_label
from winnow.data.manifest import read_manifest
from winnow.data.scan import scanned_folder

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
