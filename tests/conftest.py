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


@pytest.fixture(scope="session")
def onnx_model(trained, tmp_path_factory) -> Path:
    """The tiny trained model exported to ONNX."""
    from winnow.inference.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(trained / "best.ckpt", path)
    return path


def chromium_path() -> str | None:
    """Debian's chromium for the browser tests; `make test` installs it. Elsewhere a machine
    without it skips them; with WINNOW_REQUIRE_BROWSER=1 (set by `make test`) they fail."""
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("WINNOW_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture
def browser_page():
    """A playwright page in headless Debian chromium (nothing is downloaded)."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run",
            ],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        yield page
        browser.close()
