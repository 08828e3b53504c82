"""Contract tests over every registered model, and the registry's error messages."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from winnow.cli import app
from winnow.models import ModelError, available_models, create_model

MODELS = sorted(available_models())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_splits_into_features_and_head(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    images = torch.randn(2, 3, 32, 32)
    features = model.forward_features(images)
    assert features.ndim == 4 and features.shape[:2] == (2, model.num_features)
    logits = model.forward_head(features)
    assert logits.shape == (2, 5)
    assert torch.allclose(model(images), logits)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_and_accepts_other_sizes(name: str) -> None:
    model = create_model(name, num_classes=3).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 48, 48)), torch.arange(4) % 3)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_unknown_model_names_the_valid_ones() -> None:
    with pytest.raises(ModelError) as error:
        create_model("resnet7", 3)
    message = str(error.value)
    assert "resnet18" in message and "simple_cnn" in message and "winnow models" in message


def test_unknown_or_invalid_parameters_are_rejected_with_the_valid_list() -> None:
    with pytest.raises(ModelError, match="no parameter depth.*width=32"):
        create_model("resnet18", 3, depth=7)
    with pytest.raises(ModelError, match="stem"):
        create_model("resnet18", 3, stem="giant")
    with pytest.raises(ModelError, match="at least 2 classes"):
        create_model("simple_cnn", 1)


def test_resnet_is_configurable_by_depth_width_stem_and_preactivation() -> None:
    def size(name: str, **params) -> int:
        return sum(p.numel() for p in create_model(name, 10, **params).parameters())

    assert size("resnet10") < size("resnet18") < size("resnet34")
    assert size("resnet18", width=16) < size("resnet18", width=32)
    wide = create_model("resnet18", 10, stem="imagenet", pre_activation=True).eval()
    assert wide.forward_features(torch.randn(1, 3, 64, 64)).shape[-1] == 2  # /4 stem, /8 stages


def test_models_command_lists_models_and_strategies() -> None:
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    for name in [*MODELS, "weighted_sampler", "focal"]:
        assert name in result.output


@pytest.mark.parametrize("name", MODELS)
def test_inference_copy_folds_batch_norm_and_gives_the_same_outputs(name: str) -> None:
    from winnow.inference.load import _fold_batch_norm

    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    with torch.no_grad():  # move the running statistics away from their initial values
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    model.eval()
    fast = _fold_batch_norm(model)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    if norms:
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules()) < norms
    images = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        expected = model(images)
        got = fast(images.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_a_model_that_cannot_be_traced_is_used_as_it_is() -> None:
    from winnow.inference.load import _fold_batch_norm

    class Branchy(torch.nn.Module):  # data-dependent control flow defeats torch.fx
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.norm(self.conv(x))
            return y if y.sum() > 0 else -y

    model = Branchy().eval()
    assert _fold_batch_norm(model) is model
