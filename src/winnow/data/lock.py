"""One writer at a time per RUN folder, and a guard against a manifest changed underfoot.

Every stage that rewrites RUN/manifest.parquet (scan, audit, clean, split) holds
`run_lock(RUN, verb)` from its first read to its last write. The lock is an advisory
`flock` on RUN/.lock; the file also names the holder (verb and pid) for the message a
second writer gets. The lock is released when the holder exits, however it exits.

`ManifestGuard` protects what the lock cannot: a writer that does not take the lock (an
older winnow, a script, a file system where `flock` is not shared). It remembers the
manifest's identity when a stage read it and refuses to write over a different one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from winnow.errors import WinnowError

LOCK_NAME = ".lock"


class RunBusyError(WinnowError):
    """Another winnow process is writing the same RUN folder."""


class ManifestChangedError(WinnowError):
    """The manifest was replaced while a stage was working from an earlier copy."""


@contextmanager
def run_lock(run_dir: Path, verb: str) -> Iterator[None]:
    """Hold RUN's write lock for the block; raise `RunBusyError` at once if it is held."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise RunBusyError(
                f"Another winnow process{f' ({holder})' if holder else ''} is writing "
                f"{run_dir}; wait for it to finish (or stop it), then run this command again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"'winnow {verb}' (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


@dataclass(frozen=True)
class ManifestGuard:
    """The identity (inode, size, mtime) of a manifest as a stage read it."""

    path: Path
    identity: tuple[int, int, int] | None

    @classmethod
    def of(cls, path: Path) -> ManifestGuard:
        return cls(Path(path), _identity(Path(path)))

    def check(self) -> None:
        """Raise `ManifestChangedError` when the file is no longer the one that was read."""
        if _identity(self.path) != self.identity:
            raise ManifestChangedError(
                f"{self.path} changed while this command was working from an earlier copy "
                "(another process scanned, audited, cleaned or split the run). Nothing was "
                "written; run this command again."
            )


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
