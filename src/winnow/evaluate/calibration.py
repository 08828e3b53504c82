"""Whether a model's confidence means what it says: temperature scaling, expected
calibration error, the reliability table and the threshold-vs-coverage curve (numpy only).

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T fitted on the
validation split by minimising the negative log-likelihood; it never changes which class
wins, only how sure the model says it is.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimising the NLL of softmax(logits / T); 1.0 without data."""
    logits, targets = np.asarray(logits), np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: nll(logits, targets, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(np.exp(result.x)), 4)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Equal-width confidence bins: items, mean confidence and accuracy per bin, and the
    expected calibration error (items-weighted |accuracy - confidence|)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        if n:
            conf, acc = float(confidence[members].mean()), float(correct[members].mean())
            ece += n / len(confidence) * abs(acc - conf)
        else:
            conf = acc = float("nan")
        table.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "items": n,
             "confidence": conf, "accuracy": acc}
        )  # fmt: skip
    return {"ece": round(ece, 4) if len(confidence) else float("nan"), "bins": table}


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, thresholds=None) -> list[dict]:
    """For each threshold: the share of items kept (confidence ≥ threshold) and the
    accuracy of those kept."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    thresholds = np.round(np.linspace(0, 0.95, 20), 2) if thresholds is None else thresholds
    curve = []
    for t in thresholds:
        kept = confidence >= t
        n = int(kept.sum())
        curve.append(
            {"threshold": float(t), "coverage": n / max(1, len(confidence)),
             "accuracy": float(correct[kept].mean()) if n else float("nan"), "kept": n}
        )  # fmt: skip
    return curve
