"""Serving benchmark: `winnow serve` on loopback under load, beside in-process floors.

Floors, in this process, no HTTP, on the same images: onnxruntime `run` on the images
already preprocessed (model only, batch 1 and 32), and the server's own `Predictor` (decode
+ model: what a request must do) one image per call and 32 per call (what batching could
give at most). Server: `winnow serve --weights MODEL` as a user starts it, then C client
threads (httpx) sending single-image requests (a 503 would be retried after 20 ms and
counted), and one client sending 32-image requests. Then 1,000 malformed uploads (random
bytes, truncated PNGs, HTML, a 50,000 × 50,000 PNG header, bodies over the limits, garbage
multipart) whose answers must all be 4xx or per-file errors, and a 10,000-request soak
(valid and malformed mixed, 8 clients) with the server's resident memory sampled.

Usage: python benchmarks/bench_serve.py WEIGHTS IMAGES_DIR [--requests 300] [--soak 10000]
       (WEIGHTS: .onnx, or a checkpoint, exported to ONNX first)
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench_results import save_result
from winnow.serve.predictor import Predictor
from winnow.serve.settings import ServeSettings

CLIENTS = (1, 2, 4, 8)
BATCH = 32


def load_images(folder: Path, count: int) -> list[tuple[str, bytes]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())[:count]
    return [(p.name, p.read_bytes()) for p in files]


def model_floor(predictor: Predictor, images: list[tuple[str, bytes]]) -> dict:
    """onnxruntime `run` alone on the images decoded and preprocessed beforehand."""
    from winnow.inference.preprocess import resize_square, to_input

    loaded = predictor.loaded
    pixels = [predictor.decode(data).pixels for _, data in images]
    pixels = np.stack([p for p in pixels if p is not None])
    inputs = to_input(resize_square(pixels, loaded.preprocessing.image_size), loaded.preprocessing)
    session = loaded._onnx_session
    out = {}
    for batch in (1, BATCH):
        session.run(None, {"images": inputs[:batch]})
        started = time.perf_counter()
        for start in range(0, len(inputs), batch):
            session.run(None, {"images": inputs[start : start + batch]})
        out[f"batch_{batch}_images_per_second"] = round(
            len(inputs) / (time.perf_counter() - started), 1
        )
    return out


def floor(weights: Path, images: list[tuple[str, bytes]]) -> dict:
    predictor = Predictor(ServeSettings(weights=str(weights)))
    predictor.predict(images[:8])  # warm-up
    model_only = model_floor(predictor, images)
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
        "model_only": model_only,
        "single_images_per_second": round(single, 1),
        "batched_images_per_second": round(batched, 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(weights: Path, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    winnow = str(Path(sys.executable).parent / "winnow")
    process = subprocess.Popen(
        [winnow, "serve", "--weights", str(weights), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            if httpx.get(url + "ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start; its output is in {log.name}")


def load(url: str, images: list[tuple[str, bytes]], clients: int, requests: int) -> dict:
    latencies: list[float] = []
    busy = errors = 0
    lock = threading.Lock()

    def worker(number: int) -> None:
        nonlocal busy, errors
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
                with lock:
                    errors += response.status_code != 200
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
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "busy_503": busy,
        "not_200": errors,
    }


def batched_requests(url: str, images: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(images), BATCH):
            files = [("files", item) for item in images[start : start + BATCH]]
            client.post("/predict", files=files).raise_for_status()
    return round(len(images) / (time.perf_counter() - started), 1)


def bomb_header(side: int = 50_000) -> bytes:
    """A tiny PNG whose header claims side × side pixels."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", side, side)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def malformed(rng: random.Random, images: list[tuple[str, bytes]], big: bool) -> tuple:
    """(kind, httpx keyword arguments) of one malformed request."""
    kinds = ["random", "truncated", "html", "bomb", "not_multipart", "garbage_multipart"]
    kinds += ["oversize"] if big else []
    kind = rng.choice(kinds)
    if kind == "random":
        body = rng.randbytes(rng.randint(1, 50_000))
    elif kind == "truncated":
        data = rng.choice(images)[1]
        body = data[: rng.randint(1, max(2, len(data) - 1))]
    elif kind == "html":
        body = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
    elif kind == "bomb":
        body = bomb_header()
    elif kind == "oversize":
        body = rng.randbytes(21 * 2**20)  # over the 20 MB per-file default
    elif kind == "not_multipart":
        return kind, {"content": rng.randbytes(1000), "headers": {"content-type": "image/png"}}
    else:
        headers = {"content-type": "multipart/form-data; boundary=xyz"}
        return kind, {"content": rng.randbytes(2000), "headers": headers}
    return kind, {"files": [("files", (f"{kind}.png", body, "image/png"))]}


def fuzz(url: str, images, count: int, big_every: int = 100, seed: int = 0) -> dict:
    rng = random.Random(seed)
    codes: dict[str, dict[int, int]] = {}
    per_file: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(count):
            kind, kwargs = malformed(rng, images, big=i % big_every == 0)
            response = client.post("/predict", **kwargs)
            codes.setdefault(kind, {}).setdefault(response.status_code, 0)
            codes[kind][response.status_code] += 1
            if response.status_code == 200:
                for answer in response.json()["results"]:
                    per_file[answer["status"]] = per_file.get(answer["status"], 0) + 1
        health = client.get("/health").status_code
    fivexx = sum(n for by in codes.values() for code, n in by.items() if code >= 500)
    ok_images = sum(n for status, n in per_file.items() if status == "ok")
    return {
        "requests": count, "codes": codes, "per_file_status": per_file, "5xx": fivexx,
        "health_after": health, "ok_images_among_malformed": ok_images,
    }  # fmt: skip


def soak(url: str, pid: int, images, count: int, clients: int = 8) -> dict:
    process = psutil.Process(pid)
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    fivexx = 0
    lock = threading.Lock()

    def worker(number: int) -> None:
        nonlocal fivexx
        rng = random.Random(number)
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(count // clients):
                if i % 2:
                    _, kwargs = malformed(rng, images, big=False)
                else:
                    kwargs = {"files": [("files", images[(number + i) % len(images)])]}
                code = client.post("/predict", **kwargs).status_code
                with lock:
                    fivexx += code >= 500

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    seconds = time.perf_counter() - started
    done.set()
    after = process.memory_info().rss
    return {"requests": count // clients * clients, "seconds": round(seconds, 1), "5xx": fivexx,
            "rss_before_mb": round(before / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
            "rss_peak_mb": round(peak / 2**20, 1)}  # fmt: skip


def bench_serve(
    weights: Path, images_dir: Path, requests: int = 300, soak_requests: int = 10_000
) -> dict:
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
        log = open(Path(scratch) / "server.log", "w")  # noqa: SIM115 - closed below
        process, url = start_server(weights, log)
        try:
            load(url, images[:20], 2, 10)  # warm-up
            result["single"] = [load(url, images, c, max(20, requests // c)) for c in CLIENTS]
            result["batched_images_per_second"] = batched_requests(url, images)
            result["malformed"] = fuzz(url, images, 1000)
            result["soak"] = soak(url, process.pid, images, soak_requests)
        finally:
            process.terminate()
            process.wait(20)
            log.close()
            result["server_log_tail"] = (Path(scratch) / "server.log").read_text()[-2000:]
    at8 = next(r for r in result["single"] if r["clients"] == 8)
    result["c8_vs_decode_floor"] = round(
        at8["requests_per_second"] / result["floor"]["single_images_per_second"], 3
    )
    result["c8_vs_model_floor"] = round(
        at8["requests_per_second"] / result["floor"]["model_only"]["batch_1_images_per_second"], 3
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
    model = floor_["model_only"]
    lines = [
        f"serve ({result['weights']}, {result['images']} images, loopback)",
        f"  model-only floor (onnxruntime run, preprocessed): {model['batch_1_images_per_second']}"
        f" images/s at batch 1, {model[f'batch_{BATCH}_images_per_second']} at {BATCH}",
        f"  in-process floor: {floor_['single_images_per_second']} images/s one per call, "
        f"{floor_['batched_images_per_second']} at {BATCH} per call "
        f"(×{result['batching_gain_in_process']})",
        "  clients  req/s   p50 ms  p95 ms  p99 ms  503s  not-200",
    ]
    for row in result["single"]:
        lines.append(
            f"  {row['clients']:>7}  {row['requests_per_second']:>5}  {row['p50_ms']:>7}  "
            f"{row['p95_ms']:>6}  {row['p99_ms']:>6}  {row['busy_503']:>4}  {row['not_200']:>7}"
        )
    bad, soaked = result["malformed"], result["soak"]
    lines += [
        f"  malformed: {bad['requests']} requests, 5xx {bad['5xx']}, codes {bad['codes']}, "
        f"per-file {bad['per_file_status']}, /health after: {bad['health_after']}",
        f"  soak: {soaked['requests']} requests in {soaked['seconds']} s, 5xx {soaked['5xx']}, "
        f"RSS {soaked['rss_before_mb']} → {soaked['rss_after_mb']} MB "
        f"(peak {soaked['rss_peak_mb']})",
    ]
    lines.append(
        f"  8 clients / decode+model floor: {result['c8_vs_decode_floor']}, / model-only floor: "
        f"{result['c8_vs_model_floor']}; "
        f"{BATCH}-image requests: {result['batched_images_per_second']} images/s "
        f"({result['batched_vs_floor']} of the batched floor)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--when", default=time.strftime("%Y-%m-%d %H:%M:%S"))
    args = parser.parse_args()
    result = bench_serve(args.weights, args.images, args.requests, args.soak)
    save_result("serve", result, args.when)
    print(report(result))


if __name__ == "__main__":
    main()
