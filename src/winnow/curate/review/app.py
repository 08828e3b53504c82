"""The FastAPI app behind `winnow review RUN`, built by `create_review_app` (nothing loads
at import).

    GET  /                  the review page (keyboard first; see its help line)
    GET  /api/state         tabs with decided / undecided counts, classes, what clean will do
    GET  /api/items         one page of a tab's items (tab, label filter, offset, limit)
    POST /api/decide        {"tab", "ids", "action": keep|drop|relabel|suggested|clear, "label"}
    POST /api/undo          restores the state before the latest decision
    GET  /image/{id}/thumb  the pixel cache's copy of manifest row `id` (PNG)
    GET  /image/{id}/full   the original file, from the scanned DATA folder

Items are named by their manifest row number, never by a path from the client: an image
URL whose id is not a readable row of this run (a path, `..`, anything encoded) is a 404,
and a row's file is served only when it resolves inside DATA. Nothing under DATA is
written, moved or deleted; decisions go to RUN/review/decisions.csv (`DecisionStore`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from winnow.curate.clean import CleanPolicy, decide
from winnow.curate.review.decisions import DecisionStore, decisions_path
from winnow.curate.review.findings import Tab, build_tabs
from winnow.data.labels import check_label
from winnow.errors import WinnowError

MAX_BODY = 1 << 20  # a decision request is a list of ids: 1 MB is thousands of them
MAX_PAGE = 500
FULL_MAX_BYTES = 40 << 20  # larger originals are shown as the cache's copy
FULL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class ReviewError(WinnowError, RuntimeError):
    """The run can't be reviewed; the message says which stage to run first."""


@dataclass
class ReviewData:
    run_dir: Path
    data_dir: Path | None
    frame: pd.DataFrame
    tabs: dict[str, Tab]
    classes: list[str]
    policy: CleanPolicy
    store: DecisionStore

    @classmethod
    def load(cls, run_dir: Path) -> ReviewData:
        from winnow.audit.checks import available_checks
        from winnow.data.manifest import manifest_path, missing_manifest, read_manifest

        run_dir = Path(run_dir)
        if not manifest_path(run_dir).exists():
            raise ReviewError(missing_manifest(run_dir))
        if not (run_dir / "audit" / "summary.json").exists():
            raise ReviewError(
                f"{run_dir} has not been audited. Run 'winnow audit {run_dir}' first."
            )
        frame = read_manifest(run_dir).reset_index(drop=True)
        policy = CleanPolicy()
        try:
            earlier = json.loads((run_dir / "clean_summary.json").read_text())
            policy = CleanPolicy(**earlier["policy"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # never cleaned (or an older policy): the default policy
        data_dir = None
        try:
            data_dir = Path(json.loads((run_dir / "scan_summary.json").read_text())["data_dir"])
        except (OSError, ValueError, KeyError):
            pass
        tabs = build_tabs(frame, list(available_checks()), policy)
        classes = sorted(str(c) for c in frame["label"].dropna().unique())
        store = DecisionStore(run_dir, set(frame["path"]))
        return cls(run_dir, data_dir, frame, {t.name: t for t in tabs}, classes, policy, store)

    def item(self, tab: Tab, row: int) -> dict[str, Any]:
        path = str(self.frame.at[row, "path"])
        decision = self.store.decisions.get(path)
        return {
            "id": row,
            "path": path,
            "label": str(self.frame.at[row, "label"]),
            "note": tab.notes.get(row, ""),
            "group": tab.groups.get(row),
            "keeper": row in tab.keepers,
            "suggestion": tab.suggestions.get(row),
            "decision": None
            if decision is None
            else {"keep": decision.keep, "label": decision.label},
        }

    def state(self) -> dict[str, Any]:
        decided = set(self.store.decisions)
        tabs = []
        for tab in self.tabs.values():
            done = sum(1 for row in tab.rows if self.frame.at[row, "path"] in decided)
            tabs.append(
                {"name": tab.name, "title": tab.title, "total": len(tab.rows), "decided": done}
            )
        return {
            "run": str(self.run_dir),
            "decisions_file": str(decisions_path(self.run_dir)),
            "classes": self.classes,
            "tabs": tabs,
            "clean": self.clean_preview(),
        }

    def clean_preview(self) -> dict[str, Any]:
        """What `winnow clean RUN` would do now, with the policy and these decisions."""
        columns = decide(self.frame, self.policy, self.store.frame())
        relabelled = int((columns["final_label"] != self.frame["label"])[columns["keep"]].sum())
        reasons = columns.loc[~columns["keep"], "reason"].value_counts()
        return {
            "kept": int(columns["keep"].sum()),
            "dropped": int((~columns["keep"]).sum()),
            "relabelled": relabelled,
            "dropped_by_reason": {str(k): int(v) for k, v in reasons.items()},
        }


def create_review_app(run_dir: Path, data: ReviewData | None = None):
    """The FastAPI app over RUN (loaded now, or `data` as given)."""
    from winnow import __version__

    review = data or ReviewData.load(run_dir)
    app = FastAPI(title="winnow review", version=__version__, docs_url=None, redoc_url=None)

    def tab_of(name: str) -> Tab:
        if name not in review.tabs:
            raise HTTPException(404, f"no tab {name!r}; tabs: {', '.join(review.tabs)}")
        return review.tabs[name]

    def row_of(token: str) -> int:
        """The manifest row an image URL names; anything else is a 404."""
        if not token.isdecimal() or len(token) > 12:
            raise HTTPException(404, "no such image")
        row = int(token)
        if row >= len(review.frame) or review.frame.at[row, "status"] != "ok":
            raise HTTPException(404, "no such image")
        return row

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(render_review(review.state()))

    @app.get("/api/state")
    def state() -> dict:
        return review.state()

    @app.get("/api/items")
    def items(tab: str, label: str | None = None, offset: int = 0, limit: int = 100) -> dict:
        chosen = tab_of(tab)
        rows = chosen.rows
        if label:
            rows = [r for r in rows if review.frame.at[r, "label"] == label]
        offset = max(0, offset)
        limit = min(max(1, limit), MAX_PAGE)
        return {
            "tab": chosen.name,
            "total": len(rows),
            "offset": offset,
            "items": [review.item(chosen, r) for r in rows[offset : offset + limit]],
        }

    @app.post("/api/decide")
    async def decide_items(request: Request) -> dict:
        body = await _json_body(request)
        chosen = tab_of(str(body.get("tab", "")))
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise HTTPException(422, "'ids' must be a non-empty list of item ids")
        members = set(chosen.rows)
        if any(i not in members for i in ids):
            raise HTTPException(422, f"some ids are not items of the tab {chosen.name!r}")
        action = body.get("action")
        if body.get("whole_group") is True:  # every member of the items' duplicate groups
            groups = {chosen.groups[i] for i in ids if i in chosen.groups}
            ids = ids + [r for r in chosen.rows if chosen.groups.get(r) in groups and r not in ids]
        paths = [str(review.frame.at[i, "path"]) for i in ids]
        if action == "suggested":
            suggested = [chosen.suggestions.get(i) or {"keep": True, "label": None} for i in ids]
            changes = [(p, s["keep"], s["label"]) for p, s in zip(paths, suggested, strict=True)]
            review.store.apply(changes, chosen.name)
        elif action in ("keep", "drop", "clear"):
            keep = {"keep": True, "drop": False, "clear": None}[action]
            review.store.set(paths, keep, None, chosen.name)
        elif action == "relabel":
            label = body.get("label")
            if label not in review.classes:
                raise HTTPException(422, f"'label' must be one of the classes: {review.classes}")
            check_label(label, "the review page")
            review.store.set(paths, True, label, chosen.name)
        else:
            raise HTTPException(422, "'action' must be keep, drop, relabel, suggested or clear")
        return {"items": [review.item(chosen, i) for i in ids], "state": review.state()}

    @app.post("/api/undo")
    def undo() -> dict:
        touched = review.store.undo()
        return {"paths": touched, "state": review.state()}

    @app.get("/image/{token}/thumb")
    def thumb(token: str) -> Response:
        row = row_of(token)
        return Response(_thumbnail(review, row), media_type="image/png")

    @app.get("/image/{token}/full")
    def full(token: str):
        row = row_of(token)
        source = _source_file(review, row)
        if source is None:  # gone, outside DATA, too large or a format browsers don't show
            return Response(_thumbnail(review, row), media_type="image/png")
        return FileResponse(source, media_type=FULL_FORMATS[str(review.frame.at[row, "format"])])

    return app


async def _json_body(request: Request) -> dict:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise HTTPException(413, f"request body over {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body over {MAX_BODY} bytes")
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise HTTPException(422, "the body must be a JSON object")
    return parsed


def _thumbnail(review: ReviewData, row: int) -> bytes:
    from PIL import Image

    from winnow.data.cache import PixelCache

    cache = _cache_of(str(review.run_dir))
    if not isinstance(cache, PixelCache) or pd.isna(review.frame.at[row, "cache_shard"]):
        image = Image.new("RGB", (8, 8), "white")
    else:
        shard = np.array([int(review.frame.at[row, "cache_shard"])])
        index = np.array([int(review.frame.at[row, "cache_index"])])
        image = Image.fromarray(cache.take(shard, index)[0])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@cache
def _cache_of(run_dir: str):
    from winnow.data.cache import PixelCache

    try:
        return PixelCache(Path(run_dir))
    except (OSError, ValueError, WinnowError):
        return None


def _source_file(review: ReviewData, row: int) -> Path | None:
    """Row `row`'s original file when it lies inside DATA and a browser can show it."""
    if review.data_dir is None:
        return None
    root = review.data_dir.resolve()
    try:
        source = (root / str(review.frame.at[row, "path"])).resolve(strict=True)
        source.relative_to(root)
    except (OSError, ValueError):
        return None
    fmt = str(review.frame.at[row, "format"])
    if fmt not in FULL_FORMATS or not source.is_file() or source.stat().st_size > FULL_MAX_BYTES:
        return None
    return source


def render_review(state: dict[str, Any]) -> str:
    from winnow.pages import CSS, templates

    return (
        templates("winnow.curate.review").get_template("review.html").render(css=CSS, state=state)
    )


def serve_review(run_dir: Path, host: str = "127.0.0.1", port: int = 8765, on_ready=None) -> None:
    """Run the review server in this process until interrupted (uvicorn)."""
    import uvicorn

    review = ReviewData.load(run_dir)  # before binding: a run that can't be reviewed fails fast
    if on_ready is not None:
        on_ready(review)
    uvicorn.run(create_review_app(run_dir, review), host=host, port=port, log_level="warning")
