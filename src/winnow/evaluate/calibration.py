"""Whether a model's confidence means what it says: temperature scaling, the confidence
map, expected calibration error, the reliability table and the threshold-vs-coverage
curve (numpy and scipy).

Calibration is fitted on the validation split in two steps, and neither changes which
class wins or the order of the others:

1. Temperature scaling (Guo et al. 2017): the logits divided by one scalar T, fitted by
   minimising the negative log-likelihood.
2. The confidence map: the winning class's probability c becomes
   sigmoid(slope · logit(c) + bias), fitted by the log-loss of "the prediction was right"
   (Platt scaling of the top-label confidence; Gupta & Ramdas 2021 on top-label
   calibration). A temperature scales every confidence the same way; a model can be sure
   of too much in the middle and too little at the top at once, which one T cannot
   correct and this map can. Each item's probabilities are then those of the logits at
   the one temperature that gives its winner the mapped confidence, so they still sum to
   one and keep their order. With too few validation items, or too few mistakes among
   them, the map stays the identity.
"""

from __future__ import annotations

import numpy as np

from winnow.inference.calibrated import IDENTITY_MAP, logit, map_confidence, softmax

# re-exported: how inference applies what is fitted here
__all__ = ["IDENTITY_MAP", "map_confidence", "softmax"]

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
# the temperature is fitted only on this many validation items with at least this many
# mistakes: without mistakes the likelihood is best at the smallest temperature allowed,
# which makes every later prediction near-certain
TEMPERATURE_MIN_ITEMS = 30
TEMPERATURE_MIN_WRONG = 3
# the confidence map is fitted only on this many validation items, of which at least
# MAP_MIN_EACH right and as many wrong; its slope is kept in MAP_SLOPE_RANGE (monotone)
MAP_MIN_ITEMS = 100
MAP_MIN_EACH = 10
MAP_SLOPE_RANGE = (0.2, 5.0)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimising the NLL of softmax(logits / T); 1.0 when the
    items can't support it (under TEMPERATURE_MIN_ITEMS, or under TEMPERATURE_MIN_WRONG
    mistakes)."""
    logits, targets = np.asarray(logits), np.asarray(targets, dtype=np.int64)
    if len(targets) < TEMPERATURE_MIN_ITEMS:
        return 1.0
    if (logits.argmax(axis=1) != targets).sum() < TEMPERATURE_MIN_WRONG:
        return 1.0
    from scipy.optimize import minimize_scalar

    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: nll(logits, targets, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(np.exp(result.x)), 4)


def fit_confidence_map(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Slope and bias of the confidence map (module docstring) fitted on temperature-scaled
    validation probabilities; the identity map when the items can't support it."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) < MAP_MIN_ITEMS:
        return dict(IDENTITY_MAP)
    right = probabilities.argmax(axis=1) == targets
    if min(right.sum(), (~right).sum()) < MAP_MIN_EACH:
        return dict(IDENTITY_MAP)
    x = logit(probabilities.max(axis=1))

    def log_loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * x + params[1]
        loss = np.logaddexp(0, z) - right * z
        residual = 1 / (1 + np.exp(-z)) - right
        return float(loss.mean()), np.array([(residual * x).mean(), residual.mean()])

    from scipy.optimize import minimize

    result = minimize(
        log_loss,
        np.array([1.0, 0.0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[MAP_SLOPE_RANGE, (-10.0, 10.0)],
    )
    if not result.success:
        return dict(IDENTITY_MAP)
    return {"slope": round(float(result.x[0]), 4), "bias": round(float(result.x[1]), 4)}


def fit_calibration(logits: np.ndarray, targets: np.ndarray) -> tuple[float, dict[str, float]]:
    """Both steps, as `winnow train` fits them on validation: the temperature on the
    logits, then the confidence map on the temperature-scaled probabilities."""
    temperature = fit_temperature(logits, targets)
    return temperature, fit_confidence_map(softmax(logits, temperature), targets)


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
