"""Load a trained classifier (checkpoint or ONNX) and turn images into probabilities.

A checkpoint is self-contained: model name and parameters, class names in order and the
preprocessing live in its `winnow` entry, so nothing else is needed to use it. Loading
does not import Lightning. With an `.onnx` file torch is not imported at all.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.config import ScanConfig
from winnow.errors import WinnowError
from winnow.inference.calibrated import confidence_map_of, map_confidence, softmax
from winnow.inference.preprocess import Preprocessing, resize_square, to_input


def let_idle_threads_sleep() -> None:
    """Call before torch is imported, in inference-only processes: torch's OpenMP threads
    then sleep when idle instead of spinning, which leaves the CPU to the decode workers
    that run beside the model (`evaluate` is ~5 % faster on 2 cores). A value the user set
    in OMP_WAIT_POLICY wins; once torch is loaded this does nothing."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def tta_logits(model, batch, tta: str):
    """The model's logits on a normalised NCHW batch under test-time augmentation `tta`:
    with `flip`, the mean of the logits of the batch and of its mirror image. Training's
    validation, inference and the ONNX graph all use this one rule."""
    logits = model(batch)
    if tta == "flip":
        logits = (logits + model(batch.flip(3))) / 2
    return logits


def model_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The model card's summary from a checkpoint's or ONNX file's `winnow` metadata."""
    summary: dict[str, Any] = {
        "model": meta.get("model"),
        "model_params": meta.get("model_params", {}),
        "trained_from_scratch": True,
        "tta": meta.get("tta", "none"),
        "temperature": float(meta.get("temperature", 1.0)),
        "confidence_map": confidence_map_of(meta),
    }
    summary |= meta.get("summary", {})  # an ONNX file carries its checkpoint's summary
    counts = meta.get("data", {}).get("train_counts")
    if counts:
        summary["train_items"] = int(sum(counts.values()))
    history = meta.get("history") or []
    if history:
        last = history[-1]
        summary["epochs"] = int(last.get("epoch", 0))
        if "val_macro_f1" in last:
            summary["val_macro_f1"] = round(float(last["val_macro_f1"]), 4)
        if "val_acc" in last:
            summary["val_micro_f1"] = round(float(last["val_acc"]), 4)
    return summary


class WeightsError(WinnowError, ValueError):
    """The weights file can't be used; the message says why."""


@dataclass
class LoadedModel:
    """A classifier ready for inference, torch- or onnxruntime-backed."""

    classes: list[str]
    preprocessing: Preprocessing
    meta: dict[str, Any]
    _torch_model: Any = None  # eager, for Grad-CAM
    _onnx_session: Any = None
    _fast_model: Any = None  # the same weights folded for inference

    @property
    def kind(self) -> str:
        return "onnx" if self._onnx_session is not None else "torch"

    @property
    def torch_model(self):
        if self._torch_model is None:
            raise WeightsError("This needs a PyTorch checkpoint (.ckpt), not an ONNX file.")
        return self._torch_model

    def scan_config(self, workers: int | None = None) -> ScanConfig:
        """Decode settings that give the pixels this model was trained on."""
        return ScanConfig.matching(
            self.preprocessing.cache_size, self.preprocessing.background, workers
        )

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted on the validation split at training (1.0: none)."""
        return float(self.meta.get("temperature", 1.0))

    @property
    def confidence_map(self) -> dict[str, float]:
        """Slope and bias of the confidence map fitted on validation after the temperature
        (evaluate.calibration; the identity for checkpoints without one)."""
        return confidence_map_of(self.meta)

    @property
    def tta(self) -> str:
        """Test-time augmentation the checkpoint declares: `flip` or `none`."""
        return str(self.meta.get("tta", "none"))

    def probabilities(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(n, s, s, 3) uint8 at cache size or image size → (n, classes) calibrated
        probabilities: softmax(logits / temperature), then the confidence map (both fitted
        on validation; evaluate.calibration)."""
        probabilities = softmax(self.logits(pixels, batch_size), self.temperature)
        return map_confidence(probabilities, **self.confidence_map)

    def logits(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(n, s, s, 3) uint8 → (n, classes) logits before temperature scaling, averaged
        over the checkpoint's test-time augmentation."""
        out = np.empty((len(pixels), len(self.classes)), dtype=np.float32)
        for start in range(0, len(pixels), batch_size):
            chunk = resize_square(pixels[start : start + batch_size], self.preprocessing.image_size)
            out[start : start + len(chunk)] = self._forward(chunk)
        return out

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        """(n, s, s, 3) uint8 at image size → logits averaged over the test-time
        augmentation (an exported ONNX graph holds its augmentation inside)."""
        if self._onnx_session is not None:
            (logits,) = self._onnx_session.run(
                None, {"images": to_input(pixels, self.preprocessing)}
            )
            return logits
        import torch

        prep = self.preprocessing
        mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
        with torch.inference_mode():
            # NHWC uint8 seen as NCHW is channels-last already; the same arithmetic as
            # to_input (÷255, −mean, ÷std) without numpy's NCHW float copies
            batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
            batch = batch.div_(255).sub_(mean).div_(std)
            model = self._torch_model if self._fast_model is None else self._fast_model
            return tta_logits(model, batch, self.tta).float().numpy()


def load_model(path: Path) -> LoadedModel:
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path} does not exist.")
    if path.is_dir():  # a training folder: its best checkpoint
        if (path / "best.ckpt").exists():
            path = path / "best.ckpt"
        else:
            raise WeightsError(f"{path} is a folder without best.ckpt.")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    return _load_checkpoint(path)


WEIGHTS_HINT = (
    "Weights are a best.ckpt or last.ckpt written by 'winnow train', the training folder "
    "that holds them (RUN/train/NAME), or an .onnx file written by 'winnow export'."
)


def read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise WeightsError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a pickle
        from winnow.data.decode import describe_content

        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint (its content is "
            f"{describe_content(head)}). {WEIGHTS_HINT}"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types for a bad file
        # torch's own message advises loading with weights_only=False: never echoed
        raise WeightsError(
            f"{path} looks like a PyTorch file but cannot be loaded safely: it is damaged, "
            "or holds objects other than tensors and plain values (winnow never runs code "
            f"from a weights file). {WEIGHTS_HINT}"
        ) from None
    if not isinstance(checkpoint, dict) or "winnow" not in checkpoint:
        raise WeightsError(
            f"{path} was not written by 'winnow train' (no model description inside)."
        )
    return checkpoint


def _load_checkpoint(path: Path) -> LoadedModel:
    import torch

    from winnow.models import create_model

    checkpoint = read_checkpoint(path)
    meta = checkpoint["winnow"]
    model = create_model(meta["model"], len(meta["classes"]), **meta["model_params"])
    prefix = meta.get("weights_prefix", "model.")  # "ema.module." for averaged weights
    weights = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    model.load_state_dict(weights)
    # channels-last runs convolutions ~35 % faster on CPU here (oneDNN); same numbers
    model = model.to(memory_format=torch.channels_last).eval()
    return LoadedModel(
        list(meta["classes"]),
        Preprocessing.from_dict(meta["preprocessing"]),
        meta,
        _torch_model=model,
        _fast_model=_fold_batch_norm(model),
    )


def _fold_batch_norm(model):
    """A copy of `model` for inference with every Conv→BatchNorm pair folded into one
    convolution (torch.fx; ~15 % faster here, outputs equal to ~1e-6), or `model` itself
    when the graph can't be traced (a plug-in model with data-dependent control flow)."""
    import torch
    from torch.fx.experimental.optimization import fuse

    try:
        folded = fuse(model)  # traces and folds a copy; `model` is left as it is
    except Exception:  # noqa: BLE001 - tracing is an optimisation, eager always works
        return model
    return folded.to(memory_format=torch.channels_last).eval()


def _load_onnx(path: Path) -> LoadedModel:
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path} is not a readable ONNX model: {exc}") from None
    props = session.get_modelmeta().custom_metadata_map
    if "winnow" not in props:
        raise WeightsError(f"{path} was not exported by 'winnow export' (no metadata).")
    meta = json.loads(props["winnow"])
    return LoadedModel(
        list(meta["classes"]),
        Preprocessing.from_dict(meta["preprocessing"]),
        meta,
        _onnx_session=session,
    )
