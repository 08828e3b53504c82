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


TINY_TRAIN = {
    "model": "resnet10",
    "model_params": {"width": 8},
    "image_size": 32,
    "batch_size": 16,
    "max_epochs": 2,
    "checkpoint_minutes": 1e-6,  # last.ckpt after every step
    "threads": 1,
}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    """The demo dataset scanned, audited, cleaned and split: (data folder, run folder)."""
    from winnow.audit.runner import run_audit
    from winnow.curate.clean import run_clean
    from winnow.curate.split import run_split
    from winnow.data.scan import scan
    from winnow.workflows.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root / "data")
    run = root / "run"
    scan(root / "data" / "training", run)
    run_audit(run, against=root / "data" / "test")
    run_clean(run)
    run_split(run, val=0.15, test=0.1, seed=0)
    return root / "data", run


@pytest.fixture(scope="session")
def trained(demo_run) -> Path:
    """A tiny model trained for two epochs on the demo run: its training folder."""
    from winnow.training.config import TrainConfig
    from winnow.training.loop import train

    _, run = demo_run
    result = train(run, TrainConfig(**TINY_TRAIN), name="tiny")
    return result.out_dir
