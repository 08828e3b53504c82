"""The Keras notebook baseline, run in its own environment beside winnow on the same data.

What people write today: `image_dataset_from_directory` on the class folders (64 px,
batch 32, a 10 % validation split), the Keras tutorial's small CNN (rescale, three
conv/max-pool blocks, dense 128, dropout), Adam, cross-entropy, no class balancing; trained
until the time budget is spent, the weights of the best validation epoch kept. It is scored
with sklearn's classification_report on the same clean test folder as winnow.

It must not import winnow or torch: it runs in `.bench/keras-venv` (tensorflow-cpu and
scikit-learn only), which `bench_train.keras_baseline` creates on first use.

Usage: .bench/keras-venv/bin/python benchmarks/keras_baseline.py TRAIN_DIR TEST_DIR OUT.json
       [--minutes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import classification_report, f1_score  # noqa: E402

SIZE, BATCH = 64, 32


class TimeBudget(tf.keras.callbacks.Callback):
    """Stop after the epoch that crosses the budget (the notebook has no budget of its own)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.started = seconds, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        elapsed = time.perf_counter() - self.started
        per_epoch = elapsed / (epoch + 1)
        if elapsed + per_epoch > self.seconds:
            self.model.stop_training = True


def tutorial_cnn(classes: int) -> tf.keras.Model:
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Input((SIZE, SIZE, 3)),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(classes),
        ]
    )


def run(train_dir: Path, test_dir: Path, minutes: float, seed: int) -> dict:
    tf.keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    train, val = tf.keras.utils.image_dataset_from_directory(
        train_dir,
        validation_split=0.1,
        subset="both",
        seed=seed,
        image_size=(SIZE, SIZE),
        batch_size=BATCH,
    )
    classes = train.class_names
    model = tutorial_cnn(len(classes))
    model.compile(
        optimizer="adam",
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    best = tf.keras.callbacks.ModelCheckpoint(
        str(Path(os.environ.get("TMPDIR", "/tmp")) / f"keras-best-{os.getpid()}.weights.h5"),
        monitor="val_accuracy",
        save_best_only=True,
        save_weights_only=True,
    )
    budget = minutes * 60 - (time.perf_counter() - started)
    history = model.fit(
        train.cache().shuffle(1000).prefetch(tf.data.AUTOTUNE),  # as the tutorial does
        validation_data=val.cache().prefetch(tf.data.AUTOTUNE),
        epochs=10_000,
        callbacks=[TimeBudget(budget), best],
        verbose=0,
    )
    model.load_weights(best.filepath)
    train_seconds = time.perf_counter() - started
    test = tf.keras.utils.image_dataset_from_directory(
        test_dir, image_size=(SIZE, SIZE), batch_size=BATCH, shuffle=False, class_names=classes
    )
    y_true = np.concatenate([labels.numpy() for _, labels in test])
    y_pred = model.predict(test, verbose=0).argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    names = [classes[i] for i in present]
    return {
        "seed": seed,
        "train_seconds": round(train_seconds, 1),
        "epochs": len(history.history["loss"]),
        "test_items": int(len(y_true)),
        "test_macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro")),
        "test_micro_f1": float(f1_score(y_true, y_pred, labels=present, average="micro")),
        "report": classification_report(
            y_true, y_pred, labels=present, target_names=names, zero_division=0
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        result = run(args.train_dir, args.test_dir, args.minutes, args.seed)
    except Exception as exc:  # noqa: BLE001 - the baseline's failure is a result too
        result = {"seed": args.seed, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    args.out.write_text(json.dumps(result, indent=2))
    print(result.get("report") or result["error"])


if __name__ == "__main__":
    main()
