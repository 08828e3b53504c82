"""What every HTML page shares: the style sheet, charts as inline PNG, image thumbnails.

Charts are drawn on a `matplotlib.figure.Figure` (no pyplot, so no global backend or figure
list: safe inside a server, and nothing is chosen at import time).
"""

from __future__ import annotations

import base64
import io
from functools import cache

import numpy as np
from PIL import Image

THUMB = 96  # side of a thumbnail in the pages, in pixels

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dde}
.muted{color:#667} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:120px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:22px} .card.warn b{color:#b5470b}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
td,th{padding:5px 8px;border-bottom:1px solid #eef;text-align:left;vertical-align:top}
.strip{display:flex;flex-wrap:wrap;gap:8px;background:#fff;padding:10px;border-radius:8px;margin:8px 0}
figure{margin:0;width:104px;font-size:11px;overflow-wrap:anywhere}
figure img{width:96px;height:96px;border:3px solid #dde;border-radius:4px;background:#fff}
figure.keep img{border-color:#2e9e44} figcaption{color:#445}
.tag{display:inline-block;background:#eef;border-radius:4px;padding:0 5px;margin-right:4px;
word-break:normal;overflow-wrap:normal}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start} .plots img{background:#fff;border-radius:8px;max-width:100%}
"""


@cache
def templates(package: str):
    """The jinja2 environment of `package`'s `templates/` folder, HTML autoescaped; a
    template given as a string (`from_string`: a plug-in check's report partial) is
    autoescaped too."""
    import jinja2

    environment = jinja2.Environment(
        # the package's own templates, then the partials every page shares (winnow/templates)
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader(package, "templates"),
                jinja2.PackageLoader("winnow", "templates"),
            ]
        ),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
    )
    environment.filters["breakable"] = breakable
    return environment


def breakable(path: str):
    """A file path, escaped, that a narrow caption wraps after its `/` and `_` rather than
    in the middle of a word."""
    from markupsafe import Markup, escape

    text = str(escape(path))
    return Markup(text.replace("/", "/<wbr>").replace("_", "_<wbr>"))


def plain_number(value: float, _position: int) -> str:
    """A log axis's tick as a plain number ("90", "1,000"), not 9×10¹."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def png_base64(figure) -> str:
    """A matplotlib figure as base64 PNG (for `<img src="data:image/png;base64,...">`)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def thumbnail_uri(pixels: np.ndarray, side: int = THUMB) -> str:
    """An RGB uint8 image as a JPEG data URI of `side` x `side` pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((side, side)).save(buffer, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
