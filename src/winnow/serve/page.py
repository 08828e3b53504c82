"""The demo page at `GET /`: a jinja2 template (autoescaped) filled from `GET /model`."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("winnow.serve", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )


def render_demo(description: dict[str, Any]) -> str:
    from winnow.pages import CSS

    return _environment().get_template("demo.html").render(css=CSS, **description)
