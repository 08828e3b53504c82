"""What the expected calibration error (ECE) of a test folder can tell: the ECE of each
checkpoint on the folder, the ECE a perfectly calibrated model would read on a folder of
that size (its noise floor), and the ECE at the temperature fitted on the test folder itself
(the best that temperature scaling could do there; a bound, not a method).

    python benchmarks/calibration_floor.py TEST_DIR CHECKPOINT [CHECKPOINT ...]

The floor: each file's outcome is drawn as correct with the probability the model states
(SIMULATIONS times), so the model is calibrated by construction and any ECE measured is
binning noise on that many files. Writes .bench/results/calibration_floor.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from winnow.data.decode import decode_file
from winnow.evaluate.calibration import fit_temperature, reliability, softmax
from winnow.inference.load import load_model

SIMULATIONS = 1000
RESULTS = Path(".bench/results/calibration_floor.json")


def labelled_logits(test_dir: Path, checkpoint: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Logits (before temperature) and class indices of the readable files of the folder's
    classes that the model knows, and the checkpoint's own temperature."""
    model = load_model(checkpoint)
    config = model.scan_config()
    pixels, targets = [], []
    for folder in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        if folder.name not in model.classes:
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            decoded = decode_file(str(path), config, fingerprints=False)
            if decoded.pixels is not None:
                pixels.append(decoded.pixels)
                targets.append(model.classes.index(folder.name))
    return model.logits(np.stack(pixels)), np.array(targets), model.temperature


def ece_at(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits, temperature)
    confidence = probabilities.max(axis=1)
    return reliability(confidence, probabilities.argmax(axis=1) == targets)["ece"]


def calibration_floor(test_dir: Path, checkpoint: Path, seed: int = 0) -> dict:
    logits, targets, temperature = labelled_logits(test_dir, checkpoint)
    confidence = softmax(logits, temperature).max(axis=1)
    rng = np.random.default_rng(seed)
    floor = [
        reliability(confidence, rng.random(len(confidence)) < confidence)["ece"]
        for _ in range(SIMULATIONS)
    ]
    on_test = fit_temperature(logits, targets)
    return {
        "checkpoint": str(checkpoint),
        "items": int(len(targets)),
        "accuracy": round(float((logits.argmax(axis=1) == targets).mean()), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "temperature": temperature,
        "ece": ece_at(logits, targets, temperature),
        "floor_mean": round(float(np.mean(floor)), 4),
        "floor_95th_percentile": round(float(np.quantile(floor, 0.95)), 4),
        "temperature_fitted_on_test": on_test,
        "ece_at_test_temperature": ece_at(logits, targets, on_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args()
    results = [calibration_floor(args.test_dir, checkpoint) for checkpoint in args.checkpoints]
    for result in results:
        print(json.dumps(result), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
