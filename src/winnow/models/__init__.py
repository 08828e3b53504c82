"""The model registry: built-in families listed here, plug-ins found by entry point.

    create_model("resnet18", num_classes=20, width=32, stem="cifar")

A plug-in package declares, in its pyproject.toml:

    [project.entry-points."winnow.models"]
    my_family = "my_package.my_module:MODELS"      # a tuple of ModelSpec
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from winnow.config import unknown_name
from winnow.errors import WinnowError
from winnow.models import fastnet, mobilenet, resnet, simple_cnn
from winnow.models.base import Classifier, ModelSpec

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    *simple_cnn.MODELS,
    *resnet.MODELS,
    *mobilenet.MODELS,
    *fastnet.MODELS,
)
ENTRY_POINT_GROUP = "winnow.models"

__all__ = ["Classifier", "ModelSpec", "available_models", "create_model", "get_spec"]


class ModelError(WinnowError, ValueError):
    """An unknown model name or parameter; the message lists the valid ones."""


def available_models() -> dict[str, ModelSpec]:
    """Every model by name, built-ins first, then installed plug-ins."""
    models = {spec.name: spec for spec in BUILTIN_MODELS}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        for spec in point.load():
            if not isinstance(spec, ModelSpec):
                raise TypeError(f"entry point {point.name!r} must give a tuple of ModelSpec")
            models.setdefault(spec.name, spec)
    return models


def get_spec(name: str) -> ModelSpec:
    models = available_models()
    if name not in models:
        raise ModelError(unknown_name("model", name, sorted(models)))
    return models[name]


def create_model(name: str, num_classes: int, **params: Any) -> Classifier:
    """Build a randomly initialised model; unknown parameters are rejected by name."""
    spec = get_spec(name)
    valid = spec.defaults()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items())
        raise ModelError(f"Model {name!r} has no parameter {', '.join(unknown)}; valid: {listing}.")
    if num_classes < 2:
        raise ModelError(f"A classifier needs at least 2 classes, got {num_classes}.")
    try:
        model = spec.build(num_classes, **params)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"Model {name!r}: {exc}") from None
    if not isinstance(model, Classifier):
        raise TypeError(f"{name!r} built a {type(model).__name__}, not a winnow Classifier")
    return model


def describe(spec: ModelSpec) -> str:
    """One line of parameters with defaults, for `winnow models`."""
    return ", ".join(f"{k}={v!r}" for k, v in spec.defaults().items()) or "-"
