"""Atomic file output: write to a temporary file beside the target, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _default_mode() -> int:
    """The permissions a plain `open(path, "w")` would give: 0o666 less the umask (read
    without changing it, through /proc where there is one, so no thread sees it altered)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path` whole, on error it is removed.

    Temporary files are hidden (`.<name>.<random>.tmp`) so a crash leaves nothing a reader
    takes for real output; `remove_temporaries` clears them. The file gets the permissions
    a plain write would (0o666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    # mkstemp makes the file private (0600); the output is a report or a manifest that a
    # teammate or a web server reads, so it gets the permissions any other file would
    os.fchmod(fd, _default_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def remove_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left in `folder`."""
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(TEMP_SUFFIX):
            (Path(folder) / name).unlink(missing_ok=True)
