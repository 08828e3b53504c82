"""What averaging several trained checkpoints would give on a test folder: each
checkpoint's macro- and micro-F1, then every ensemble of 2 or more of them (the mean of
their calibrated probabilities). An upper bound for spending a training budget on several
networks instead of one: each member here had the whole budget.

    python benchmarks/ensemble_probe.py TEST_DIR A.ckpt B.ckpt [C.ckpt ...]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from winnow.inference.load import load_model
from winnow.inference.predict import decode_path, expand_paths, prepare_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", type=Path)
    parser.add_argument("weights", type=Path, nargs="+")
    args = parser.parse_args()
    prepare_worker()
    files = expand_paths([args.test])
    truth = np.array([path.relative_to(args.test).parts[0] for path in files])
    labels = sorted(set(truth))
    probabilities, classes = [], None
    for weights in args.weights:
        model = load_model(weights)
        decoded = [decode_path(path, model.scan_config()) for path in files]
        keep = np.array([d.pixels is not None for d in decoded])
        if not keep.all():
            raise SystemExit(f"{(~keep).sum()} test files could not be decoded")
        probabilities.append(model.probabilities(np.stack([d.pixels for d in decoded])))
        if classes is not None and model.classes != classes:
            raise SystemExit("the checkpoints have different classes")
        classes = model.classes

    def scores(members: tuple[int, ...]) -> str:
        predicted = np.array(classes)[sum(probabilities[i] for i in members).argmax(axis=1)]
        macro = f1_score(truth, predicted, average="macro", labels=labels)
        micro = f1_score(truth, predicted, average="micro")
        return f"{macro:.3f} / {micro:.3f}"

    print(f"{len(files)} files; macro-F1 / micro-F1")
    for size in range(1, len(args.weights) + 1):
        for members in itertools.combinations(range(len(args.weights)), size):
            names = " + ".join(args.weights[i].parent.name for i in members)
            print(f"{names}: {scores(members)}")


if __name__ == "__main__":
    main()
