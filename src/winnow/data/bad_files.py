"""The listing of files a scan could not use, shared by the audit and evaluation pages:
damaged images first, an image folder's other files counted by kind in one line."""

from __future__ import annotations

import html

import pandas as pd

from winnow.data.scan import companion_kinds, companions, kinds_text

MAX_ROWS = 200


def bad_files_section(frame: pd.DataFrame) -> str:
    """Damaged images first (and files named like images that are none); an image
    folder's text, sound or vector companions are counted by extension in one line, so
    thousands of them cannot push a truncated image out of the table."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return "<p class=muted>Every file decoded.</p>"
    companion = companions(bad)
    unusable, others = bad[~companion], bad[companion]
    rows = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{s}</td><td>{html.escape(str(e))}</td></tr>"
        for p, s, e in unusable[["path", "status", "error"]].head(MAX_ROWS).itertuples(index=False)
    )
    more = (
        f"<p class=muted>… and {len(unusable) - MAX_ROWS} more.</p>"
        if len(unusable) > MAX_ROWS
        else ""
    )
    table = (
        f"<table><tr><th>path</th><th>status</th><th>reason</th></tr>{rows}</table>{more}"
        if len(unusable)
        else "<p class=muted>Every image decoded.</p>"
    )
    if len(others):
        kinds = kinds_text(companion_kinds(others["path"]))
        table += (
            f"<p class=muted>{len(others)} other files are not images and not named like "
            f"images ({html.escape(kinds)}): rows with status not_image in the manifest.</p>"
        )
    return table
