"""The audit report: one self-contained HTML file (charts and thumbnails inlined) that
opens offline and is meant to be shown to a lead, not grepped."""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.audit.summary import audit_time
from winnow.data.bad_files import bad_files_section
from winnow.data.cache import PixelCache
from winnow.data.io import atomic_write_bytes
from winnow.pages import CSS, png_base64, thumbnail_uri

MAX_GROUPS = 40
MAX_MEMBERS = 8
MAX_STRIP = 24  # pictures in a strip of odd sizes or blank images
MAX_LEAK_ITEMS = 100  # leaked test items shown in the report, each with its copies
MAX_LEAK_COPIES = 4  # training copies shown per leaked test item


class _Thumbs:
    def __init__(self, frame: pd.DataFrame, cache: PixelCache) -> None:
        ok = frame[frame["cache_shard"].notna()]
        self.where = dict(
            zip(ok["path"], zip(ok["cache_shard"], ok["cache_index"], strict=True), strict=True)
        )
        self.cache = cache

    def figure(self, path: str, caption: str = "", keep: bool = False) -> str:
        if path not in self.where:
            return f"<figure><figcaption>{html.escape(path)} (no pixels)</figcaption></figure>"
        shard, index = self.where[path]
        src = thumbnail_uri(np.asarray(self.cache.get(shard, index)))
        extra = f"<br><span class=tag>{html.escape(caption)}</span>" if caption else ""
        return (
            f"<figure class='{'keep' if keep else ''}'><img src='{src}' title='{html.escape(path)}'>"
            f"<figcaption>{html.escape(path)}{extra}</figcaption></figure>"
        )


def _plain_number(value: float, _position: int) -> str:
    """A log axis's tick as a plain number ("90", "1,000"), not 9×10¹."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _charts(frame: pd.DataFrame) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogFormatter

    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return "<p class=note>No readable image in this scan: nothing to chart.</p>"
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
        axis.set_major_formatter(FuncFormatter(_plain_number))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("image sizes")
    ax.legend(loc="upper left", fontsize=8)
    sizes = png_base64(fig)
    return (
        f"<div class=plots><img src='data:image/png;base64,{classes}'>"
        f"<img src='data:image/png;base64,{sizes}'></div>"
    )


def _cards(summary: dict[str, Any]) -> str:
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
    return (
        "<div class=cards>"
        + "".join(
            f"<div class='card {'warn' if warn and value not in (0, '–') else ''}'>"
            f"<b>{value}</b>{html.escape(label)}</div>"
            for label, value, warn in items
        )
        + "</div>"
    )


def _out_of_domain_label(info: dict[str, Any]) -> str:
    """The card of out_of_domain names what it found: photographs in a drawing set, drawings
    in a photo set."""
    style = info.get("out_of_domain_style")
    return {"photo": "photographs (other style)", "drawing": "drawings (other style)"}.get(
        style, "other style (out of domain)"
    )


def _check_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, info in summary["checks"].items():
        note = info.get("error") or ", ".join(
            f"{k}={v}"
            for k, v in info.items()
            if k not in ("status", "issues", "seconds", "traceback", "tables", "from_earlier_audit")
            and not isinstance(v, dict)
        )
        status = info["status"] + (" (earlier audit)" if info.get("from_earlier_audit") else "")
        rows.append(
            f"<tr><td>{name}</td><td>{status}</td><td>{info['issues']}</td>"
            f"<td>{info['seconds']}</td><td>{html.escape(str(note))}</td></tr>"
        )
    return (
        "<table><tr><th>check</th><th>status</th><th>rows flagged</th><th>seconds</th>"
        "<th>details</th></tr>" + "".join(rows) + "</table>"
    )


def _groups(frame: pd.DataFrame, thumbs: _Thumbs, conflicts_only: bool) -> str:
    if "duplicate_group" not in frame:
        return "<p class=muted>The near_duplicate check did not run.</p>"
    grouped = frame[frame["duplicate_group"].notna()]
    if conflicts_only:
        if "is_label_conflict_issue" not in grouped:
            return "<p class=muted>The label_conflict check did not run.</p>"
        grouped = grouped[grouped["is_label_conflict_issue"].fillna(False).astype(bool)]
    groups = grouped.groupby("duplicate_group")
    order = sorted(groups, key=lambda g: (-len(g[1]), g[1]["path"].min()))
    # groups of blank pages are alike because nothing is drawn: shown under Blank images
    all_blank = (
        grouped["is_blank_issue"].eq(True).groupby(grouped["duplicate_group"]).all()
        if "is_blank_issue" in grouped
        else pd.Series(dtype=bool)
    )
    blank = [g for g in order if all_blank.get(g[0], False)]
    order = [g for g in order if not all_blank.get(g[0], False)]
    note = (
        f"<p class=muted>{len(blank)} group{'s' if len(blank) > 1 else ''} of blank images "
        f"({sum(len(m) for _, m in blank)} files) {'are' if len(blank) > 1 else 'is'} shown "
        "under Blank images.</p>"
        if blank
        else ""
    )
    if not order:
        return note or "<p class=muted>None found.</p>"
    parts = []
    for _, members in order[:MAX_GROUPS]:
        members = members.sort_values("duplicate_keep", ascending=False)
        labels = sorted(set(members["label"].astype(str)))
        figures = "".join(
            thumbs.figure(
                r.path,
                r.label if conflicts_only else ("keep" if r.duplicate_keep else ""),
                keep=bool(r.duplicate_keep),
            )
            for r in members.head(MAX_MEMBERS).itertuples()
        )
        extra = (
            f"<figure>+{len(members) - MAX_MEMBERS} more</figure>"
            if len(members) > MAX_MEMBERS
            else ""
        )
        parts.append(
            f"<div class=strip><div class=muted style='width:100%'>{len(members)} files · "
            f"labels: {html.escape(', '.join(labels))}</div>{figures}{extra}</div>"
        )
    more = len(order) - MAX_GROUPS
    return note + "".join(parts) + _more(more, "see the manifest", "groups")


def _leaks(tables: dict[str, pd.DataFrame], thumbs: _Thumbs, test_thumbs: _Thumbs | None) -> str:
    """One row per leaked test item with its training copies (most alike first), up to
    MAX_LEAK_ITEMS items and MAX_LEAK_COPIES copies each; what is left out is counted, and
    every pair is in leaks.csv."""
    leaks = tables.get("leaks")
    if leaks is None:
        return "<p class=muted>Not checked: run <code>winnow audit RUN --against TEST</code>.</p>"
    if leaks.empty:
        return "<p class=muted>No test item has a copy in the training data.</p>"
    items = leaks.sort_values(["test_path", "similarity"], ascending=[True, False], kind="stable")
    items = items.groupby("test_path", sort=False)
    rows = []
    for test_path, copies in itertools.islice(items, MAX_LEAK_ITEMS):
        test = test_thumbs.figure(test_path) if test_thumbs else html.escape(test_path)
        figures = "".join(thumbs.figure(p) for p in copies["train_path"].head(MAX_LEAK_COPIES))
        if len(copies) > MAX_LEAK_COPIES:
            figures += f"<figure>+{len(copies) - MAX_LEAK_COPIES} more</figure>"
        kind = "exact" if (copies["kind"] == "exact").any() else "near"
        rows.append(
            f"<tr><td>{test}</td><td><div class=strip>{figures}</div></td>"
            f"<td>{kind}</td><td>{copies['similarity'].max():.3f}</td></tr>"
        )
    count, pairs = items.ngroups, len(leaks)
    more = count - MAX_LEAK_ITEMS
    return (
        f"<p class=muted>{count} test item{'s' if count != 1 else ''} "
        f"{'have' if count != 1 else 'has'} a copy in the training data ({pairs:,} "
        f"pair{'s' if pairs != 1 else ''}, all in <code>audit/leaks.csv</code>).</p>"
        "<table><tr><th>test item</th><th>training copies</th><th>kind</th>"
        "<th>similarity</th></tr>"
        + "".join(rows)
        + "</table>"
        + _more(more, "see leaks.csv", "test item" + ("s" if more != 1 else ""))
    )


def _odd(frame: pd.DataFrame, thumbs: _Thumbs) -> str:
    if "is_odd_size_issue" not in frame:
        return ""
    odd = frame[frame["is_odd_size_issue"] == True].sort_values("odd_size_score")  # noqa: E712
    if odd.empty:
        return "<p class=muted>None.</p>"
    figures = "".join(
        thumbs.figure(r.path, f"{r.width}×{r.height}") for r in odd.head(MAX_STRIP).itertuples()
    )
    more = _more(len(odd) - MAX_STRIP, _marked("is_odd_size_issue"))
    return f"<div class=strip>{figures}</div>{more}"


def _marked(column: str) -> str:
    return f"every one has <code>{column}</code> set in the manifest"


_RANKED_BY_SCORE = "the manifest's <code>out_of_domain_score</code> ranks them all"


def _more(left_out: int, where: str, what: str = "") -> str:
    """A section's note of the `what` (pictures, groups, items) it does not show, and where
    to find them all."""
    if left_out <= 0:
        return ""
    return f"<p class=muted>… and {left_out} more{' ' + what if what else ''} ({where}).</p>"


def _blank(frame: pd.DataFrame, thumbs: _Thumbs) -> str:
    if "is_blank_issue" not in frame:
        return "<p class=muted>The blank check did not run.</p>"
    blank = frame[frame["is_blank_issue"] == True]  # noqa: E712
    if blank.empty:
        return "<p class=muted>None.</p>"
    per_class = blank["label"].astype(str).value_counts()
    counts = ", ".join(f"{html.escape(k)} {v}" for k, v in per_class.items())
    shown = blank.sort_values(["blank_ink", "path"]).head(MAX_STRIP)
    transparent = blank.get("has_alpha", pd.Series(False, index=blank.index))
    transparent = transparent.fillna(False).astype(bool)
    figures = "".join(
        thumbs.figure(
            r.path,
            f"{r.blank_colour}{' · transparent' if clear else ''} · ink {100 * r.blank_ink:.2f} %",
        )
        for r, clear in zip(shown.itertuples(), transparent[shown.index], strict=True)
    )
    more = _more(len(blank) - len(shown), _marked("is_blank_issue"))
    return (
        f"<p>{len(blank)} {'image is' if len(blank) == 1 else 'images are'} one colour edge to "
        f"edge as the scan sees them (per class: "
        f"{counts}): nothing is drawn on them, or, on the {int(transparent.sum())} with "
        "transparency, drawn only in the colour the scan puts under transparent pixels "
        "(white lines on a transparent page vanish on white). Either way they carry "
        "nothing a model can learn; <code>winnow clean</code> drops them (policy "
        "<code>blank</code>). To keep drawings of the background colour, scan again with "
        "another <code>background</code>.</p>"
        f"<div class=strip>{figures}</div>{more}"
    )


def _weights_text(weights: dict[str, float], other: str, shown: int = 3) -> str:
    """The discriminant's largest weights towards and away from the other style, in words."""
    toward = [f"{n} ({w:+.1f})" for n, w in weights.items() if w > 0][:shown]
    against = [f"{n} ({w:+.1f})" for n, w in weights.items() if w < 0][:shown]
    parts = []
    if toward:
        parts.append(f"Weighed most towards {other}s: {', '.join(toward)}.")
    if against:
        parts.append(f"Weighed most against: {', '.join(against)}.")
    if parts:
        parts.append("(A weight is what a statistic adds given the others.)")
    return " ".join(parts)


def _evidence_tag(evidence: object) -> str:
    """The evidence family of a flagged image; an unflagged one (a borderline image under the
    threshold) has none (NaN, which is truthy, so `or` would print "nan")."""
    return str(evidence) if isinstance(evidence, str) and evidence else "near threshold"


def _out_of_domain(frame: pd.DataFrame, summary: dict[str, Any], thumbs: _Thumbs) -> str:
    numbers = summary["checks"].get("out_of_domain")
    if "photo_likeness" not in frame or numbers is None or numbers.get("status") != "ok":
        return "<p class=muted>The out_of_domain check did not run.</p>"
    if "dominant_style" not in numbers:
        return f"<p class=muted>Skipped: {html.escape(str(numbers.get('skipped', '')))}</p>"
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    other = numbers["out_of_domain_style"]
    direction = 1.0 if other == "photo" else -1.0  # photographs score high, drawings low
    scored = frame[frame["photo_likeness"].notna()]
    flagged = scored["is_out_of_domain_issue"].astype(bool)
    likeness = scored["photo_likeness"].astype(float)
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    bins = np.linspace(likeness.min(), likeness.max(), 60)
    cleared = (
        scored["out_of_domain_cleared"].astype(bool)
        if "out_of_domain_cleared" in scored
        else pd.Series(False, index=scored.index)
    )
    kept = ~flagged & ~cleared
    ax.hist(likeness[kept], bins=bins, color="#4a72b0", label=f"in domain ({int(kept.sum())})")
    ax.hist(likeness[flagged], bins=bins, color="#d2502a", label=f"flagged ({int(flagged.sum())})")
    if cleared.any():
        ax.hist(
            likeness[cleared],
            bins=bins,
            color="#e8b04a",
            label=f"copies of in-domain pictures ({int(cleared.sum())})",
        )
    if numbers.get("photo_likeness_threshold") is not None:
        ax.axvline(
            numbers["photo_likeness_threshold"],
            color="#222",
            linestyle="--",
            label="automatic threshold",
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
    families = (
        "colour, texture and learned"
        if numbers.get("learned_representation")
        else "colour and texture"
    )
    how = (
        f"a discriminant on the {families} statistics, robust z"
        if numbers.get("discriminant_step")
        else f"median robust z of {families} statistics"
    )
    ax.set_xlabel(f"photo-likeness ({how})")
    ax.set_ylabel("images")
    # away from the flagged tail: photographs on the right, drawings on the left
    ax.legend(fontsize=8, loc="upper left" if direction > 0 else "upper right")
    chart = png_base64(fig)
    prob = 1.0 - scored["out_of_domain_score"].astype(float)

    def strip(rows: pd.DataFrame) -> str:
        if rows.empty:
            return "<p class=muted>None.</p>"
        figures = "".join(
            thumbs.figure(r.path, f"p={p:.2f} · {_evidence_tag(r.out_of_domain_evidence)}")
            for r, p in zip(rows.itertuples(), prob[rows.index], strict=True)
        )
        return f"<div class=strip>{figures}</div>"

    def strip_cleared(rows: pd.DataFrame) -> str:
        """Each cleared copy beside the in-domain picture of its group that cleared it."""
        in_domain = scored[~flagged & ~cleared & scored["duplicate_group"].notna()]
        original = in_domain.groupby("duplicate_group")["path"].first()
        figures = []
        for r in rows.head(12).itertuples():
            figures.append(thumbs.figure(r.path, "cleared: looks out of domain alone"))
            if r.duplicate_group in original.index:
                figures.append(
                    thumbs.figure(original[r.duplicate_group], "same picture, in domain", True)
                )
        return f"<div class=strip>{''.join(figures)}</div>"

    # the unflagged images nearest the other style, so a miss (or a folder that mixes both
    # styles in similar shares, where no minority stands out) can be seen, not only inferred
    nearest = likeness[kept].mul(direction).sort_values(ascending=False).head(12)
    near_strip = (
        "<div class=strip>"
        + "".join(
            thumbs.figure(scored.at[i, "path"], f"likeness {likeness[i]:+.2f}")
            for i in nearest.index
        )
        + "</div>"
        if len(nearest)
        else "<p class=muted>None.</p>"
    )
    nothing_flagged = (
        f"<p class=muted>Nothing was flagged. If these look like {other}s too, the folder may "
        f"hold both styles in similar shares: the check looks for a minority of the other "
        "style and flags nothing when no such minority stands out (a decisions file for "
        "<code>winnow clean</code> can drop them).</p>"
        if not flagged.any()
        else ""
    )
    sure_all = scored[flagged & ~scored["out_of_domain_borderline"].astype(bool)]
    sure = sure_all.loc[prob[sure_all.index].sort_values(ascending=False).index].head(48)
    border_all = scored[(prob >= 0.3) & (prob < numbers["sure"])]
    border = border_all.loc[prob[border_all.index].sort_values(ascending=False).index].head(24)
    return (
        f"<p>The dataset's dominant style is <b>{numbers['dominant_style']}</b>; images that look like "
        f"a <b>{numbers['out_of_domain_style']}</b> are flagged. The score mixture estimates "
        f"{100 * numbers['contamination_estimate']:.1f} % of the images out of domain "
        f"({numbers['flagged']} flagged"
        + (
            f", {100 * numbers['flagged_share']:.1f} %"
            if numbers.get("flagged_share") is not None
            else ""
        )
        + f", {numbers['borderline']} borderline, sent to review by <code>winnow clean</code>"
        + (
            f"; {numbers['cleared_as_copies']} cleared as copies of in-domain pictures, below"
            if numbers.get("cleared_as_copies")
            else ""
        )
        + "). "
        "Evidence is pixels only (never the file format or name): <i>colour</i> = many colours with a "
        "spread-out histogram and no dominant flat fills, <i>texture</i> = fine texture and noise away from edges, running every way"
        + (
            ", <i>learned</i> = detail that a denoiser trained on this dataset reads as noise"
            if numbers.get("learned_representation")
            else ""
        )
        + ". Each image is tagged with the evidence in which it is most unusual for this "
        "dataset (highest percentile). "
        + (
            f"The score is a linear discriminant learned from the {numbers['first_pass_flagged']} "
            "images that the median of the statistics' robust z-scores flagged: it weighs the "
            "statistics that set those apart in this dataset, and discounts the ones that only "
            f"vary with them. {_weights_text(numbers.get('discriminant_weights') or {}, other)}</p>"
            if numbers.get("discriminant_step")
            else "The score is the median of the statistics' robust z-scores.</p>"
        )
        + (
            f"<p>The scores form two well-separated populations (Ashman's D "
            f"{numbers.get('separation') or 0:.1f}), and the one on the {other} side is "
            "flagged: a large share of the other style, which the usual rule (a small "
            "population far out in the tail) would miss because it moves the dataset's median "
            f"and spread. To keep the {html.escape(other)}s and flag the "
            f"{html.escape(numbers['dominant_style'])}s instead, declare "
            f"<code>dominant_style: {html.escape(other)}</code> in the audit config.</p>"
            if numbers.get("threshold_rule") == "two populations"
            else ""
        )
        + f"<div class=plots><img src='data:image/png;base64,{chart}'></div>"
        f"<h3>Most out-of-domain</h3>{strip(sure)}"
        + _more(len(sure_all) - len(sure), _marked("is_out_of_domain_issue"))
        + f"<h3>Borderline</h3>{strip(border)}"
        + _more(len(border_all) - len(border), _RANKED_BY_SCORE)
        + f"<h3>Most {html.escape(other)}-like, not flagged</h3>{nothing_flagged}{near_strip}"
        + (
            "<h3>Cleared: copies of in-domain pictures</h3><p class=muted>Past the threshold on "
            "their own pixels, but each is a near or exact copy (its duplicate group) of a "
            "picture in the dataset's style, and copies share their style: often a drawing "
            "saved as a small JPEG, whose ringing looks like photographic noise. Not flagged; "
            "<code>clean</code> treats them as the duplicates they are.</p>"
            + strip_cleared(scored[cleared])
            if cleared.any()
            else ""
        )
    )


def write_audit_report(
    run_dir: Path,
    frame: pd.DataFrame,
    summary: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    reference_cache: PixelCache | None = None,
    reference_frame: pd.DataFrame | None = None,
) -> Path:
    thumbs = _Thumbs(frame, PixelCache(run_dir))
    test_thumbs = (
        _Thumbs(reference_frame, reference_cache)
        if reference_cache is not None and reference_frame is not None
        else None
    )
    body = [
        f"<h1>winnow audit</h1><div class=muted>{html.escape(str(run_dir))} · "
        f"{html.escape(audit_time(summary))}"
        f"{' · against ' + html.escape(summary['against']) if summary['against'] else ''}</div>",
        _cards(summary),
        "<h2>Classes and sizes</h2>",
        _charts(frame),
        "<h2>Checks</h2>",
        _check_table(summary),
        "<h2>Files that can't be used</h2>",
        bad_files_section(frame),
        "<h2>Label conflicts</h2><p class=muted>The same picture under different labels. "
        "Sent to review by <code>winnow clean</code>.</p>",
        _groups(frame, thumbs, True),
        "<h2>Duplicate groups</h2><p class=muted>Exact and near copies; the green copy is "
        "kept by default (lossless first, then most pixels). Two pictures you expected here, "
        "or two that are not copies: <code>winnow compare RUN A B</code> shows which test "
        "decided.</p>",
        _groups(frame, thumbs, False),
        "<h2>Test items leaked into training</h2>",
        _leaks(tables, thumbs, test_thumbs),
        "<h2>Out of domain</h2>",
        _out_of_domain(frame, summary, thumbs),
        "<h2>Odd sizes</h2>",
        _odd(frame, thumbs),
        "<h2>Blank images</h2>",
        _blank(frame, thumbs),
    ]
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>winnow audit</title>"
        f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>"
    )
    path = Path(run_dir) / "audit" / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
