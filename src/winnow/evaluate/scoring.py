"""Per-class scores with scikit-learn, the same way everywhere (train card, evaluate)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """classification_report (text and dict), micro/macro/weighted F1, confusion matrix."""
    labels = list(range(len(classes)))
    kwargs = dict(labels=labels, target_names=classes, digits=3, zero_division=0)
    return {
        "items": int(len(y_true)),
        "labels": list(classes),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
        if len(y_true)
        else 0.0,
        "report_text": classification_report(y_true, y_pred, **kwargs),
        "report": classification_report(y_true, y_pred, output_dict=True, **kwargs),
        "micro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)
        ),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "weighted_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        ),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
