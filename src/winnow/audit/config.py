"""Settings of `winnow audit`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from winnow.data.engine import EngineName


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be a fraction in [0, 1], got {value:g}")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be positive, got {value:g}")
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must be ≥ 0, got {value:g}")
    return value


# field types for check settings, with the messages a user reads when a value is wrong
Fraction = Annotated[float, AfterValidator(_fraction)]
Positive = Annotated[float, AfterValidator(_positive)]
PositiveInt = Annotated[int, AfterValidator(_positive)]
NotNegative = Annotated[float, AfterValidator(_not_negative)]


class AuditConfig(BaseModel):
    """Settings of `winnow audit`.

    checks: names of the checks to run (None = all; see `winnow checks`).
    skip: names of checks not to run (e.g. `[label_issue]`, the one that trains models).
    engine: where the per-image work runs: `local` (this machine) or `ray` (Ray tasks; see
        `winnow.data.engine`). The findings are the same either way.
    ray_address: the Ray cluster to join with `engine: ray` (None: a local Ray for the audit).
    workers: processes for the per-image work on this machine (None: one per core).

    Every other key is a check's own settings section, named after the check and defined
    in the check's file (`Check.settings`; `winnow checks` lists them), e.g.

        near_duplicate: {min_correlation: 0.92, series_margin: 0.02}
        out_of_domain: {dominant_style: drawing}
        label_issue: {minutes: 5}

    A plug-in check takes its settings the same way. The flat spelling of earlier versions
    (`min_correlation: 0.92`, `label_issue_minutes: 5`) is still read: each settings model
    lists its old keys in `legacy_keys`, and they land in its section. An audit saves the
    resolved sections of every check in RUN/audit/config.yaml.
    """

    # extra keys are the sections of checks with their own settings (validated below);
    # any other key is refused, with a suggestion, by `winnow.config.build_config`
    model_config = ConfigDict(frozen=True, extra="allow")

    checks: list[str] | None = None
    skip: list[str] = []
    engine: EngineName = "local"
    ray_address: str | None = None
    workers: PositiveInt | None = None

    @classmethod
    def extra_keys(cls) -> list[str]:
        """The check names that take a settings section, and their legacy flat keys."""
        from winnow.audit.checks import available_checks

        checks = available_checks()
        return [name for name, check in checks.items() if check.settings] + list(_legacy(checks))

    @model_validator(mode="before")
    @classmethod
    def _check_sections(cls, data: Any) -> Any:
        """Each key beyond the fields must be a check with settings (its value becomes that
        check's settings model; checks read it through `Check.settings_of`) or a legacy
        flat key of one (moved into that check's section)."""
        if not isinstance(data, dict) or all(k in cls.model_fields for k in data):
            return data
        from winnow.audit.checks import available_checks

        checks = available_checks()
        legacy = _legacy(checks)
        data = dict(data)
        sections: dict[str, Any] = {}
        for key in [k for k in data if k not in cls.model_fields]:
            check = checks.get(key)
            if check is not None and check.settings is not None:
                sections[key] = data.pop(key)
            elif key not in legacy:
                raise ValueError(f"unknown key {key!r}")
        for key in [k for k in data if k in legacy]:
            name, field = legacy[key]
            section = sections.get(name)
            if isinstance(section, BaseModel):
                section = section.model_dump()
            section = dict(section or {})
            section.setdefault(field, data.pop(key))  # the section's own spelling wins
            sections[name] = section
        for name, section in sections.items():
            model = checks[name].settings
            if not isinstance(section, model):
                section = dict(section or {})
                _refuse_unknown(name, model, section)
                try:
                    section = model.model_validate(section)
                except ValidationError as exc:
                    raise ValueError(_problems(name, exc)) from None
            data[name] = section
        return data

    def with_check_defaults(self) -> AuditConfig:
        """This config with every settings-owning check's section filled in (defaults where
        not given): what an audit saves as the settings it ran with."""
        from winnow.audit.checks import available_checks

        sections = {
            name: check.settings_of(self)
            for name, check in available_checks().items()
            if check.settings is not None
        }
        return AuditConfig(**{**self.model_dump(include=set(type(self).model_fields)), **sections})


def _legacy(checks: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every old flat audit key → (the check whose section it belongs to, its field there),
    from each settings model's `legacy_keys`."""
    return {
        old: (name, new)
        for name, check in checks.items()
        if check.settings
        for old, new in (getattr(check.settings, "legacy_keys", None) or {}).items()
    }


def _refuse_unknown(name: str, model: type[BaseModel], section: dict[str, Any]) -> None:
    from winnow.config import unknown_key

    message = unknown_key(section, list(model.model_fields), f"{name} section")
    if message:
        raise ValueError(message)


def _problems(name: str, exc: ValidationError) -> str:
    """`label_issue.folds: folds must be at least 2, got 1` for each error."""
    return "; ".join(
        f"{'.'.join(str(p) for p in (name, *err['loc']))}: "
        + err["msg"].removeprefix("Value error, ")
        for err in exc.errors()
    )
