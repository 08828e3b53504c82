"""The model behind the server: uploads → decoded pixels → calibrated top-k, or a reason.

An upload is written to a private temporary folder under a generated name, decoded by the
same bounded-memory decoder as `scan` (`decode_file`) and deleted: a client's file name is
echoed back and never used as a path.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from winnow.inference.load import model_summary
from winnow.serve.settings import ServeSettings


class Predictor:
    """The loaded model plus the decode settings it was trained with; thread-safe."""

    def __init__(self, settings: ServeSettings) -> None:
        from winnow.data.decode import prepare_worker
        from winnow.inference.load import load_model

        prepare_worker()
        self.settings = settings
        self.loaded = load_model(Path(settings.weights))
        self.config = self.loaded.scan_config(workers=1)
        self.top_k = max(1, min(settings.top_k, len(self.loaded.classes)))
        self.workdir = tempfile.TemporaryDirectory(prefix="winnow-serve-")
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def can_explain(self) -> bool:
        return self.loaded.kind == "torch"

    def describe(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "classes": loaded.classes,
            "kind": loaded.kind,
            "preprocessing": loaded.preprocessing.to_dict(),
            "threshold": self.settings.threshold,
            "top_k": self.top_k,
            "limits": self.settings.limits(),
            "explain": self.can_explain,
            "card": model_summary(loaded.meta),
        }

    def decode(self, data: bytes):
        """Bytes of one upload → the decoder's `Decoded` (pixels, or status and reason)."""
        from winnow.data.decode import decode_file

        with self._lock:
            self._counter += 1
            number = self._counter
        path = Path(self.workdir.name) / f"upload-{os.getpid()}-{number}"
        path.write_bytes(data)
        try:
            return decode_file(str(path), self.config, fingerprints=False)
        finally:
            path.unlink(missing_ok=True)

    def predict(self, uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        decoded = [self.decode(data) for _, data in uploads]
        good = [i for i, d in enumerate(decoded) if d.pixels is not None]
        probabilities = (
            self.loaded.probabilities(np.stack([decoded[i].pixels for i in good])) if good else []
        )
        by_index = dict(zip(good, probabilities, strict=True))
        results: list[dict[str, Any]] = []
        for i, (name, _) in enumerate(uploads):
            if i not in by_index:
                results.append(
                    {"name": name, "status": decoded[i].status, "error": decoded[i].error}
                )
                continue
            probs = by_index[i]
            top = np.argsort(-probs)[: self.top_k]
            labels = [
                {"label": self.loaded.classes[j], "probability": round(float(probs[j]), 5)}
                for j in top
            ]
            results.append(
                {
                    "name": name,
                    "status": "ok",
                    "prediction": labels[0]["label"],
                    "confidence": labels[0]["probability"],
                    "uncertain": bool(probs[top[0]] < self.settings.threshold),
                    "top": labels,
                }
            )
        return results

    def explain_png(self, data: bytes) -> tuple[bytes | None, str | None]:
        """One upload → (PNG of the image beside its Grad-CAM overlay, None) or (None, reason)."""
        from PIL import Image

        from winnow.inference.explain import grad_cam, overlay

        decoded = self.decode(data)
        if decoded.pixels is None:
            return None, f"{decoded.status}: {decoded.error}"
        heat, _ = grad_cam(self.loaded, decoded.pixels)
        side = np.concatenate([decoded.pixels, overlay(decoded.pixels, heat)], axis=1)
        buffer = io.BytesIO()
        Image.fromarray(side).save(buffer, format="PNG")
        return buffer.getvalue(), None

    def close(self) -> None:
        self.workdir.cleanup()
