"""Calibrated probabilities at inference: softmax at the checkpoint's temperature, then its
confidence map (both fitted on validation at training: evaluate.calibration, where the
method is described). Neither changes which class wins or the order of the others."""

from __future__ import annotations

import numpy as np

IDENTITY_MAP = {"slope": 1.0, "bias": 0.0}
_EDGE = 1e-6


def confidence_map_of(meta: dict) -> dict[str, float]:
    """The confidence map a checkpoint's or ONNX file's `winnow` metadata declares; the
    identity for those trained before the map."""
    found = meta.get("confidence_map") or {}
    return {
        "slope": float(found.get("slope", IDENTITY_MAP["slope"])),
        "bias": float(found.get("bias", IDENTITY_MAP["bias"])),
    }


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EDGE, 1 - _EDGE)
    return np.log(p) - np.log1p(-p)


def map_confidence(probabilities: np.ndarray, slope: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """Probabilities whose winning class has the mapped confidence: for each item, those of
    its logits at the one temperature that gives the winner sigmoid(slope · logit(c) +
    bias), so the order of the classes is kept. The identity map returns its input."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if (slope, bias) == (1.0, 0.0) or probabilities.size == 0:
        return probabilities
    n, k = probabilities.shape
    z = 1 / (1 + np.exp(-(slope * logit(probabilities.max(axis=1)) + bias)))
    target = np.clip(z, 1 / k + _EDGE, 1 - _EDGE)  # reachable by some temperature
    log_p = np.log(np.clip(probabilities, 1e-300, None))
    log_p -= log_p.max(axis=1, keepdims=True)  # the winner at 0, the others below
    # the winner's share at inverse temperature b is 1 / sum(exp(b · log_p)): rises with b
    low, high = np.full(n, 1e-8), np.full(n, 1e6)
    for _ in range(60):  # bisection on log b, to well below 1e-6 in the share
        middle = np.sqrt(low * high)
        share = 1 / np.exp(middle[:, None] * log_p).sum(axis=1)
        too_low = share < target
        low = np.where(too_low, middle, low)
        high = np.where(too_low, high, middle)
    scaled = np.exp(np.sqrt(low * high)[:, None] * log_p)
    return scaled / scaled.sum(axis=1, keepdims=True)
