"""`winnow export-onnx MODEL out.onnx`: a dynamic-batch ONNX model that carries
its classes, preprocessing and softmax temperature as metadata, checked against PyTorch
with onnxruntime. The checkpoint's test-time augmentation is part of the graph: its
`logits` output is already averaged over the image and its mirror image when the
checkpoint declares `tta: flip`; probabilities are softmax(logits / temperature), then the
confidence map (`confidence_map`: slope, bias; evaluate.calibration.map_confidence)."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.data.io import atomic_output
from winnow.inference.load import load_model, model_summary, tta_logits

OPSET = 18


def _with_tta(model, tta: str):
    """`model`, or with `tta: flip` a module averaging its logits on x and on x mirrored."""
    import torch

    if tta != "flip":
        return model

    class FlipAveraged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return tta_logits(self.model, images, "flip")

    return FlipAveraged().eval()


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    batch_sizes: tuple[int, ...]


def export_onnx(weights: Path, out: Path, seed: int = 0) -> ExportResult:
    import onnx
    import torch

    # the exporter logs a warning per torchvision operator it can't find; we don't use them
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.")
    loaded = load_model(Path(weights))
    model = _with_tta(loaded.torch_model, loaded.tta)
    size = loaded.preprocessing.image_size
    example = torch.randn(2, 3, size, size)  # a dynamic batch needs an example batch >= 2
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
        opset_version=OPSET,
        optimize=True,
        verbose=False,
    )
    proto = program.model_proto
    meta = {
        k: loaded.meta[k] for k in ("format", "model", "model_params", "classes", "preprocessing")
    } | {
        "temperature": loaded.temperature,
        "confidence_map": loaded.confidence_map,
        "tta": loaded.tta,
        "tta_in_graph": True,
        "summary": model_summary(loaded.meta),
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = "winnow", json.dumps(meta)
    with atomic_output(Path(out)) as tmp_path:
        onnx.save(proto, str(tmp_path))
    diff = parity(Path(out), model, size, seed)
    return ExportResult(Path(out), diff, (1, 7))


def parity(onnx_path: Path, model, size: int, seed: int) -> float:
    """Largest |logit difference| between PyTorch and onnxruntime over batches of 1 and 7."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in (1, 7):
        inputs = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(inputs)).numpy()
        (got,) = session.run(None, {"images": inputs})
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst
