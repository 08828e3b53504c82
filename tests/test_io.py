"""Atomic output: whole files or none, and the permissions any other file would get."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from winnow.data.io import TEMP_SUFFIX, atomic_output, atomic_write_bytes, remove_temporaries


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_gets_the_permissions_a_plain_write_would(tmp_path: Path, umask: int) -> None:
    """mkstemp makes a private 0600 file; a report or manifest a teammate (or a web server)
    reads must get 0o666 less the umask, like a file written with open()."""
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "report.html", b"<html></html>")
        (tmp_path / "plain.html").write_bytes(b"<html></html>")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "report.html").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.html").stat().st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    (tmp_path / f".manifest.parquet.abc{TEMP_SUFFIX}").write_bytes(b"left by a kill")
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]


def test_atomic_output_creates_missing_folders_or_says_why(tmp_path: Path) -> None:
    from winnow.data.io import OutputError, atomic_write_bytes, printable
    from winnow.errors import WinnowError

    atomic_write_bytes(tmp_path / "a" / "b" / "out.bin", b"x")
    assert (tmp_path / "a" / "b" / "out.bin").read_bytes() == b"x"
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="its folder can't be created") as caught:
        atomic_write_bytes(tmp_path / "file" / "out.bin", b"x")
    assert isinstance(caught.value, WinnowError)
    assert printable("bad\udcff.png") == "bad\\xff.png" and printable("고양이") == "고양이"
