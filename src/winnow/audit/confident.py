"""Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021): which given labels out-of-fold predicted
probabilities contradict, and how many of them to believe.

1. Per-class thresholds: t_j = the mean probability of class j over the items labelled j
   (the model's own self-confidence on that class).
2. The confident joint C[i, j]: items labelled i whose probability of j reaches t_j
   (the largest such j when several do), counted per (given, likely true) pair; then
   calibrated so each row sums to the class's item count (section 3.1, eq. 3).
3. Prune by noise rate (section 3.2, method 4 "C_confusion ∩ prune by noise rate"): for
   each given class i and other class j, the round(C[i, j]) items labelled i with the
   largest margin p_j - p_i are label issues, keeping at least `min_per_class` items
   of every class.
4. An item the model predicts as its given label (argmax) is never an issue.

The score of every item is its self-confidence p_given (lower = more likely wrong), and
the suggested label of an issue is the class it is pruned towards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelIssues:
    issues: np.ndarray  # bool per item
    suggested: np.ndarray  # int per item: the likely true class of an issue, -1 otherwise
    self_confidence: np.ndarray  # probability of the given label, per item
    thresholds: np.ndarray  # t_j per class
    joint: np.ndarray  # calibrated confident joint, (given, true) counts
    noise_estimate: float  # share of items off the joint's diagonal


def confident_joint(
    labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated joint, raw joint, thresholds). Classes without items get threshold 1."""
    n, k = probabilities.shape
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, labels, probabilities[np.arange(n), labels])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    # a probability of exactly the threshold counts (the paper's ≥); the epsilon keeps a
    # class whose every item has the same probability from missing its own items
    above = probabilities >= thresholds[None, :] - 1e-12
    masked = np.where(above, probabilities, -1.0)
    likely = masked.argmax(axis=1)
    confident = above.any(axis=1)
    raw = np.zeros((k, k), dtype=np.int64)
    np.add.at(raw, (labels[confident], likely[confident]), 1)
    row = raw.sum(axis=1, keepdims=True)
    calibrated = np.where(row > 0, raw / np.maximum(row, 1) * counts[:, None], 0.0)
    # a class no item was confident about keeps its items on the diagonal
    empty = row[:, 0] == 0
    calibrated[empty, empty] = counts[empty]
    return calibrated, raw, thresholds


def find_label_issues(
    labels: np.ndarray, probabilities: np.ndarray, min_per_class: int = 1
) -> LabelIssues:
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n, k = probabilities.shape
    joint, _, thresholds = confident_joint(labels, probabilities)
    counts = np.bincount(labels, minlength=k)
    self_confidence = probabilities[np.arange(n), labels]
    prune = np.rint(joint).astype(np.int64)
    np.fill_diagonal(prune, 0)
    issues = np.zeros(n, dtype=bool)
    suggested = np.full(n, -1, dtype=np.int64)
    for given in range(k):
        members = np.flatnonzero(labels == given)
        budget = max(0, len(members) - min_per_class)  # items of the class that may go
        wanted = prune[given]
        if wanted.sum() > budget and wanted.sum() > 0:
            wanted = np.floor(wanted * budget / wanted.sum()).astype(np.int64)
        for true in np.flatnonzero(wanted):
            margin = probabilities[members, true] - probabilities[members, given]
            top = members[np.argsort(-margin, kind="stable")[: wanted[true]]]
            fresh = top[~issues[top]]
            issues[fresh] = True
            suggested[fresh] = true
    predicted = probabilities.argmax(axis=1)
    agree = predicted == labels
    issues &= ~agree
    suggested[~issues] = -1
    # an issue pruned towards one class but predicted as another suggests the prediction
    off = issues & (probabilities[np.arange(n), suggested.clip(0)] < probabilities.max(axis=1))
    suggested[off] = predicted[off]
    off_diagonal = joint.sum() - np.trace(joint)
    return LabelIssues(
        issues=issues,
        suggested=suggested,
        self_confidence=self_confidence,
        thresholds=thresholds,
        joint=joint,
        noise_estimate=float(off_diagonal / max(counts.sum(), 1)),
    )
