"""`winnow review`: the tabs and suggestions, decisions saved at once and kept across a
restart, undo, the paths it refuses, `clean` applying the decisions, and a keyboard-only
review in a real browser."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from factory import fingerprint, solid
from servers import ServerThread, free_port, start_server
from winnow.curate.clean import run_clean
from winnow.curate.review.app import ReviewError, create_review_app
from winnow.curate.review.decisions import decisions_path


@pytest.fixture
def review_run(demo_run, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the audited demo run: (data folder, run folder)."""
    data, run = demo_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return data, copy


# the grid is drawn from the newest answer (a tab switch reloads it asynchronously)
LOADED = "#grid[aria-busy=false] .item.focus"


def _client(run: Path) -> TestClient:
    return TestClient(create_review_app(run))


def _decisions(run: Path) -> pd.DataFrame:
    return pd.read_csv(decisions_path(run), dtype=str, keep_default_na=False)


def test_tabs_hold_every_finding_with_a_suggestion(review_run) -> None:
    _, run = review_run
    frame = pd.read_parquet(run / "manifest.parquet")
    state = _client(run).get("/api/state").json()
    tabs = {t["name"]: t for t in state["tabs"]}
    assert tabs["duplicates"]["total"] == int(frame["duplicate_group"].notna().sum())
    for name in ("label_conflict", "leak", "blank", "out_of_domain"):
        assert tabs[name]["total"] == int(frame[f"is_{name}_issue"].sum()), name
    assert all(t["decided"] == 0 for t in state["tabs"])
    # what clean would do with no decision is what clean does
    assert state["clean"]["dropped"] == int((~frame["keep"]).sum())
    items = _client(run).get("/api/items", params={"tab": "duplicates"}).json()["items"]
    first_group = [i for i in items if i["group"] == items[0]["group"]]
    assert items[0]["keeper"] and items[0]["suggestion"] == {"keep": True, "label": None}
    assert all(i["suggestion"]["keep"] is False for i in first_group[1:])


def test_decisions_are_saved_at_once_survive_a_restart_and_undo(review_run) -> None:
    _, run = review_run
    client = _client(run)
    items = client.get("/api/items", params={"tab": "duplicates"}).json()["items"]
    group = [i["id"] for i in items if i["group"] == items[0]["group"]]
    answer = client.post(
        "/api/decide",
        json={"tab": "duplicates", "ids": [group[0]], "action": "suggested", "whole_group": True},
    )
    assert answer.status_code == 200
    saved = _decisions(run)
    assert len(saved) == len(group)  # the whole group, written before the answer came
    assert list(saved.columns[:3]) == ["path", "keep", "label"]
    blank = client.get("/api/items", params={"tab": "blank"}).json()["items"][0]
    client.post("/api/decide", json={"tab": "blank", "ids": [blank["id"]], "action": "keep"})
    # a new server over the same run (the first one killed) sees every decision
    state = _client(run).get("/api/state").json()
    decided = {t["name"]: t["decided"] for t in state["tabs"]}
    assert decided["duplicates"] == len(group) and decided["blank"] == 1
    # undo takes back the latest change, then the one before it
    assert client.post("/api/undo").json()["paths"] == [blank["path"]]
    assert len(_decisions(run)) == len(group)
    assert len(client.post("/api/undo").json()["paths"]) == len(group)
    assert len(_decisions(run)) == 0
    assert client.post("/api/undo").json()["paths"] == []


def test_relabel_and_clean_applies_the_review(review_run) -> None:
    _, run = review_run
    client = _client(run)
    conflict = client.get("/api/items", params={"tab": "label_conflict"}).json()["items"][0]
    other = next(c for c in client.get("/api/state").json()["classes"] if c != conflict["label"])
    answer = client.post(
        "/api/decide",
        json={
            "tab": "label_conflict",
            "ids": [conflict["id"]],
            "action": "relabel",
            "label": other,
        },
    )
    assert answer.json()["state"]["clean"]["relabelled"] == 1
    blank = client.get("/api/items", params={"tab": "blank"}).json()["items"][0]
    client.post("/api/decide", json={"tab": "blank", "ids": [blank["id"]], "action": "keep"})
    summary = run_clean(run)  # no --decisions: RUN/review/decisions.csv is applied
    assert summary["decisions"] == str(decisions_path(run))
    frame = pd.read_parquet(run / "manifest.parquet").set_index("path")
    assert frame.at[conflict["path"], "reason"] == "review"
    assert frame.at[conflict["path"], "final_label"] == other
    assert bool(frame.at[conflict["path"], "keep"])
    assert frame.at[blank["path"], "reason"] == "review" and bool(frame.at[blank["path"], "keep"])


@pytest.mark.parametrize(
    "url",
    [
        "/image/..%2F..%2Fetc%2Fpasswd/full",
        "/image/%2Fetc%2Fpasswd/thumb",
        "/image/../../etc/passwd",
        "/image/-1/thumb",
        "/image/99999/full",
        "/image/1e2/thumb",
        "/image/%31/full%00",
        "/etc/passwd",
        "/data/star/star_000.png",
    ],
)
def test_any_other_path_is_a_404(review_run, url: str) -> None:
    _, run = review_run
    assert _client(run).get(url).status_code == 404


def test_images_come_from_the_cache_and_the_data_folder_only(review_run, tmp_path) -> None:
    data, run = review_run
    client = _client(run)
    frame = pd.read_parquet(run / "manifest.parquet")
    row = int(frame.index[frame["status"] == "ok"][0])
    thumb = client.get(f"/image/{row}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    full = client.get(f"/image/{row}/full")
    original = (data / "training" / frame.at[row, "path"]).read_bytes()
    assert full.content == original
    bad = int(frame.index[frame["status"] != "ok"][0])  # a broken file has no image
    assert client.get(f"/image/{bad}/full").status_code == 404


def test_bad_requests_are_4xx_and_nothing_under_data_changes(review_run) -> None:
    data, run = review_run
    before = fingerprint(data)
    client = _client(run)
    blank = client.get("/api/items", params={"tab": "blank"}).json()["items"][0]["id"]
    bodies = [
        {"tab": "nope", "ids": [blank], "action": "keep"},
        {"tab": "blank", "ids": [], "action": "keep"},
        {"tab": "blank", "ids": ["../x"], "action": "keep"},
        {"tab": "blank", "ids": [10**9], "action": "keep"},
        {"tab": "blank", "ids": [blank], "action": "delete"},
        {"tab": "blank", "ids": [blank], "action": "relabel", "label": "../../etc"},
        [1, 2],
    ]
    for body in bodies:
        assert client.post("/api/decide", json=body).status_code in (404, 422), body
    assert client.post("/api/decide", content=b"{not json").status_code == 400
    huge = b'{"ids": [' + b"1," * 600_000 + b"1]}"
    assert client.post("/api/decide", content=huge).status_code == 413
    assert client.get("/api/items", params={"tab": "../../etc"}).status_code == 404
    assert not decisions_path(run).exists()
    assert fingerprint(data) == before


def test_an_unaudited_run_is_a_message(tmp_path) -> None:
    with pytest.raises(ReviewError, match="winnow scan"):
        create_review_app(tmp_path / "nothing")


def test_cli_binds_to_loopback_and_prints_the_url(review_run) -> None:
    _, run = review_run
    port = free_port()
    winnow = str(Path(sys.executable).parent / "winnow")
    process, url = start_server([winnow, "review", str(run), "--port", str(port)], ready_path="")
    try:
        assert url == f"http://127.0.0.1:{port}/"
        assert "winnow review" in httpx.get(url).text
    finally:
        process.kill()  # killed, not stopped: decisions never wait for a clean shutdown
        process.wait(10)


def test_keyboard_only_review_in_a_real_browser(browser_page, review_run, tmp_path) -> None:
    page = browser_page
    _, run = review_run
    # a file name that is markup must show as text
    frame = pd.read_parquet(run / "manifest.parquet")
    classes = sorted(frame["label"].dropna().unique())
    with ServerThread(create_review_app(run)) as url:
        page.goto(url)
        page.wait_for_selector(LOADED)
        assert "winnow review" in page.title()
        first = page.locator(".item.focus").get_attribute("data-id")
        page.keyboard.press("g")  # accept the first duplicate group's suggestion
        page.wait_for_function("document.getElementById('status').textContent.includes('saved')")
        saved = _decisions(run)
        group = frame.loc[int(first), "duplicate_group"]
        members = frame.index[frame["duplicate_group"] == group]
        assert set(saved["path"]) == set(frame.loc[members, "path"])
        keeper = frame.loc[members][frame.loc[members, "duplicate_keep"].astype(bool)]
        kept = saved.set_index("path")["keep"]
        assert kept[keeper["path"].iloc[0]] == "true"
        assert (kept.drop(keeper["path"].iloc[0]) == "false").all()

        # next tab, drop the first item, relabel the next with a number key, undo it
        page.keyboard.press("]")
        page.wait_for_selector(LOADED)
        tab = page.locator("#tabs button[aria-selected=true]").get_attribute("data-tab")
        target = int(page.locator(".item.focus").get_attribute("data-id"))
        page.keyboard.press("x")
        page.wait_for_function(
            f"document.querySelector('.item[data-id=\"{target}\"]').classList.contains('drop')"
        )
        page.keyboard.press("ArrowLeft")  # back to it (the focus moved on)
        page.keyboard.press("2")
        page.wait_for_function(
            f"document.querySelector('.item[data-id=\"{target}\"] .badge').textContent"
            f".includes('{classes[1]}')"
        )
        row = _decisions(run).set_index("path").loc[frame.at[target, "path"]]
        assert row["label"] == classes[1] and row["keep"] == "true" and row["check"] == tab
        page.keyboard.press("u")
        page.wait_for_function("document.getElementById('status').textContent.includes('undone')")
        row = _decisions(run).set_index("path").loc[frame.at[target, "path"]]
        assert row["keep"] == "false" and row["label"] == ""  # back to the drop

        # Enter enlarges to the full image, Escape closes
        page.keyboard.press("Enter")
        page.wait_for_selector("#overlay.open")
        page.wait_for_function(
            "(() => { const img = document.getElementById('full');"
            " return img.complete && img.naturalWidth > 0; })()"
        )
        page.keyboard.press("Escape")
        page.wait_for_selector("#overlay", state="hidden")
        # shift + arrows select a range; k keeps all of it
        page.keyboard.press("[")
        page.wait_for_selector(LOADED)
        page.keyboard.press("Shift+ArrowRight")
        assert page.locator(".item.selected").count() == 2
        page.screenshot(path=str(tmp_path / "review.png"))
    # the page's decisions are what clean applies
    summary = run_clean(run)
    assert summary["reasons"].get("review", 0) >= len(members)


def test_file_names_are_text_in_the_page(browser_page, tmp_path) -> None:
    from winnow.audit.runner import run_audit
    from winnow.data.scan import scan

    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
    name = '<img src=x onerror="document.title=1">.png'
    solid((10, 200, 10)).save(data / "a" / name)
    solid((10, 200, 10)).save(data / "a" / "plain.png")  # its exact copy: a duplicate group
    Image.new("RGB", (64, 64), "white").save(data / "b" / "white.png")
    scan(data, tmp_path / "run")
    run_audit(tmp_path / "run")
    page = browser_page
    with ServerThread(create_review_app(tmp_path / "run")) as url:
        page.goto(url)
        page.wait_for_selector(".item")
        assert page.get_by_text(name).count() >= 1
        assert page.locator("img[src=x]").count() == 0
        assert page.title() != "1"


def test_ten_thousand_flags_are_paged_and_stay_responsive(browser_page, review_run) -> None:
    """10,000 flagged files: the page holds one page of cards, pages on with `n`, and a
    decision on the last page is saved."""
    from winnow.curate.clean import CleanPolicy
    from winnow.curate.review.app import ReviewData
    from winnow.curate.review.decisions import DecisionStore
    from winnow.curate.review.findings import build_tabs

    _, run = review_run
    source = pd.read_parquet(run / "manifest.parquet")
    source = source[source["status"] == "ok"].reset_index(drop=True)
    frame = source.iloc[np.arange(10_000) % len(source)].reset_index(drop=True)
    frame["path"] = [f"{label}/copy_{i:05d}.png" for i, label in enumerate(frame["label"])]
    frame["duplicate_group"] = None
    for column in [c for c in frame if c.startswith("is_") and c.endswith("_issue")]:
        frame[column] = False
    frame["is_label_issue_issue"] = True
    frame["label_issue_score"] = np.linspace(0, 1, len(frame))
    policy = CleanPolicy()
    tabs = build_tabs(frame, ["label_issue"], policy)
    classes = sorted(frame["label"].unique())
    store = DecisionStore(run, set(frame["path"]))
    data = ReviewData(run, None, frame, {t.name: t for t in tabs}, classes, policy, store)
    page = browser_page
    with ServerThread(create_review_app(run, data)) as url:
        page.goto(url)
        page.wait_for_selector(LOADED)
        assert "10000 undecided / 10000" in page.locator("#tabs").inner_text()
        assert page.locator(".item").count() == 120
        assert "1–120 of 10000" in page.locator("body").inner_text()
        for _ in range(83):  # to the last page
            page.keyboard.press("n")
        page.wait_for_function("document.body.innerText.includes('9961–10000 of 10000')")
        assert page.locator(".item").count() == 40
        target = int(page.locator(".item.focus").get_attribute("data-id"))
        page.keyboard.press("x")
        page.wait_for_function("document.getElementById('status').textContent.includes('saved')")
        assert "9999 undecided / 10000" in page.locator("#tabs").inner_text()
    saved = _decisions(run).set_index("path")
    assert saved.at[frame.at[target, "path"], "keep"] == "false"
