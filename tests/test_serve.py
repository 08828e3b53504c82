"""`winnow serve`: the REST API, its limits, the CLI, the demo page in a real browser, and
an install of the `serve` extra alone (no torch) as the Dockerfile does it."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from factory import WRITERS, _png, solid
from servers import ServerThread, free_port, start_server
from winnow.cli import app as cli_app
from winnow.inference.predict import predict
from winnow.serve.app import create_app
from winnow.serve.predictor import Predictor
from winnow.serve.settings import ServeError, ServeSettings

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A small PNG whose header claims width × height pixels (1.6 GP by default)."""
    data = bytearray(_png(solid(side=4)))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of header
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def client_for(weights: Path, **limits) -> TestClient:
    settings = ServeSettings(weights=str(weights), **limits)
    return TestClient(create_app(settings, Predictor(settings)))


@pytest.fixture(scope="module")
def onnx_client(onnx_model: Path) -> TestClient:
    return client_for(onnx_model)


def images_of(demo_run, label: str, n: int = 3) -> list[Path]:
    data, _ = demo_run
    return sorted((data / "test" / label).glob("*.png"))[:n]


def test_predict_answers_every_file_like_predict_and_scan(
    onnx_client: TestClient, onnx_model: Path, demo_run, tmp_path: Path
) -> None:
    good = images_of(demo_run, "house") + images_of(demo_run, "tree", 2)
    bad = {
        "notes.jpg": (WRITERS["text_as_jpeg"][1](), "not_image"),
        "cut.png": (WRITERS["truncated_png"][1](), "truncated"),
        "damaged.png": (WRITERS["corrupt_png"][1](), "corrupt"),
        "empty.png": (b"", "empty"),
        "bomb.png": (bomb_png(), "oversized"),
    }
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in good]
    files += [("files", (name, data, "image/png")) for name, (data, _) in bad.items()]
    response = onnx_client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["threshold"] == 0.7
    results = body["results"]
    assert [r["name"] for r in results] == [p.name for p in good] + list(bad)
    expected = predict(good, onnx_model, threshold=0.7)
    for answer, reference in zip(results, expected, strict=False):
        assert answer["status"] == "ok"
        assert [t["label"] for t in answer["top"]] == reference.labels
        assert np.allclose(
            [t["probability"] for t in answer["top"]], reference.probabilities, atol=1e-4
        )
        assert answer["prediction"] == reference.labels[0]
        assert answer["uncertain"] == reference.uncertain
    from winnow.data.decode import decode_file

    config = Predictor(ServeSettings(weights=str(onnx_model))).config
    for answer, (name, (data, status)) in zip(results[len(good) :], bad.items(), strict=True):
        assert answer["status"] == status, answer
        assert "top" not in answer
        (tmp_path / name).write_bytes(data)
        assert answer["error"] == decode_file(str(tmp_path / name), config).error  # scan's words


def test_health_ready_model_and_docs(onnx_client: TestClient, onnx_model: Path) -> None:
    assert onnx_client.get("/health").json() == {"status": "ok"}
    assert onnx_client.get("/ready").status_code == 200
    model = onnx_client.get("/model").json()
    from winnow.inference.load import load_model

    assert model["classes"] == load_model(onnx_model).classes
    assert model["kind"] == "onnx" and model["explain"] is False
    assert model["threshold"] == 0.7
    assert model["limits"] == {
        "max_file_mb": 20.0, "max_files": 64, "max_request_mb": 100.0, "max_concurrent": 4,
        "max_queued": 32,
    }  # fmt: skip
    card = model["card"]
    assert card["model"] == "resnet10" and card["trained_from_scratch"]
    assert card["train_items"] > 0 and 0 <= card["val_macro_f1"] <= 1  # carried into ONNX
    assert model["preprocessing"]["image_size"] == 32
    spec = onnx_client.get("/openapi.json").json()
    assert {"/predict", "/explain", "/model", "/health", "/ready"} <= set(spec["paths"])
    assert onnx_client.get("/docs").status_code == 200
    # not loaded yet (the lifespan has not run): not ready, yet alive
    loading = TestClient(create_app(ServeSettings(weights=str(onnx_model))))
    assert loading.get("/health").status_code == 200
    assert loading.get("/ready").status_code == 503
    assert loading.post("/predict", files=[("files", ("a.png", b"x"))]).status_code == 503


def test_limits_refuse_with_413_and_bad_bodies_get_4xx(onnx_model: Path, demo_run, caplog) -> None:
    image = images_of(demo_run, "house", 1)[0].read_bytes()
    client = client_for(onnx_model, max_file_mb=0.01, max_files=2, max_request_mb=0.05)
    big = os.urandom(20_000)  # 0.019 MB: over max_file_mb, under max_request_mb
    response = client.post("/predict", files=[("files", ("big.png", big))])
    assert response.status_code == 413 and "max_file_mb" in response.json()["detail"]
    three = [("files", (f"{i}.png", image)) for i in range(3)]
    response = client.post("/predict", files=three)
    assert response.status_code == 413 and "max_files" in response.json()["detail"]
    huge = os.urandom(80_000)
    response = client.post("/predict", files=[("files", ("huge.png", huge))])
    assert response.status_code == 413 and "max_request_mb" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is applied while the body streams
        boundary = b"--b\r\nContent-Disposition: form-data; name=files; filename=x.png\r\n\r\n"
        yield boundary
        for _ in range(10):
            yield os.urandom(8_000)
        yield b"\r\n--b--\r\n"

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413, response.text
    ok = client.post("/predict", files=[("files", ("small.png", image))])
    assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "ok"
    # bad bodies: a 4xx with a sentence, never a 5xx
    assert client.post("/predict", data={"a": "b"}).status_code == 415
    assert client.post("/predict", files=[("other", ("a.png", image))]).status_code == 422
    garbage = client.post(
        "/predict", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=z"}
    )
    assert 400 <= garbage.status_code < 500
    # a malformed body is the client's news, not one log line each (a log could be flooded)
    assert not [r for r in caplog.records if r.name.startswith("python_multipart")]
    assert client.post("/explain", files=[("file", ("a.png", image))]).status_code == 409


def _while_one_request_runs(onnx_model: Path, image: bytes, queued: int, extra: int) -> list:
    """Status codes: one request held inside the model with max_concurrent=1 and
    max_queued=`queued`, `extra` more sent meanwhile, then the held one released;
    [held, *extra] in the order sent."""
    import anyio

    settings = ServeSettings(weights=str(onnx_model), max_concurrent=1, max_queued=queued)
    predictor = Predictor(settings)
    entered, release = threading.Event(), threading.Event()
    real = predictor.predict

    def slow(uploads):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return real(uploads)

    predictor.predict = slow  # type: ignore[method-assign]
    app = create_app(settings, predictor)
    codes: dict[int, int] = {}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def send(number: int) -> None:
                response = await client.post("/predict", files=[("files", ("a.png", image))])
                codes[number] = response.status_code
                if response.status_code == 503:
                    assert response.headers["retry-after"] == "1"
                    assert "max_queued" in response.json()["detail"]

            async with anyio.create_task_group() as group:
                group.start_soon(send, 0)
                await anyio.to_thread.run_sync(entered.wait, 10)
                for number in range(1, extra + 1):
                    group.start_soon(send, number)
                    await anyio.sleep(0.05)  # each is admitted or refused before the next
                while len(codes) < extra - queued:  # the refused ones have their answer
                    await anyio.sleep(0.01)
                release.set()

    anyio.run(scenario)
    return [codes[i] for i in range(extra + 1)]


def test_a_busy_server_queues_a_bounded_number_then_answers_503(onnx_model: Path, demo_run) -> None:
    image = images_of(demo_run, "house", 1)[0].read_bytes()
    assert _while_one_request_runs(onnx_model, image, queued=0, extra=1) == [200, 503]
    assert _while_one_request_runs(onnx_model, image, queued=2, extra=3) == [200, 200, 200, 503]


def test_explain_returns_a_grad_cam_png_for_a_checkpoint(trained: Path, demo_run) -> None:
    client = client_for(trained)
    assert client.get("/model").json()["explain"] is True
    image = images_of(demo_run, "tree", 1)[0]
    response = client.post("/explain", files=[("file", (image.name, image.read_bytes()))])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as png:
        assert png.width == 2 * png.height  # the image beside its overlay
    bad = client.post("/explain", files=[("file", ("x.png", b"not an image"))])
    assert bad.status_code == 422 and bad.json()["detail"].startswith("not_image")


def test_settings_and_cli_refuse_bad_input_without_traceback(tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="threshold"):
        ServeSettings(weights="m.onnx", threshold=1.5)
    with pytest.raises(ServeError, match="max_files"):
        ServeSettings(weights="m.onnx", max_files=0)
    result = runner.invoke(cli_app, ["serve", "--weights", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli_app, ["serve", "--weights", "m.onnx", "--threshold", "2"])
    assert result.exit_code == 2 and "threshold" in result.output


def test_a_missing_extra_is_named_not_a_traceback(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['torch'] = None\n"
        "from typer.testing import CliRunner\nfrom winnow.cli import app\n"
        f"r = CliRunner().invoke(app, ['serve', '--weights', {str(tmp_path)!r}])\n"
        "print(r.exit_code); print(r.output)\n"
        f"r = CliRunner().invoke(app, ['train', {str(tmp_path)!r}])\n"
        "print(r.exit_code); print(r.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    output = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 error: This needs fastapi, which comes with the 'serve' extra" in output
    assert "pip install 'winnow-vision[serve]'" in output
    assert "This needs torch, which comes with the 'pipeline' extra" in output
    assert "Traceback" not in done.stdout


def test_cli_serves_on_loopback_by_default(onnx_model: Path, demo_run) -> None:
    import psutil

    port = free_port()
    winnow = str(Path(sys.executable).parent / "winnow")
    process, url = start_server(
        [winnow, "serve", "--weights", str(onnx_model), "--port", str(port)]
    )
    try:
        assert url == f"http://127.0.0.1:{port}/"
        listening = [
            c for c in psutil.Process(process.pid).net_connections() if c.status == "LISTEN"
        ]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
        image = images_of(demo_run, "star", 1)[0]
        response = httpx.post(url + "predict", files=[("files", (image.name, image.read_bytes()))])
        assert response.status_code == 200 and response.json()["results"][0]["status"] == "ok"
    finally:
        process.terminate()
        process.wait(10)


def test_demo_page_in_a_real_browser_with_the_keyboard(
    browser_page, trained: Path, demo_run, tmp_path: Path
) -> None:
    page = browser_page
    folder = tmp_path / "upload"
    folder.mkdir()
    files = []
    for label in ("house", "tree"):
        source = images_of(demo_run, label, 1)[0]
        files.append(folder / source.name)
        files[-1].write_bytes(source.read_bytes())
    hostile = folder / '<img src=x onerror="window.pwned=1">.png'  # a name is text, never HTML
    hostile.write_bytes(images_of(demo_run, "star", 1)[0].read_bytes())
    text = folder / "notes.png"
    text.write_bytes(b"not a picture\n")
    files += [hostile, text]
    settings = ServeSettings(weights=str(trained), threshold=0.99)  # the tiny model: unsure
    opened = []

    def choose(chooser) -> None:
        opened.append(chooser)
        chooser.set_files([str(f) for f in files])

    # listening before the page loads: playwright intercepts the file dialog only once the
    # browser has been told to, and a chooser opened before that is never reported
    page.on("filechooser", choose)
    with ServerThread(create_app(settings, Predictor(settings))) as url:
        page.goto(url)
        assert "winnow serve" in page.title()
        # keyboard only: Tab reaches the file chooser, Enter opens it
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "files":
                break
        assert page.evaluate("document.activeElement.id") == "files"
        page.keyboard.press("Enter")
        page.wait_for_selector("article.result >> nth=3")
        assert len(opened) == 1
        cards = page.locator("article.result")
        assert cards.count() == 4
        names = [cards.nth(i).locator(".name").inner_text() for i in range(4)]
        assert names[2].startswith('<img src=x onerror="window.pwned=1">.png')
        assert page.evaluate("window.pwned") is None
        assert "uncertain" in cards.nth(0).inner_text()
        assert cards.nth(0).locator(".bar").count() == 3
        assert "not_image" in cards.nth(3).locator(".error").inner_text()
        status = page.locator("#status").inner_text()
        assert "3 classified" in status and "1 unreadable" in status
        # Grad-CAM from the keyboard: focus the first card's button, press Enter
        button = cards.nth(0).locator("button.explain")
        button.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('article.result img.cam')?.naturalWidth > 0")
        shots = Path(os.environ.get("WINNOW_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "serve-demo.png"), full_page=True)


def _docker_runs() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
def test_the_serve_extra_alone_serves_onnx_without_torch(
    onnx_model: Path, demo_run, tmp_path: Path
) -> None:
    """Installs `.[serve]` into a fresh venv with the Dockerfile's command (or builds and runs
    the image when docker works here), starts the server and classifies an image."""
    image = images_of(demo_run, "house", 1)[0]
    port = free_port()
    if _docker_runs():
        tag = "winnow-serve-test"
        subprocess.run(["docker", "build", "-t", tag, str(REPO)], check=True, timeout=900)
        command = [
            "docker", "run", "--rm", "-p", f"127.0.0.1:{port}:8000",
            "-v", f"{onnx_model.parent}:/model:ro", tag, "--weights", f"/model/{onnx_model.name}",
        ]  # fmt: skip
        process, _ = start_server(command)
        url = f"http://127.0.0.1:{port}/"
    else:
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        dockerfile = (REPO / "Dockerfile").read_text()
        assert 'pip install --no-cache-dir -c constraints.txt ".[serve]"' in dockerfile
        install = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
             "-c", "constraints.txt", ".[serve]"],
            cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert install.returncode == 0, install.stderr[-3000:]
        listed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True
        ).stdout.lower()
        for heavy in ("torch", "lightning", "pandas", "pyarrow", "matplotlib", "nvidia"):
            assert f"\n{heavy}" not in listed, f"{heavy} was installed by the serve extra"
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        process, url = start_server(
            [str(venv / "bin" / "winnow"), "serve", "--weights", str(onnx_model),
             "--port", str(port)], env=env,
        )  # fmt: skip
    try:
        response = httpx.post(url + "predict", files=[("files", (image.name, image.read_bytes()))])
        assert response.status_code == 200, response.text
        answer = response.json()["results"][0]
        expected = predict([image], onnx_model)[0]
        assert answer["prediction"] == expected.labels[0]
        assert json.loads(httpx.get(url + "model").text)["kind"] == "onnx"
        # the API page's script comes with the extra, not from a CDN
        assert "static-offline-docs/swagger-ui-bundle.js" in httpx.get(url + "docs").text
        assert httpx.get(url + "static-offline-docs/swagger-ui-bundle.js").status_code == 200
    finally:
        process.terminate()
        process.wait(20)


def test_the_api_page_opens_without_a_network(browser_page, onnx_model: Path) -> None:
    """/docs (Swagger UI) loads its script and style sheet from the app itself: every
    request the page makes stays on the server, and it renders the API's operations; the
    operations open from the keyboard. No /redoc (its page fetches a logo from the web)."""
    page = browser_page
    elsewhere: list[str] = []
    settings = ServeSettings(weights=str(onnx_model))
    operations = {"/predict", "/explain", "/model", "/health", "/ready"}
    with ServerThread(create_app(settings, Predictor(settings))) as url:

        def only_the_server(route) -> None:
            if route.request.url.startswith(url):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_server)
        page.goto(url + "docs")
        page.wait_for_selector(".opblock-summary-path")
        paths = {
            element.get_attribute("data-path")
            for element in page.locator(".opblock-summary-path").all()
        }
        assert operations <= paths
        assert "winnow serve" in page.title()
        health = page.locator(".opblock-summary-control").first
        health.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(".opblock.is-open")
        assert httpx.get(url + "redoc").status_code == 404
    assert elsewhere == []
