"""Where every benchmark keeps its numbers: `.bench/results/<name>.json`, which the tables of
docs/benchmarks.md (and the README's summary) quote and `make bench` prints the folder of."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(".bench") / "results"


def save_result(name: str, result: dict, when: str | None = None, results: Path = RESULTS) -> Path:
    """Write `result` to `results/<name>.json` (the folder is made if needed); `when`, the
    time the run started, is recorded in it when given."""
    if when is not None:
        result["when"] = when
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
