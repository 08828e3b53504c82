"""`winnow serve`: a REST API (FastAPI + uvicorn) and a demo page for a trained model.
With an `.onnx` model torch is never imported, so the `serve` extra alone runs it."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "ServeSettings": "settings",
    "ServeError": "settings",
    "Predictor": "predictor",
    "create_app": "app",
    "serve": "app",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
