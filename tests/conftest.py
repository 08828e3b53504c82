from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factory import write_messy_dataset  # noqa: E402


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A DATA folder with every kind of file; returns (folder, {path: expected status})."""
    data = tmp_path / "data"
    expected = write_messy_dataset(data)
    return data, expected
