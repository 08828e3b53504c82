"""The model behind the server: uploads → decoded pixels → calibrated top-k, or a reason.

An upload is written to a private temporary folder under a generated name, decoded by the
same bounded-memory decoder as `scan` (`decode_file`) and deleted: a client's file name is
echoed back and never used as a path.
"""

from __future__ import annotations

import io
import os
import tempfile
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

        fd, path = tempfile.mkstemp(prefix="upload-", dir=self.workdir.name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return decode_file(path, self.config, fingerprints=False)
        finally:
            os.unlink(path)

    def predict(self, uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        from winnow.inference.predict import rank

        names = [name for name, _ in uploads]
        decoded = [self.decode(data) for _, data in uploads]
        answers = rank(self.loaded, names, decoded, self.settings.threshold, self.top_k)
        return [_as_json(answer) for answer in answers]

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


def _as_json(answer) -> dict[str, Any]:
    """A `Prediction` as `POST /predict` states it for one file."""
    if answer.status != "ok":
        return {"name": answer.path, "status": answer.status, "error": answer.error}
    top = [
        {"label": label, "probability": round(probability, 5)}
        for label, probability in zip(answer.labels, answer.probabilities, strict=True)
    ]
    return {
        "name": answer.path,
        "status": "ok",
        "prediction": top[0]["label"],
        "confidence": top[0]["probability"],
        "uncertain": answer.uncertain,
        "top": top,
    }
