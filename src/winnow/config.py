"""The YAML loader and validation shared by every stage's settings.

Each stage's settings are a frozen pydantic model in its own package (`winnow.data.config`,
`winnow.audit.config`, `winnow.training.config`); every CLI flag maps to a key of one, and
a run saves its resolved config next to its results so it can be reproduced from that
file alone. Unknown keys are an error that suggests the closest known key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from winnow.errors import WinnowError

M = TypeVar("M", bound=BaseModel)


class ConfigError(WinnowError, ValueError):
    """A configuration value or key a user gave is not valid; the message says the fix."""


def unknown_name(kind: str, name: str, available: list[str]) -> str:
    """`Unknown model 'resnet7'. Did you mean 'resnet34'? Available: … See 'winnow models'.`"""
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"Unknown {kind} {name!r}.{hint} Available: {', '.join(available)}. See 'winnow {kind}s'."
    )


def unknown_key(data: dict[str, Any], known: list[str], what: str) -> str | None:
    """`Unknown WHAT key 'x'; did you mean 'y'? Valid keys: …` for the first key of `data`
    not in `known`; None when every key is known."""
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"Unknown {what} key {key!r}{hint} Valid keys: {', '.join(known)}."
    return None


def _explain_unknown_keys(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Refuse a key the model does not know; a model that takes keys beyond its fields
    (the audit config's check sections, the clean policy's check keys) lists them in
    `extra_keys()`."""
    extra = getattr(model, "extra_keys", None)
    known = list(model.model_fields) + (list(extra()) if extra else [])
    message = unknown_key(data, known, model.__name__)
    if message:
        raise ConfigError(message)


def build_config(model: type[M], data: dict[str, Any]) -> M:
    """Validate `data` into `model`, turning pydantic's errors into one readable sentence."""
    _explain_unknown_keys(model, data)
    try:
        return model(**data)
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(
                part
                for part in (
                    ".".join(str(p) for p in err["loc"]),
                    err["msg"].removeprefix("Value error, "),
                )
                if part
            )
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid {model.__name__}: {problems}") from None


def load_config(model: type[M], path: Path | None, overrides: dict[str, Any]) -> M:
    """Read a YAML file (optional) and apply CLI overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"Cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return build_config(model, data)


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=True, allow_unicode=True)
