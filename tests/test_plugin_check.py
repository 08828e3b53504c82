"""A new check is one file plus one registry line: its settings, its clean action and its
report section travel with it, and the audit config, `clean`, `review` and the report pick
them up by name. The check here lives in a temporary package and registers by entry point,
as a plug-in does; a built-in would be the same file plus one line in BUILTIN_CHECKS."""

from __future__ import annotations

import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml

from factory import fingerprint, gradient
from winnow.audit.checks import ENTRY_POINT_GROUP, available_checks
from winnow.audit.config import AuditConfig
from winnow.audit.runner import run_audit
from winnow.config import ConfigError, build_config, load_config
from winnow.curate.clean import CleanPolicy, run_clean
from winnow.curate.review.findings import build_tabs
from winnow.data.manifest import read_manifest
from winnow.data.scan import scan

PLUGIN = '''
"""narrow: pictures at most `max_width` pixels wide."""

import pandas as pd
from pydantic import BaseModel, ConfigDict

from winnow.audit.checks.base import (
    Check, CheckResult, CleanRule, ReportSection, empty_columns, ok_rows,
)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_width: int = 16


def run(context):
    settings = CHECK.settings_of(context.settings)
    columns = empty_columns(CHECK, context.frame)
    ok = ok_rows(context.frame)
    width = ok["width"].astype(float)
    columns.loc[ok.index, CHECK.score_column] = (width / (4 * settings.max_width)).clip(0, 1)
    columns.loc[ok.index, CHECK.issue_column] = width <= settings.max_width
    return CheckResult(columns=columns, summary={"max_width": settings.max_width})


def report_data(inputs):
    frame = inputs.frame
    flagged = frame[frame[CHECK.issue_column].fillna(False).astype(bool)]
    return {"paths": sorted(flagged["path"])}


CHECK = Check(
    name="narrow",
    description="Pictures at most max_width pixels wide.",
    needs=("status", "width"),
    run=run,
    settings=Settings,
    clean_rules=(CleanRule("narrow", "drop", "narrow"),),
    report=ReportSection(
        "Narrow pictures",
        report_data,
        source="<p class=narrow>{% for p in paths %}<code>{{ p }}</code> {% endfor %}</p>",
    ),
)
'''

HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "winnow_narrow_check.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(package))
    point = EntryPoint("narrow", "winnow_narrow_check:CHECK", ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        "winnow.audit.checks.entry_points",
        lambda group: [point] if group == ENTRY_POINT_GROUP else [],
    )


@pytest.fixture
def narrow_run(tmp_path: Path, plugin) -> tuple[Path, Path]:
    data = tmp_path / "data"
    for label, widths in {"cat": (8, 12, 40), "dog": (10, 48, 56)}.items():
        (data / label).mkdir(parents=True)
        for width in widths:
            gradient(width, 24).save(data / label / f"{label}_{width}.png")
    gradient(20, 24).save(data / "cat" / HOSTILE)  # narrow too (20 ≤ 24)
    run = tmp_path / "run"
    scan(data, run)
    return data, run


def test_a_plug_in_check_brings_its_settings_clean_action_and_report_section(
    narrow_run, tmp_path
) -> None:
    data, run = narrow_run
    before = fingerprint(data)
    assert "narrow" in available_checks()
    config_file = tmp_path / "audit.yaml"
    config_file.write_text("checks: [exact_duplicate, narrow]\nnarrow: {max_width: 24}\n")
    config = load_config(AuditConfig, config_file, {})
    run_audit(run, config)

    frame = read_manifest(run)
    flagged = set(frame.loc[frame["is_narrow_issue"], "path"])
    # the YAML's max_width (24), not the check's default (16), decided
    assert flagged == {"cat/cat_8.png", "cat/cat_12.png", "dog/dog_10.png", f"cat/{HOSTILE}"}
    saved = yaml.safe_load((run / "audit" / "config.yaml").read_text())
    assert saved["narrow"] == {"max_width": 24}

    page = (run / "audit" / "report.html").read_text()
    section = page.split("<h2>Narrow pictures</h2>")[1].split("</section>")[0]
    assert "<code>cat/cat_8.png</code>" in section and "dog_48" not in section
    # a hostile file name is text on the page, never markup
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "<a href='#narrow'>Narrow pictures (4)</a>" in page

    summary = run_clean(run)  # the check's default action: drop
    assert summary["policy"]["narrow"] == "drop"
    cleaned = read_manifest(run).set_index("path")
    assert not cleaned.loc["cat/cat_8.png", "keep"]
    assert cleaned.loc["cat/cat_8.png", "reason"] == "narrow"
    assert cleaned.loc["dog/dog_48.png", "keep"]

    policy = tmp_path / "policy.yaml"
    policy.write_text("narrow: review\n")  # overridden by the check's name
    run_clean(run, policy_path=policy)
    assert read_manifest(run).set_index("path").loc["cat/cat_8.png", "reason"] == "narrow:review"

    tabs = build_tabs(read_manifest(run), list(available_checks()), CleanPolicy())
    narrow_tab = next(t for t in tabs if t.name == "narrow")
    assert narrow_tab.title == "Narrow" and len(narrow_tab.rows) == 4
    assert fingerprint(data) == before


def test_a_plug_in_checks_settings_are_validated_by_its_own_model(plugin) -> None:
    assert (
        build_config(AuditConfig, {"narrow": {"max_width": 3}}).model_extra["narrow"].max_width == 3
    )
    with pytest.raises(ConfigError, match="max_widht"):
        build_config(AuditConfig, {"narrow": {"max_widht": 3}})
    with pytest.raises(ConfigError, match="did you mean 'narrow'"):
        build_config(AuditConfig, {"narow": {"max_width": 3}})
    with pytest.raises(ConfigError, match="narrow must be one of drop, review, keep"):
        build_config(CleanPolicy, {"narrow": "sometimes"})


def test_the_audit_report_in_a_browser_reaches_every_section_from_the_keyboard(
    narrow_run, browser_page
) -> None:
    _, run = narrow_run
    settings = {"checks": ["exact_duplicate", "narrow"], "narrow": {"max_width": 24}}
    run_audit(run, build_config(AuditConfig, settings))
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((run / "audit" / "report.html").resolve().as_uri())
    # the hostile name is shown as text: no element came out of it
    assert page.locator("img[onerror]").count() == 0
    assert page.get_by_text(HOSTILE, exact=False).count() >= 1
    link = page.locator("nav.toc a", has_text="Narrow pictures")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**#narrow", timeout=5000)
    assert page.locator("section#narrow h2").is_visible()
    assert page.locator("section#narrow code", has_text="cat/cat_8.png").count() == 1
    assert errors == []


def test_the_audit_reports_each_checks_progress_flagged_rows_and_seconds(narrow_run) -> None:
    from winnow.audit.runner import CheckProgress

    _, run = narrow_run
    heard: list[CheckProgress] = []
    settings = {"checks": ["exact_duplicate", "narrow"], "narrow": {"max_width": 24}}
    run_audit(run, build_config(AuditConfig, settings), on_progress=heard.append)
    events = [(p.check, p.position, p.count, p.state) for p in heard]
    assert events == [
        ("exact_duplicate", 1, 2, "running"),
        ("exact_duplicate", 1, 2, "ok"),
        ("narrow", 2, 2, "running"),
        ("narrow", 2, 2, "ok"),
    ]
    assert heard[-1].issues == 4 and heard[-1].seconds >= 0


def test_winnow_checks_lists_every_checks_settings_and_clean_rule(plugin) -> None:
    from typer.testing import CliRunner

    from winnow.cli import app

    result = CliRunner().invoke(app, ["checks"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[0].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "max_width=16" in rows["narrow"]
    assert "min_correlation=0.9" in rows["near_duplicate"]
    assert "max_ink=0.001" in rows["blank"] and "blank: drop" in rows["blank"]
    assert "folds=3" in rows["label_issue"] and "label_issues: keep" in rows["label_issue"]
