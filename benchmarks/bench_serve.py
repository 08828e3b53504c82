"""Serving benchmark: `winnow serve` on loopback under load, beside the in-process floor.

Floor: the server's own `Predictor` called in this process, no HTTP: one image per call
(decode + model at batch 1), and 32 per call (what batching could give at most). Server:
`winnow serve --weights MODEL` as a user starts it, then C client threads (httpx) sending
single-image requests (a 503 from the concurrency limit is retried after 20 ms and counted),
and one client sending 32-image requests. Reported: requests/s, p50/p95 latency, 503s,
images/s, and the ratios server/floor. Bounded: REQUESTS requests per client count.

Usage: python benchmarks/bench_serve.py WEIGHTS IMAGES_DIR [--requests 300]
       (WEIGHTS: .onnx, or a checkpoint, exported to ONNX first)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench_results import save_result
from winnow.serve.predictor import Predictor
from winnow.serve.settings import ServeSettings

CLIENTS = (1, 2, 4, 8)
BATCH = 32


def load_images(folder: Path, count: int) -> list[tuple[str, bytes]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())[:count]
    return [(p.name, p.read_bytes()) for p in files]


def floor(weights: Path, images: list[tuple[str, bytes]]) -> dict:
    predictor = Predictor(ServeSettings(weights=str(weights)))
    predictor.predict(images[:8])  # warm-up
    started = time.perf_counter()
    for item in images:
        predictor.predict([item])
    single = len(images) / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(images), BATCH):
        predictor.predict(images[start : start + BATCH])
    batched = len(images) / (time.perf_counter() - started)
    predictor.close()
    return {
        "single_images_per_second": round(single, 1),
        "batched_images_per_second": round(batched, 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(weights: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    winnow = str(Path(sys.executable).parent / "winnow")
    process = subprocess.Popen(
        [winnow, "serve", "--weights", str(weights), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            if httpx.get(url + "ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start: " + (process.stdout.read() or ""))


def load(url: str, images: list[tuple[str, bytes]], clients: int, requests: int) -> dict:
    latencies: list[float] = []
    busy = 0
    lock = threading.Lock()

    def worker(number: int) -> None:
        nonlocal busy
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(requests):
                name, data = images[(number * requests + i) % len(images)]
                started = time.perf_counter()
                while True:
                    response = client.post("/predict", files=[("files", (name, data))])
                    if response.status_code != 503:
                        break
                    with lock:
                        busy += 1
                    time.sleep(0.02)
                response.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "busy_503": busy,
    }


def batched_requests(url: str, images: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(images), BATCH):
            files = [("files", item) for item in images[start : start + BATCH]]
            client.post("/predict", files=files).raise_for_status()
    return round(len(images) / (time.perf_counter() - started), 1)


def bench_serve(weights: Path, images_dir: Path, requests: int = 300) -> dict:
    weights = Path(weights)
    with tempfile.TemporaryDirectory() as scratch:
        if weights.suffix != ".onnx":
            from winnow.inference.onnx import export_onnx

            export_onnx(weights, Path(scratch) / "model.onnx")
            weights = Path(scratch) / "model.onnx"
        images = load_images(images_dir, requests)
        result = {
            "weights": str(weights.name),
            "images": len(images),
            "floor": floor(weights, images),
        }
        process, url = start_server(weights)
        try:
            load(url, images[:20], 2, 10)  # warm-up
            result["single"] = [load(url, images, c, max(20, requests // c)) for c in CLIENTS]
            result["batched_images_per_second"] = batched_requests(url, images)
        finally:
            process.terminate()
            process.wait(20)
    best = max(result["single"], key=lambda r: r["requests_per_second"])
    result["single_vs_floor"] = round(
        best["requests_per_second"] / result["floor"]["single_images_per_second"], 3
    )
    result["batched_vs_floor"] = round(
        result["batched_images_per_second"] / result["floor"]["batched_images_per_second"], 3
    )
    result["batching_gain_in_process"] = round(
        result["floor"]["batched_images_per_second"] / result["floor"]["single_images_per_second"],
        2,
    )
    return result


def report(result: dict) -> str:
    floor_ = result["floor"]
    lines = [
        f"serve ({result['weights']}, {result['images']} images, loopback)",
        f"  in-process floor: {floor_['single_images_per_second']} images/s one per call, "
        f"{floor_['batched_images_per_second']} at {BATCH} per call "
        f"(×{result['batching_gain_in_process']})",
        "  clients  req/s   p50 ms  p95 ms  503s",
    ]
    for row in result["single"]:
        lines.append(
            f"  {row['clients']:>7}  {row['requests_per_second']:>5}  {row['p50_ms']:>7}  "
            f"{row['p95_ms']:>6}  {row['busy_503']:>4}"
        )
    lines.append(
        f"  best single-image server / floor: {result['single_vs_floor']}; "
        f"{BATCH}-image requests: {result['batched_images_per_second']} images/s "
        f"({result['batched_vs_floor']} of the batched floor)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--when", default=time.strftime("%Y-%m-%d %H:%M:%S"))
    args = parser.parse_args()
    result = bench_serve(args.weights, args.images, args.requests)
    save_result("serve", result, args.when)
    print(report(result))


if __name__ == "__main__":
    main()
