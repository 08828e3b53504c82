"""`make bench`: build the benchmark data if needed, run every benchmark, save the numbers.

Results go to .bench/results/<name>.json and are printed. Each benchmark compares winnow
with a floor or a peer measured in the same invocation, so ratios are honest on any machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_scan import bench_scan, report  # noqa: E402
from build_dataset import build  # noqa: E402

ROOT = Path(".bench")


def main() -> None:
    data = ROOT / "clipart"
    if not (data / "truth.json").exists():
        print("building benchmark data from Debian packages …", flush=True)
        build(ROOT)
    results = ROOT / "results"
    results.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    scan_result = bench_scan(data / "training")
    scan_result["when"] = started
    (results / "scan.json").write_text(json.dumps(scan_result, indent=2))
    print(report(scan_result))
    print(f"\nresults saved in {results}/")


if __name__ == "__main__":
    main()
