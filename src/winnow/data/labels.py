"""Class labels as folder names: the one rule every place a label enters goes through.

A label becomes a folder under an export destination, so it must be one plain folder
name: not empty, not `.` or `..`, no `/`, `\\` or NUL, no control characters, not hidden
(a scan skips hidden folders) and at most 255 bytes. Labels read from the data folder's
class folders always pass; labels typed into a decisions file, the review page or a
policy are checked here.
"""

from __future__ import annotations

import unicodedata

from winnow.errors import WinnowError

MAX_LABEL_BYTES = 255  # the longest file name common file systems allow


class LabelError(WinnowError):
    """A label that cannot be a class folder name."""


def label_problem(label: object) -> str | None:
    """Why `label` cannot be a class folder name, or None when it can."""
    if not isinstance(label, str) or not label.strip():
        return "it is empty"
    if label in (".", ".."):
        return "it names a folder above or at the destination"
    if any(sep in label for sep in ("/", "\\")):
        return "it holds a path separator ('/' or '\\'): a label is one folder name"
    if "\x00" in label or any(unicodedata.category(ch) == "Cc" for ch in label):
        return "it holds a control character"
    if label.startswith("."):
        return "it starts with '.', which makes a hidden folder that a scan skips"
    if label != label.strip():
        return "it starts or ends with white space"
    if len(label.encode("utf-8", "surrogateescape")) > MAX_LABEL_BYTES:
        return f"it is longer than {MAX_LABEL_BYTES} bytes"
    return None


def check_label(label: object, where: str) -> str:
    """`label` when it is a valid class folder name; otherwise a `LabelError` naming `where`."""
    problem = label_problem(label)
    if problem is not None:
        raise LabelError(
            f"Label {label!r} in {where} cannot be a class folder name: {problem}. "
            "Use the class's folder name, e.g. 'dog'."
        )
    return str(label)
