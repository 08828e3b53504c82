"""Atomic file output: write to a temporary file beside the target, fsync, then rename.
Missing parent folders of the target are created."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from winnow.errors import WinnowError

TEMP_SUFFIX = ".tmp"


class OutputError(WinnowError, OSError):
    """An output can't be written where it was asked for; the message says why."""


def printable(text: str) -> str:
    """`text` as valid UTF-8: a file name's undecodable bytes (which Python holds as
    surrogates) become backslash escapes, so CSV, HTML, plots and the console can show it."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {printable(str(path))}: its folder can't be created "
            f"({exc.strerror or exc})."
        ) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"Cannot write {printable(str(path))}: {exc.strerror or exc}.") from None
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
