from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from winnow.audit.checks.near_duplicate import CHECK as NEAR_DUPLICATE
from winnow.audit.config import AuditConfig
from winnow.config import ConfigError, build_config, load_config
from winnow.data.config import ScanConfig


def test_defaults_are_documented_values() -> None:
    config = ScanConfig()
    assert (config.image_size, config.background, config.background_rgb()) == (
        128,
        "white",
        (255, 255, 255),
    )


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        ScanConfig().image_size = 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"image_size": 8}, "between 16 and 1024"),
        ({"workers": 0}, "at least 1"),
        ({"background": "nope"}, "not a colour"),
        ({"max_pixel": 5}, "did you mean 'max_pixels'"),
    ],
)
def test_invalid_values_name_the_value_and_the_fix(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(ScanConfig, data)


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("image_size: 64\nbackground: black\n")
    config = load_config(ScanConfig, path, {"image_size": 96, "workers": None})
    assert (config.image_size, config.background, config.workers) == (96, "black", None)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(ScanConfig, path, {})


@pytest.mark.parametrize("key", ["max_changed_area", "max_changed_area_full"])
def test_changed_area_limits_are_fractions(key: str) -> None:
    with pytest.raises(ConfigError, match=r"fraction in \[0, 1\], got 2"):
        build_config(AuditConfig, {key: 2})
    assert getattr(NEAR_DUPLICATE.settings_of(build_config(AuditConfig, {key: 0.5})), key) == 0.5


def test_unquoted_on_and_off_in_yaml_mean_the_switch(tmp_path: Path) -> None:
    from winnow.config import dump_config
    from winnow.training.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("compile: on\nchannels_last: off\n")  # YAML reads these as true / false
    config = load_config(TrainConfig, path, {})
    assert (config.compile, config.channels_last) == ("on", "off")
    saved = tmp_path / "saved.yaml"
    saved.write_text(dump_config(config))  # and a saved config reads back the same
    assert load_config(TrainConfig, saved, {}) == config
    with pytest.raises(ConfigError, match="compile"):
        build_config(TrainConfig, {"compile": "sometimes"})
