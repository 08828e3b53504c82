"""What the expected calibration error (ECE) of a test folder can tell: the ECE of each
checkpoint on the folder, the ECE a perfectly calibrated model would read on a folder of
that size (its noise floor), and the ECE at the temperature fitted on the test folder itself
(the best that temperature scaling could do there; a bound, not a method).

    python benchmarks/calibration_floor.py TEST_DIR CHECKPOINT [CHECKPOINT ...] [--run RUN]

With --run (the split run the checkpoints were trained on), the calibration is fitted
again on RUN's validation split as `winnow train` fits it, and the test ECE is reported
with the temperature alone and with the temperature and the confidence map (for
checkpoints trained before the map, and to show what each step does); and, as a second
source that is not the test folder, the same two on RUN's validation split itself, fitted
on a random half and scored on the other (HALVINGS times).

The floor: each file's outcome is drawn as correct with the probability the model states
(SIMULATIONS times), so the model is calibrated by construction and any ECE measured is
binning noise on that many files. Writes .bench/results/calibration_floor.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from winnow.data.cache import PixelCache
from winnow.data.decode import decode_file
from winnow.data.manifest import read_manifest
from winnow.evaluate.calibration import (
    fit_calibration,
    fit_temperature,
    map_confidence,
    reliability,
    softmax,
)
from winnow.inference.load import LoadedModel, load_model
from winnow.training.data import load_pixels, select_rows

SIMULATIONS = 1000
HALVINGS = 20
RESULTS = Path(".bench/results/calibration_floor.json")


def labelled_logits(test_dir: Path, model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """Logits (before temperature) and class indices of the readable files of the folder's
    classes that the model knows."""
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
    return model.logits(np.stack(pixels)), np.array(targets)


def ece_at(
    logits: np.ndarray, targets: np.ndarray, temperature: float, confidence_map=None
) -> float:
    probabilities = map_confidence(softmax(logits, temperature), **(confidence_map or {}))
    confidence = probabilities.max(axis=1)
    return reliability(confidence, probabilities.argmax(axis=1) == targets)["ece"]


def validation_logits(run: Path, model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """Logits and class indices of RUN's validation split, as `winnow train` calibrates on."""
    rows = select_rows(read_manifest(run), True)
    if rows.classes != model.classes:
        raise SystemExit(f"the checkpoint was not trained on {run}: its classes differ")
    images = load_pixels(PixelCache(run), rows.frames["val"], model.preprocessing.image_size)
    return model.logits(images.permute(0, 2, 3, 1).numpy()), rows.frames["val"]["target"].to_numpy()


def validation_halves(logits: np.ndarray, targets: np.ndarray, seed: int = 0) -> dict:
    """Calibration fitted on a random half of the validation split, scored on the other:
    mean ECE with the temperature alone and with the map, and how often the map won."""
    rng = np.random.default_rng(seed)
    alone, mapped = [], []
    for _ in range(HALVINGS):
        order = rng.permutation(len(targets))
        fit, score = order[: len(order) // 2], order[len(order) // 2 :]
        temperature, confidence_map = fit_calibration(logits[fit], targets[fit])
        alone.append(ece_at(logits[score], targets[score], temperature))
        mapped.append(ece_at(logits[score], targets[score], temperature, confidence_map))
    return {
        "validation_halves_items": int(len(targets) - len(targets) // 2),
        "validation_halves_ece_temperature_only": round(float(np.mean(alone)), 4),
        "validation_halves_ece_with_map": round(float(np.mean(mapped)), 4),
        "validation_halves_map_better": int(sum(np.array(mapped) < np.array(alone))),
    }


def calibration_floor(test_dir: Path, checkpoint: Path, seed: int = 0, run=None) -> dict:
    model = load_model(checkpoint)
    logits, targets = labelled_logits(test_dir, model)
    temperature, confidence_map = model.temperature, model.confidence_map
    refitted = {}
    if run is not None:  # the calibration `winnow train` fits, on RUN's validation split
        val_logits, val_targets = validation_logits(run, model)
        temperature, confidence_map = fit_calibration(val_logits, val_targets)
        refitted = {
            "ece_temperature_only": ece_at(logits, targets, temperature),
            "ece_with_map": ece_at(logits, targets, temperature, confidence_map),
            **validation_halves(val_logits, val_targets),
        }
    confidence = map_confidence(softmax(logits, temperature), **confidence_map).max(axis=1)
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
        "confidence_map": confidence_map,
        "ece": ece_at(logits, targets, temperature, confidence_map),
        **refitted,
        "floor_mean": round(float(np.mean(floor)), 4),
        "floor_95th_percentile": round(float(np.quantile(floor, 0.95)), 4),
        "temperature_fitted_on_test": on_test,
        "ece_at_test_temperature": ece_at(logits, targets, on_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--run", type=Path, help="refit the calibration on RUN's validation")
    args = parser.parse_args()
    results = [
        calibration_floor(args.test_dir, checkpoint, run=args.run)
        for checkpoint in args.checkpoints
    ]
    for result in results:
        print(json.dumps(result), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
