"""Inference benchmark: `evaluate` on 1,000 files decoded from disk against the decode floor,
ONNX parity, and single-image `predict` latency (PyTorch and ONNX).

Decode floor: the same files opened and decoded with Pillow (`convert("RGB")` + `thumbnail`
to the cache size) in a pool of the same size, nothing else: no hashing, no model. The
ratio `evaluate / floor` is files per second of the whole evaluation (decode, hashes,
leakage check, model, scores) over the floor's.

Both are timed 3 times, alternately, and the medians compared. Run it in a fresh process,
as `make bench` does: like `winnow evaluate`, it lets torch's idle threads sleep (see
winnow.inference.load.let_idle_threads_sleep), which only works before torch is imported.

Usage: python benchmarks/bench_infer.py WEIGHTS [--files 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from PIL import Image

from bench_results import save_result
from winnow.evaluate.runner import evaluate
from winnow.inference.load import let_idle_threads_sleep, load_model
from winnow.inference.onnx import export_onnx
from winnow.inference.predict import predict

ROOT = Path(".bench")


def _plain_decode(args: tuple[str, int]) -> int:
    path, size = args
    warnings.simplefilter("ignore")
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            rgb = image.convert("RGB")
            rgb.thumbnail((size, size))
            return rgb.size[0]
    except Exception:  # noqa: BLE001 - the floor skips what it can't read
        return 0


def sample_folder(source: Path, count: int, target: Path) -> list[Path]:
    """`count` files of `source` (every k-th, so every class is present) hard-linked."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    step = max(1, len(files) // count)
    chosen = files[::step][:count]
    if target.exists():
        shutil.rmtree(target)
    for path in chosen:
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, out)
    return [target / p.relative_to(source) for p in chosen]


def bench_infer(weights: Path, files: int, repeats: int = 3) -> dict:
    loaded = load_model(weights)
    folder = ROOT / "clipart" / f"eval-{files}"
    chosen = sample_folder(ROOT / "clipart" / "test", files, folder)
    workers = os.cpu_count() or 1
    size = loaded.preprocessing.cache_size
    context = multiprocessing.get_context("forkserver")
    floors, evaluations = [], []
    for _ in range(repeats):  # alternated, so a slow spell of the machine hits both
        tick = time.perf_counter()
        with context.Pool(workers) as pool:
            tasks = [(str(p), size) for p in chosen]
            list(pool.imap_unordered(_plain_decode, tasks, chunksize=2))
        floors.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        result = evaluate(folder, weights)
        evaluations.append(time.perf_counter() - tick)
    floor_seconds = statistics.median(floors)
    evaluate_seconds = statistics.median(evaluations)

    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        exported = export_onnx(weights, onnx_file)
        single = chosen[len(chosen) // 2]
        latencies = {}
        for kind, model in (("torch", load_model(weights)), ("onnx", load_model(onnx_file))):
            predict([single], model)  # warm-up
            times = []
            for _ in range(30):
                start = time.perf_counter()
                predict([single], model)
                times.append(time.perf_counter() - start)
            latencies[kind] = round(statistics.median(times) * 1000, 2)
    return {
        "files": len(chosen),
        "workers": workers,
        "repeats": repeats,
        "floor_runs": [round(t, 2) for t in floors],
        "evaluate_runs": [round(t, 2) for t in evaluations],
        "floor_seconds": round(floor_seconds, 2),
        "floor_files_per_second": round(len(chosen) / floor_seconds, 1),
        "evaluate_seconds": round(evaluate_seconds, 2),
        "evaluate_files_per_second": round(len(chosen) / evaluate_seconds, 1),
        "ratio": round(floor_seconds / evaluate_seconds, 3),
        "bad_files": int(len(result.bad_files)),
        "onnx_max_abs_diff": exported.max_abs_diff,
        "predict_p50_ms": latencies,
    }


def report(result: dict) -> str:
    return "\n".join(
        [
            f"inference benchmark ({result['files']} files decoded from disk, "
            f"{result['workers']} workers)",
            f"  decode floor   {result['floor_files_per_second']} files/s "
            f"({result['floor_seconds']} s)",
            f"  evaluate       {result['evaluate_files_per_second']} files/s "
            f"({result['evaluate_seconds']} s) = {result['ratio']:.2f}× the floor (target 0.8; "
            f"medians of {result['repeats']})",
            f"  ONNX parity    max abs diff {result['onnx_max_abs_diff']:.2g} (target 1e-4)",
            f"  predict p50    one image: torch {result['predict_p50_ms']['torch']} ms, "
            f"onnx {result['predict_p50_ms']['onnx']} ms",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--when", default=None, help="recorded in the result (make bench)")
    args = parser.parse_args()
    let_idle_threads_sleep()  # what `winnow evaluate` does
    result = bench_infer(args.weights, args.files)
    save_result("infer", result, args.when or None)
    print(report(result))


if __name__ == "__main__":
    main()
