"""`winnow serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.base import command, out
from winnow.serve.settings import ServeSettings

_DEFAULTS = ServeSettings(weights="")


@command(
    epilog="Example: winnow serve --weights model.onnx   then   curl -F files=@cat.png "
    "http://127.0.0.1:8000/predict"
)
def serve(
    weights: Annotated[
        Path,
        typer.Option(help="An .onnx file (torch is not needed), best.ckpt or a training folder."),
    ],
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    threshold: Annotated[
        float, typer.Option(help="Calibrated confidence under which a prediction is uncertain.")
    ] = _DEFAULTS.threshold,
    top_k: Annotated[int, typer.Option(help="Classes returned per image.")] = _DEFAULTS.top_k,
    workers: Annotated[int, typer.Option(help="Server processes, each with the model.")] = 1,
    max_file_mb: Annotated[
        float, typer.Option(help="Largest upload per file (bigger: 413).")
    ] = _DEFAULTS.max_file_mb,
    max_files: Annotated[
        int, typer.Option(help="Most files per request (more: 413).")
    ] = _DEFAULTS.max_files,
    max_request_mb: Annotated[
        float, typer.Option(help="Largest request body (bigger: 413).")
    ] = _DEFAULTS.max_request_mb,
    max_concurrent: Annotated[
        int, typer.Option(help="Requests classified at once per process (more wait).")
    ] = _DEFAULTS.max_concurrent,
    max_queued: Annotated[
        int, typer.Option(help="Requests waiting for a slot per process (more: 503).")
    ] = _DEFAULTS.max_queued,
) -> None:
    """Serve a trained model: REST API (POST /predict), demo page (/), OpenAPI (/docs)."""
    from winnow.serve.app import serve as run_server

    settings = ServeSettings(
        weights=str(weights), threshold=threshold, top_k=top_k, max_file_mb=max_file_mb,
        max_files=max_files, max_request_mb=max_request_mb, max_concurrent=max_concurrent,
        max_queued=max_queued,
    )  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"

    def announce(predictor=None) -> None:
        if predictor is not None:
            kind = predictor.loaded.kind
            out.print(f"model: {weights} ({kind}, {len(predictor.loaded.classes)} classes)")
        out.print(f"serving on [bold]{url}[/]  (API docs: {url}docs; Ctrl+C stops)")

    if workers > 1:
        announce()
    run_server(settings, host=host, port=port, workers=workers, on_ready=announce)
