"""Find the files under a data folder: labels, file facts, hidden files skipped, loops broken."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from winnow.data.io import printable


@dataclass(frozen=True)
class FoundFile:
    """One file under DATA. `problem` is set (with a status code) when it can't be read."""

    path: str  # POSIX, relative to DATA
    label: str | None
    abspath: str
    bytes: int
    mtime_ns: int
    problem: tuple[str, str] | None = None  # (status, sentence)


@dataclass
class WalkStats:
    hidden_skipped: int = 0
    loops_skipped: int = 0
    not_regular: int = 0
    notes: list[str] = field(default_factory=list)
    files: int = 0
    empty_class_folders: list[str] = field(default_factory=list)  # first level, no files

    def class_notes(self, root: Path) -> list[str]:
        """What a class-folder reader (scan) says about an empty DATA or empty classes."""
        notes = []
        if not self.files:
            notes.append(
                f"the data folder {printable(str(root))} holds no files (hidden ones aside)"
            )
        empty = self.empty_class_folders
        if empty:
            shown = ", ".join(printable(name) for name in empty[:10])
            more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
            notes.append(
                f"{len(empty)} class folder(s) hold no files and are not classes: {shown}{more}"
            )
        return notes


def _relative(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _bad_name(parts: tuple[str, ...]) -> str | None:
    """Names that are not valid UTF-8 (undecodable bytes) can't be stored as text as-is."""
    try:
        "/".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return printable("/".join(parts))
    return None


def iter_files(root: Path, stats: WalkStats | None = None) -> Iterator[FoundFile]:
    """Yield every non-hidden file under `root` in a stable (sorted) order.

    Symbolic links to folders are followed once: a folder already visited (same device and
    inode) is skipped, so link loops end. Broken links become rows with status `unreadable`.
    The label is the first folder level below `root`; files directly in `root` have none.
    """
    stats = stats if stats is not None else WalkStats()
    root = Path(root)
    root_stat = os.stat(root)
    seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
    stack: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    class_folders: list[str] = []  # the first level below root, where labels come from
    labels_with_files: set[str | None] = set()
    while stack:
        dir_path, parts = stack.pop()
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            stats.notes.append(f"cannot list folder {_relative(parts) or '.'}: {exc.strerror}")
            continue
        subdirs: list[tuple[str, tuple[str, ...]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                stats.hidden_skipped += 1
                continue
            rel = (*parts, entry.name)
            found = _examine(entry, rel, seen_dirs, stats, subdirs)
            if found is not None:
                stats.files += 1
                labels_with_files.add(found.label)
                yield found
        if not parts:
            class_folders = [rel[0] for _, rel in subdirs]
        stack.extend(reversed(subdirs))
    stats.empty_class_folders = [n for n in class_folders if n not in labels_with_files]


def _examine(
    entry: os.DirEntry[str],
    rel: tuple[str, ...],
    seen_dirs: set[tuple[int, int]],
    stats: WalkStats,
    subdirs: list[tuple[str, tuple[str, ...]]],
) -> FoundFile | None:
    label = rel[0] if len(rel) > 1 else None
    bad = _bad_name(rel)
    path = bad if bad is not None else _relative(rel)
    try:
        st = os.stat(entry.path)  # follows links
    except FileNotFoundError:
        return FoundFile(path, label, entry.path, 0, 0, ("unreadable", "broken symbolic link"))
    except OSError as exc:
        return FoundFile(
            path, label, entry.path, 0, 0, ("unreadable", f"cannot stat: {exc.strerror}")
        )
    if stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            stats.loops_skipped += 1
            stats.notes.append(f"folder {path} was already visited (link loop); skipped")
        else:
            seen_dirs.add(key)
            subdirs.append((entry.path, rel))
        return None
    if not stat.S_ISREG(st.st_mode):
        stats.not_regular += 1
        return None
    problem = None
    if bad is not None:
        problem = ("bad_filename", "file name is not valid UTF-8; rename it to use it")
    elif label is None:
        problem = ("unlabeled", "file lies directly in the data folder, not in a class folder")
    return FoundFile(path, label, entry.path, st.st_size, st.st_mtime_ns, problem)
