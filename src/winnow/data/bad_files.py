"""The listing of files a scan could not use, shared by the audit and evaluation pages:
damaged images first, an image folder's other files counted by kind in one line. The
pages render it with the `bad_files` macro of winnow's shared `_bad_files.html` partial."""

from __future__ import annotations

from typing import Any

import pandas as pd

from winnow.data.scan import companion_kinds, companions, kinds_text

MAX_ROWS = 200


def bad_files_listing(frame: pd.DataFrame) -> dict[str, Any]:
    """Damaged images first (and files named like images that are none); an image
    folder's text, sound or vector companions are counted by extension in one line, so
    thousands of them cannot push a truncated image out of the table."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return {"none_bad": True}
    companion = companions(bad)
    unusable, others = bad[~companion], bad[companion]
    rows = [
        {"path": p, "status": s, "error": str(e)}
        for p, s, e in unusable[["path", "status", "error"]].head(MAX_ROWS).itertuples(index=False)
    ]
    return {
        "none_bad": False,
        "rows": rows,
        "more": max(0, len(unusable) - MAX_ROWS),
        "others": len(others),
        "kinds": kinds_text(companion_kinds(others["path"])) if len(others) else "",
    }
