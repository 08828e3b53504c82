"""What the checks' report sections share: thumbnails, "… and N more" notes, duplicate
groups as strips. A section's markup lives in its jinja2 partial (winnow/audit/templates/);
these helpers only prepare data for it.

A thumbnail source (`Thumbs`, or a stand-in with the same `figure` method) returns a
figure's HTML, made by the `_figure.html` partial with the path and caption escaped: the
partials insert it as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from winnow.data.cache import PixelCache
from winnow.pages import templates, thumbnail_uri

MAX_GROUPS = 40
MAX_MEMBERS = 8
MAX_STRIP = 24  # pictures in a strip of odd sizes or blank images


def count(number: int, word: str, plural: str | None = None) -> str:
    """`1 group`, `3 groups`, `1 copy`, `2 copies` (pass the plural when it is not word+s)."""
    return f"{number:,} {word if number == 1 else plural or word + 's'}"


def render(template: str, **data: Any) -> Markup:
    """A partial of winnow.audit's templates rendered with `data` (autoescaped)."""
    return Markup(templates("winnow.audit").get_template(template).render(**data))


class Thumbs:
    """Thumbnails of a run's files from its pixel cache, by manifest path; with the data
    folder known, a click on one opens the original file."""

    def __init__(
        self, frame: pd.DataFrame, cache: PixelCache, data_dir: Path | None = None
    ) -> None:
        ok = frame[frame["cache_shard"].notna()]
        self.where = dict(
            zip(ok["path"], zip(ok["cache_shard"], ok["cache_index"], strict=True), strict=True)
        )
        self.cache = cache
        self.data_dir = Path(data_dir).resolve() if data_dir else None

    def figure(self, path: str, caption: str = "", keep: bool = False) -> Markup:
        src = href = None
        if path in self.where:
            shard, index = self.where[path]
            src = thumbnail_uri(np.asarray(self.cache.get(shard, index)))
            if self.data_dir is not None:
                href = (self.data_dir / path).as_uri()
        return render("_figure.html", path=path, src=src, href=href, caption=caption, keep=keep)


def figures(thumbs: Any, items: list[tuple[str, str] | tuple[str, str, bool]]) -> list[Markup]:
    """Figures of (path, caption[, keep]) items from `thumbs`, as markup for a strip."""
    return [Markup(thumbs.figure(*item)) for item in items]


def unavailable(check: Any, inputs: Any) -> dict[str, Any] | None:
    """What a check's section shows instead of findings: `{"missing": True}` when the check
    did not run (or failed) in this audit, `{"skipped": why}` when it ran and declined (too
    few images); None when it has findings to show."""
    numbers = inputs.summary["checks"].get(check.name)
    if check.issue_column not in inputs.frame or numbers is None or numbers.get("status") != "ok":
        return {"missing": True}
    if "skipped" in numbers:
        return {"skipped": str(numbers["skipped"])}
    return None


def more(left_out: int, where: dict[str, str], what: str = "") -> dict[str, Any] | None:
    """The note a section adds under what it shows: how many `what` (pictures, groups,
    items) it leaves out, and where to find them all (`where`: `marked`, `ranked`, `see`
    or ALL_GROUPS; the `more` macro of `_macros.html` words it)."""
    if left_out <= 0:
        return None
    return {"count": left_out, "where": where, "what": what}


def marked(column: str) -> dict[str, str]:
    """Every one of them has the manifest column `column` set."""
    return {"marked": column}


def ranked(column: str) -> dict[str, str]:
    """The manifest column `column` ranks them all."""
    return {"ranked": column}


def see(place: str) -> dict[str, str]:
    """They are all in `place` (a file name)."""
    return {"see": place}


def duplicate_groups(frame: pd.DataFrame, thumbs: Any, conflicts_only: bool) -> dict[str, Any]:
    """The groups of copies (or, with `conflicts_only`, those holding several labels),
    largest first; groups of blank pages are counted and left to the blank section."""
    if "duplicate_group" not in frame:
        return {"conflicts": conflicts_only, "missing": "near_duplicate"}
    grouped = frame[frame["duplicate_group"].notna()]
    if conflicts_only:
        if "is_label_conflict_issue" not in grouped:
            return {"conflicts": True, "missing": "label_conflict"}
        grouped = grouped[grouped["is_label_conflict_issue"].fillna(False).astype(bool)]
    groups = grouped.groupby("duplicate_group")
    # largest first, then by the first path (paths are unique: no two groups tie)
    sizes = pd.DataFrame({"size": groups.size(), "first": groups["path"].min()})
    sizes = sizes.sort_values(["size", "first"], ascending=[False, True], kind="stable")
    # groups of blank pages are alike because nothing is drawn: shown under Blank images
    if "is_blank_issue" in grouped:
        all_blank = grouped["is_blank_issue"].eq(True).groupby(grouped["duplicate_group"]).all()
        blank = all_blank.reindex(sizes.index, fill_value=False).to_numpy(bool)
    else:
        blank = np.zeros(len(sizes), bool)
    order = sizes.index[~blank]
    rows = groups.indices  # group → row positions in `grouped`
    shown = []
    for group in order[:MAX_GROUPS]:
        members = grouped.iloc[rows[group]].sort_values("duplicate_keep", ascending=False)
        majority = _majority(members["label"].astype(str)) if conflicts_only else None
        items = [
            # in a conflict every copy waits for a person: none is marked as kept
            (
                r.path,
                _member_caption(r, conflicts_only, majority),
                bool(r.duplicate_keep) and not conflicts_only,
            )
            for r in members.head(MAX_MEMBERS).itertuples()
        ]
        shown.append(
            {
                "size": len(members),
                "labels": ", ".join(sorted(set(members["label"].astype(str)))),
                "majority": majority,
                "figures": figures(thumbs, items),
                "more_members": max(0, len(members) - MAX_MEMBERS),
            }
        )
    return {
        "conflicts": conflicts_only,
        "blank_groups": int(blank.sum()),
        "blank_files": int(sizes["size"].to_numpy()[blank].sum()),
        "groups": shown,
        "more_note": more(len(order) - MAX_GROUPS, ALL_GROUPS, "groups"),
    }


ALL_GROUPS = {"all_groups": "duplicate_group"}  # in winnow review and in the manifest


def _majority(labels: pd.Series) -> str | None:
    """The label most members of a group carry (None on a tie: no majority to suggest)."""
    counts = labels.value_counts()
    if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        return None
    return str(counts.index[0])


def _member_caption(row: Any, conflicts_only: bool, majority: str | None) -> str:
    """A group member's caption: the kept copy in a group of copies; its label in a label
    conflict, with the group's majority label where it differs."""
    if not conflicts_only:
        return "keep" if row.duplicate_keep else ""
    label = str(row.label)
    return label if majority is None or label == majority else f"{label} (most say {majority})"
