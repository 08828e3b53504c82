"""A trained model in use: the one preprocessing path shared by training, evaluation, ONNX
and serving (preprocess), loading weights (load), `winnow predict` (predict), Grad-CAM
(explain) and ONNX export (onnx)."""

from winnow.lazy import lazy_exports

EXPORTS = {
    "Preprocessing": "preprocess",
    "LoadedModel": "load",
    "WeightsError": "load",
    "load_model": "load",
    "read_checkpoint": "load",
    "model_summary": "load",
    "Prediction": "predict",
    "write_csv": "predict",
    "explain_files": "explain",
    "grad_cam": "explain",
    "export_onnx": "onnx",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
