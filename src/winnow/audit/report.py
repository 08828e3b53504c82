"""The audit report: one self-contained HTML file (charts and thumbnails inlined) that
opens offline and is meant to be shown to a lead, not grepped.

The page is the `report.html` template: the dataset's cards and charts, the table of
checks, the unusable files, then one section per registered check in the registry's
order, each its own partial fed by the check's `report.build` (winnow.audit.checks.base),
or the generic partial (its flagged files, most severe first) for a check without one.
Python prepares data; every piece of markup is a template, autoescaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from winnow.audit.checks.base import Check, ReportInputs
from winnow.audit.sections import MAX_STRIP, Thumbs, figures, marked, more, unavailable
from winnow.audit.summary import audit_time
from winnow.data.bad_files import bad_files_listing
from winnow.data.cache import PixelCache
from winnow.data.io import atomic_write_bytes
from winnow.pages import CSS, plain_number, png_base64, templates

GENERIC_PARTIAL = "checks/generic.html"
# summary keys that are not details of what a check found
_NOT_DETAILS = ("status", "issues", "seconds", "traceback", "tables", "from_earlier_audit")


def _charts(frame: pd.DataFrame) -> list[str]:
    """Images per class and image sizes, as base64 PNGs (none without a readable image)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogFormatter

    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return []
    counts = ok["label"].value_counts().sort_values()
    fig = Figure(figsize=(5.5, max(2.5, 0.28 * len(counts))))
    ax = fig.subplots()
    ax.barh(counts.index.astype(str), counts.to_numpy(), color="#4a72b0")
    ratio = counts.max() / max(counts.min(), 1) if len(counts) else 0
    ax.set_title(f"images per class (imbalance {ratio:.0f}:1)")
    for y, value in enumerate(counts.to_numpy()):
        ax.text(value, y, f" {value}", va="center", fontsize=8)
    classes = png_base64(fig)

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    flagged = (
        ok.get("is_odd_size_issue", pd.Series(False, index=ok.index)).fillna(False).astype(bool)
    )
    for mask, colour, name in ((~flagged, "#4a72b0", "ok"), (flagged, "#d2502a", "odd size")):
        ax.scatter(
            ok["width"][mask].astype(float),
            ok["height"][mask].astype(float),
            s=6,
            alpha=0.5,
            color=colour,
            label=f"{name} ({int(mask.sum())})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(plain_number))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("image sizes")
    ax.legend(loc="upper left", fontsize=8)
    return [classes, png_base64(fig)]


def _cards(summary: dict[str, Any]) -> list[dict[str, Any]]:
    checks = summary["checks"]
    data = summary["dataset"]
    # an image folder's text or sound companions are not unusable images
    bad = data["files"] - data["ok"] - data.get("other_files", 0)

    def issues(name: str, key: str = "issues") -> int | str:
        check = checks.get(name, {})
        return check.get(key, "–") if check.get("status") == "ok" else "–"

    items = [
        ("files", data["files"], False),
        ("unusable files", bad, bad > 0),
        ("classes", data["classes"], False),
        ("exact-duplicate files", issues("exact_duplicate", "files_in_groups"), True),
        ("duplicate groups", issues("near_duplicate", "groups"), True),
        ("label conflicts (groups)", issues("label_conflict", "groups"), True),
        ("leaked test items", issues("leak", "leaked_test_items"), True),
        ("odd sizes", issues("odd_size"), True),
        ("blank images", issues("blank"), True),
        (_out_of_domain_label(checks.get("out_of_domain", {})), issues("out_of_domain"), True),
    ]
    return [
        {"label": label, "value": value, "warn": warn and value not in (0, "–")}
        for label, value, warn in items
    ]


def _out_of_domain_label(info: dict[str, Any]) -> str:
    """The card of out_of_domain names what it found: photographs in a drawing set, drawings
    in a photo set."""
    style = info.get("out_of_domain_style")
    return {"photo": "photographs (other style)", "drawing": "drawings (other style)"}.get(
        style, "other style (out of domain)"
    )


def _readable(value: Any) -> str:
    """A summary value as a person reads it: numbers rounded, lists joined."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(_readable(v) for v in value) or "none"
    return str(value)


def _check_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    from winnow.audit.checks import available_checks

    registry = available_checks()
    rows = []
    for name, info in summary["checks"].items():
        check = registry.get(name)
        if info.get("error"):
            details = info["error"]
        elif check is not None and check.details is not None and info["status"] == "ok":
            try:
                details = check.details(info)
            except (KeyError, TypeError, ValueError):  # a summary of an older audit
                details = _numbers(info)
        else:
            details = _numbers(info)
        status = info["status"] + (" (earlier audit)" if info.get("from_earlier_audit") else "")
        rows.append(
            {
                "name": name,
                "status": status,
                "issues": info["issues"],
                "seconds": f"{float(info['seconds']):.1f}",
                "details": details,
            }
        )
    return rows


def _numbers(info: dict[str, Any]) -> str:
    return "; ".join(
        f"{key.replace('_', ' ')} {_readable(value)}"
        for key, value in info.items()
        if key not in _NOT_DETAILS and not isinstance(value, dict)
    )


def generic_data(check: Check, inputs: ReportInputs) -> dict[str, Any]:
    """A check without its own section: its flagged files, most severe (lowest score)
    first, and what `clean` does with them by default."""
    data: dict[str, Any] = {"name": check.name, "description": check.description}
    if (shown_instead := unavailable(check, inputs)) is not None:
        return {**data, **shown_instead}
    frame = inputs.frame
    flagged = frame[frame[check.issue_column].fillna(False).astype(bool)]
    shown = flagged.sort_values([check.score_column, "path"]).head(MAX_STRIP)
    items = [(r.path, f"score {getattr(r, check.score_column):.2f}") for r in shown.itertuples()]
    action = check.rules[0].default if check.rules else None
    return {
        **data,
        "count": len(flagged),
        "action": action,
        "figures": figures(inputs.thumbs, items),
        "more_note": more(len(flagged) - len(shown), marked(check.issue_column)),
    }


def render_section(check: Check, inputs: ReportInputs) -> Markup:
    """A check's report section: its own partial with its own data, or the generic one."""
    env = templates("winnow.audit")
    section = check.report
    if section is None:
        return Markup(env.get_template(GENERIC_PARTIAL).render(**generic_data(check, inputs)))
    if section.source is not None:
        template = env.from_string(section.source)
    else:
        template = env.get_template(section.template or GENERIC_PARTIAL)
    return Markup(template.render(**section.build(inputs)))


def write_audit_report(
    run_dir: Path,
    frame: pd.DataFrame,
    summary: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    reference_cache: PixelCache | None = None,
    reference_frame: pd.DataFrame | None = None,
) -> Path:
    from winnow.audit.checks import available_checks

    test_thumbs = (
        Thumbs(reference_frame, reference_cache)
        if reference_cache is not None and reference_frame is not None
        else None
    )
    from winnow.data.scan import scanned_folder

    thumbs = Thumbs(frame, PixelCache(run_dir), scanned_folder(run_dir))
    inputs = ReportInputs(frame, summary, tables, thumbs, test_thumbs)
    sections = []
    for check in available_checks().values():
        if check.shown_in is not None:
            continue
        ran = summary["checks"].get(check.name, {})
        sections.append(
            {
                "id": check.name,
                "title": check.report.title if check.report else check.display_title,
                "flagged": ran.get("issues") if ran.get("status") == "ok" else None,
                "html": render_section(check, inputs),
            }
        )
    page = (
        templates("winnow.audit")
        .get_template("report.html")
        .render(
            css=CSS,
            run_name=Path(run_dir).name,
            run_dir=str(run_dir),
            when=audit_time(summary),
            against=summary["against"],
            cards=_cards(summary),
            charts=_charts(frame),
            check_rows=_check_rows(summary),
            bad_files=bad_files_listing(frame),
            sections=sections,
        )
    )
    path = Path(run_dir) / "audit" / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
