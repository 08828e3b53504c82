"""The demo page at `GET /`: a jinja2 template (autoescaped) filled from `GET /model`."""

from __future__ import annotations

from typing import Any


def render_demo(description: dict[str, Any]) -> str:
    from winnow.pages import CSS, templates

    return templates("winnow.serve").get_template("demo.html").render(css=CSS, **description)
