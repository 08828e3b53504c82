"""Time `winnow scan` against a decode-only floor on the same folder, in one invocation.

Floor: a plain Pillow loop on all cores — open, convert("RGB"), resize to 128×128 — and
nothing else (no hashes, no cache, no EXIF, no transparency handling, no bad-file rows).
Ours: the `winnow scan` command as a user runs it, on a fresh RUN folder.
Both run after the page cache is warmed, so neither pays for the first disk read.
Peak RSS is the sum over the process tree (parent + workers), sampled every 50 ms.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

SIZE = 128


def _floor_one(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.convert("RGB").resize((SIZE, SIZE))
        return True
    except Exception:  # noqa: BLE001 - the floor skips what it can't decode
        return False


def _floor_main(files: list[str], result_path: str) -> None:
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        decoded = sum(pool.imap_unordered(_floor_one, files, chunksize=4))
    Path(result_path).write_text(
        json.dumps({"seconds": time.perf_counter() - start, "decoded": decoded})
    )


class PeakTreeRSS:
    """Samples the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for proc in procs:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def __enter__(self) -> PeakTreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_measured(command: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakTreeRSS(proc.pid) as rss:
        output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output}")
    return time.perf_counter() - start, rss.peak, output


def winnow_exe() -> str:
    """The `winnow` command of this environment, as a user runs it."""
    return shutil.which("winnow") or str(Path(sys.executable).parent / "winnow")


def list_files(data: Path) -> list[str]:
    return sorted(str(p) for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))


def warm_page_cache(files: list[str]) -> None:
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


def bench_scan(data: Path) -> dict:
    files = list_files(data)
    warm_page_cache(files)
    with tempfile.TemporaryDirectory(prefix="winnow-bench-") as tmp:
        floor_json = Path(tmp) / "floor.json"
        floor_cmd = [sys.executable, __file__, "--floor", str(data), str(floor_json)]
        floor_wall, floor_rss, _ = _run_measured(floor_cmd)
        floor = json.loads(floor_json.read_text())

        run = Path(tmp) / "run"
        winnow = winnow_exe()
        ours_wall, ours_rss, output = _run_measured([winnow, "scan", str(data), "--out", str(run)])
        rescan_wall, _, _ = _run_measured([winnow, "scan", str(data), "--out", str(run)])
        summary = json.loads((run / "scan_summary.json").read_text())

    n = len(files)
    result = {
        "files": n,
        "cores": os.cpu_count(),
        "floor_seconds": round(floor["seconds"], 2),
        "floor_decoded": floor["decoded"],
        "floor_files_per_s": round(n / floor["seconds"], 1),
        "floor_peak_rss_mb": round(floor_rss / 2**20),
        "scan_seconds": round(ours_wall, 2),
        "scan_files_per_s": round(n / ours_wall, 1),
        "scan_peak_rss_mb": round(ours_rss / 2**20),
        "scan_vs_floor": round(floor["seconds"] / ours_wall, 3),
        "rescan_seconds": round(rescan_wall, 2),
        "by_status": summary["by_status"],
    }
    return result


def report(result: dict) -> str:
    return "\n".join(
        [
            f"scan benchmark: {result['files']} files on {result['cores']} cores",
            f"  floor (Pillow open+RGB+resize): {result['floor_seconds']:8.2f} s  "
            f"{result['floor_files_per_s']:7.1f} files/s  "
            f"peak RSS {result['floor_peak_rss_mb']} MB  (decoded {result['floor_decoded']})",
            f"  winnow scan (everything):       {result['scan_seconds']:8.2f} s  "
            f"{result['scan_files_per_s']:7.1f} files/s  peak RSS {result['scan_peak_rss_mb']} MB",
            f"  scan / floor throughput ratio:  {result['scan_vs_floor']:.3f}  (goal ≥ 0.8)",
            f"  re-scan, nothing changed:       {result['rescan_seconds']:8.2f} s",
            f"  statuses: {result['by_status']}",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--floor":
        _floor_main(list_files(Path(sys.argv[2])), sys.argv[3])
    else:
        print(report(bench_scan(Path(sys.argv[1]))))
