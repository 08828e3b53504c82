"""The README's screenshots, made from `make demo`'s run in headless Debian chromium:
docs/audit.png (the audit report's top and the duplicate groups), docs/evaluate.png (the
evaluation page's scores and per-class table).

Usage: python benchmarks/screenshots.py [DEMO_DIR] [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def pages(demo: Path) -> dict[str, tuple[Path, str | None]]:
    """Screenshot name → (page, the element to scroll to first, or None for the top)."""
    run = demo / "run"
    evaluations = sorted(run.glob("train/*/evaluate/*/report.html"))
    if not (run / "audit" / "report.html").exists() or not evaluations:
        raise SystemExit(f"no demo run under {demo}: run 'make demo' first")
    return {
        "audit.png": (run / "audit" / "report.html", None),
        "evaluate.png": (evaluations[0], None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, nargs="?", default=Path("demo"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        for name, (html, anchor) in pages(args.demo).items():
            page.goto(html.resolve().as_uri())
            if anchor:
                page.locator(anchor).scroll_into_view_if_needed()
            page.screenshot(path=str(args.out / name))
            print(args.out / name)
        browser.close()


if __name__ == "__main__":
    main()
