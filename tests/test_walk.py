"""Finding files: labels, hidden files, link loops, broken links, odd names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from winnow.data.walk import WalkStats, iter_files


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_labels_hidden_files_and_unicode_names(tmp_path: Path) -> None:
    _touch(tmp_path / "cat" / "고양이 그림 01.png")
    _touch(tmp_path / "cat" / "sub dir" / "deep.png")
    _touch(tmp_path / "cat" / ".DS_Store")
    _touch(tmp_path / ".git" / "config")
    _touch(tmp_path / "loose.png")
    stats = WalkStats()
    found = {f.path: f for f in iter_files(tmp_path, stats)}
    assert set(found) == {"cat/sub dir/deep.png", "cat/고양이 그림 01.png", "loose.png"}
    assert found["cat/sub dir/deep.png"].label == "cat"  # first level below DATA
    assert found["cat/고양이 그림 01.png"].problem is None
    assert found["loose.png"].label is None and found["loose.png"].problem[0] == "unlabeled"
    assert stats.hidden_skipped == 2


@pytest.mark.timeout(10)
def test_symlink_loops_end_and_each_folder_is_walked_once(tmp_path: Path) -> None:
    _touch(tmp_path / "dog" / "a.png")
    os.symlink(tmp_path / "dog", tmp_path / "dog" / "again")  # dog/again -> dog
    os.symlink(tmp_path, tmp_path / "dog" / "root")  # dog/root -> DATA
    stats = WalkStats()
    paths = [f.path for f in iter_files(tmp_path, stats)]
    assert paths == ["dog/a.png"]
    assert stats.loops_skipped == 2 and any("link loop" in n for n in stats.notes)


def test_broken_link_is_a_row_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    os.symlink(tmp_path / "nowhere.png", tmp_path / "cls" / "gone.png")
    (found,) = list(iter_files(tmp_path))
    assert found.problem == ("unreadable", "broken symbolic link")


def test_names_that_are_not_utf8_are_flagged(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    raw = os.path.join(os.fsencode(tmp_path / "cls"), b"caf\xe9.png")
    with open(raw, "wb") as handle:
        handle.write(b"x")
    (found,) = list(iter_files(tmp_path))
    assert found.problem[0] == "bad_filename"
    found.path.encode("utf-8")  # storable as text
    assert "\\xe9" in found.path
