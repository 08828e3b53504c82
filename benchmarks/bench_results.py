"""Where every benchmark keeps its numbers: `.bench/results/<name>.json`, which the tables of
docs/benchmarks.md (and the README's summary) quote and `make bench` prints the folder of."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(".bench") / "results"


def machine() -> dict:
    """What the numbers were measured on. Timings depend on the CPU model, not only on its
    speed: on an Intel Xeon, arithmetic on subnormal floats once made verification three
    times slower than on the CPU of earlier runs, with identical results."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def save_result(name: str, result: dict, when: str | None = None, results: Path = RESULTS) -> Path:
    """Write `result` to `results/<name>.json` (the folder is made if needed); `when`, the
    time the run started, is recorded in it when given."""
    if when is not None:
        result["when"] = when
    result.setdefault("machine", machine())
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
