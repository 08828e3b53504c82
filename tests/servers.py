"""Servers for the tests: a CLI server as a process, or an app in a thread (uvicorn)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    command: list[str], env: dict | None = None, ready_path: str = "health"
) -> tuple[subprocess.Popen, str]:
    """Start a server command (`winnow serve`, `winnow review`); returns (process, URL) once
    it prints its URL and URL + ready_path answers 200."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if " on http" in line:  # "serving on URL", "review on URL"
            url = "http" + line.split(" on http", 1)[1].split()[0]
            for _ in range(100):
                try:
                    if httpx.get(url + ready_path, timeout=2).status_code == 200:
                        return process, url
                except httpx.HTTPError:
                    time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start:\n" + "".join(lines))


class ServerThread:
    """uvicorn in a thread of this process, for the browser test."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return f"http://127.0.0.1:{self.port}/"
            time.sleep(0.05)
        raise AssertionError("uvicorn did not start")

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(10)
