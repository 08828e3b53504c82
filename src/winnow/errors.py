"""The one error base: every error a user can meet is a `WinnowError`.

Its message says what happened and what to do; the CLI catches this one type, prints the
message and exits with status 2. Anything else reaching the CLI is a bug.
"""

from __future__ import annotations


class WinnowError(Exception):
    """An error whose message is meant for the user (what happened, what to do)."""
