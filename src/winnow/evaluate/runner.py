"""`winnow evaluate --data TEST_DIR --weights MODEL`: per-class scores on an image folder.

Every file is decoded from disk with the checkpoint's own preprocessing (no RUN needed).
Class folders are matched by name to the checkpoint's classes; files in unknown folders and
files that can't be decoded are listed and left out, never a crash. When the checkpoint
knows its training data, test items that duplicate a training item (same pixels, or
perceptual hashes within a few bits) are reported and the scores are given twice: with
and without them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.data.inspection import decode_files
from winnow.data.io import atomic_write_bytes
from winnow.data.walk import WalkStats, iter_files
from winnow.errors import WinnowError
from winnow.evaluate.scoring import score
from winnow.inference.load import LoadedModel, load_model

BATCH = 256
NEAR_PHASH_BITS = 4  # both perceptual hashes this close = a near copy of a training item
NEAR_DHASH_BITS = 6
KEEP_PIXELS_FOR = 400  # misclassified thumbnails kept for the report (most confident first)


class EvaluateError(WinnowError, RuntimeError):
    """Evaluation can't run; the message says why."""


@dataclass
class Evaluation:
    data_dir: Path
    weights: Path
    classes: list[str]
    rows: pd.DataFrame  # one row per file: path, label, status, error, predicted, confidence…
    scores: dict[str, Any]
    scores_without_leaks: dict[str, Any] | None
    unknown_folders: dict[str, int]
    missing_classes: list[str]
    seconds: float
    pixels: dict[int, np.ndarray] = field(default_factory=dict)  # row → cache-size pixels
    model: LoadedModel | None = field(default=None, repr=False)  # for Grad-CAM in the report

    @property
    def bad_files(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"]


@dataclass
class EvaluateProgress:
    """Files decoded and scored so far, of `total`."""

    total: int
    done: int = 0
    description: str = "evaluating"


def evaluate(
    data_dir: Path,
    weights: Path,
    workers: int | None = None,
    top_k: int = 3,
    on_progress: Callable[[EvaluateProgress], None] | None = None,
) -> Evaluation:
    """Predict every file of `data_dir` (class folders) with `weights` and score the
    predictions against the folder names; a file that can't be read is a row with its
    reason, a folder the model doesn't know is counted apart."""
    started = time.perf_counter()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EvaluateError(f"{data_dir} is not a folder of class folders.")
    loaded = load_model(Path(weights))
    classes = loaded.classes
    index = {name: i for i, name in enumerate(classes)}
    items = list(iter_files(data_dir, WalkStats()))
    if not items:
        raise EvaluateError(f"{data_dir} holds no files.")
    problems = [it for it in items if it.problem]
    readable = [it for it in items if not it.problem]
    records: list[dict[str, Any]] = [
        {"path": it.path, "label": it.label, "status": it.problem[0], "error": it.problem[1]}
        for it in problems
    ]
    kept_pixels = _predict_files(readable, loaded, records, workers, top_k, on_progress)
    rows = pd.DataFrame.from_records(records)
    rows = rows.sort_values("path", kind="stable")
    rows["in_classes"] = rows["label"].isin(index)
    rows["duplicates_training"] = _duplicates_training(rows, loaded.meta)
    scored = rows[(rows["status"] == "ok") & rows["in_classes"]]
    if scored.empty:
        raise EvaluateError(
            f"No decodable test file sits in a folder named like one of the model's classes "
            f"({', '.join(classes)}). Folders found: "
            f"{', '.join(sorted(set(rows['label'].dropna()))) or 'none'}."
        )
    present = sorted(set(scored["label"]), key=index.get)
    scores = _score(scored, present, index)
    leaked = scored[scored["duplicates_training"]]
    without = None
    if not leaked.empty and len(leaked) < len(scored):
        clean = scored[~scored["duplicates_training"]]
        without = _score(clean, sorted(set(clean["label"]), key=index.get), index)
    unknown = rows[rows["label"].notna() & ~rows["in_classes"]]["label"].value_counts()
    kept_pixels = _most_confident(rows, kept_pixels)
    return Evaluation(
        data_dir=data_dir,
        weights=Path(weights),
        classes=classes,
        rows=rows,
        scores=scores,
        scores_without_leaks=without,
        unknown_folders={str(k): int(v) for k, v in unknown.items()},
        missing_classes=[c for c in classes if c not in set(scored["label"])],
        seconds=round(time.perf_counter() - started, 2),
        pixels=kept_pixels,
        model=loaded,
    )


def _predict_files(
    readable: list,
    loaded,
    records: list[dict[str, Any]],
    workers: int | None,
    top_k: int,
    on_progress: Callable[[EvaluateProgress], None] | None,
) -> dict[int, np.ndarray]:
    """Decode and predict every readable file, in batches, appending one row each to
    `records`; returns the pixels of the misclassified ones, by row number."""
    classes = loaded.classes
    index = {name: i for i, name in enumerate(classes)}
    kept_pixels: dict[int, np.ndarray] = {}
    batch_rows: list[dict[str, Any]] = []
    batch_pixels: list[np.ndarray] = []

    def flush() -> None:
        if not batch_rows:
            return
        probabilities = loaded.probabilities(np.stack(batch_pixels))
        order = np.argsort(-probabilities, axis=1)[:, :top_k]
        for row, pixels, probs, top in zip(
            batch_rows, batch_pixels, probabilities, order, strict=True
        ):
            row["predicted"] = classes[top[0]]
            row["confidence"] = float(probs[top[0]])
            row["top_k"] = [[classes[j], float(probs[j])] for j in top]
            row["true_probability"] = (
                float(probs[index[row["label"]]]) if row["label"] in index else None
            )
            number = len(records)
            records.append(row)
            if row["label"] in index and row["predicted"] != row["label"]:
                kept_pixels[number] = pixels
        batch_rows.clear()
        batch_pixels.clear()

    progress = EvaluateProgress(total=len(readable))
    for row, pixels, _detail in decode_files(
        readable, loaded.scan_config(workers), file_hash=False
    ):
        progress.done += 1
        if on_progress is not None and (progress.done % 64 == 0 or progress.done == progress.total):
            on_progress(progress)
        if pixels is None or row.get("status") != "ok":
            records.append(_bad_row(row))
            continue
        batch_rows.append(_good_row(row))
        batch_pixels.append(pixels)
        if len(batch_rows) >= BATCH:
            flush()
    flush()
    return kept_pixels


def _good_row(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("path", "label", "status", "pixel_sha256", "phash", "dhash", "width", "height")
    return {k: row.get(k) for k in keep} | {"error": None}


def _bad_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": row["path"],
        "label": row.get("label"),
        "status": row.get("status", "corrupt"),
        "error": row.get("error"),
    }


def _score(scored: pd.DataFrame, present: list[str], index: dict[str, int]) -> dict[str, Any]:
    """Scores over the classes the folder holds; predictions of other classes count as errors."""
    known = {name: i for i, name in enumerate(present)}
    y_true = scored["label"].map(known).to_numpy()
    y_pred = scored["predicted"].map(lambda p: known.get(p, -1)).to_numpy()
    return score(y_true, y_pred, present)


def _most_confident(rows: pd.DataFrame, pixels: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Keep thumbnails only for the most confident mistakes (bounded memory)."""
    if len(pixels) <= KEEP_PIXELS_FOR:
        return pixels
    confidence = rows.loc[list(pixels), "confidence"].sort_values(ascending=False)
    return {i: pixels[i] for i in confidence.index[:KEEP_PIXELS_FOR]}


def _duplicates_training(rows: pd.DataFrame, meta: dict[str, Any]) -> pd.Series:
    """True where a test file has the same pixels as a training file, or both perceptual
    hashes within a few bits of one (the checkpoint stores the training folder's hashes)."""
    hashes = meta.get("train_hashes")
    result = pd.Series(False, index=rows.index)
    ok = rows["status"] == "ok"
    if not hashes or not ok.any():
        return result
    exact = set(hashes["pixel_sha256"])
    result[ok] = rows.loc[ok, "pixel_sha256"].map(lambda h: str(h)[:16] in exact)
    train_p = np.asarray(hashes["phash"], dtype=np.int64).view(np.uint64)
    train_d = np.asarray(hashes.get("dhash", []), dtype=np.int64).view(np.uint64)
    if len(train_p) == 0 or len(train_d) != len(train_p):
        return result
    test_p = rows.loc[ok, "phash"].fillna(0).astype(np.int64).to_numpy().view(np.uint64)
    test_d = rows.loc[ok, "dhash"].fillna(0).astype(np.int64).to_numpy().view(np.uint64)
    near = np.zeros(len(test_p), dtype=bool)
    for start in range(0, len(test_p), 256):
        p = np.bitwise_count(test_p[start : start + 256, None] ^ train_p[None, :])
        d = np.bitwise_count(test_d[start : start + 256, None] ^ train_d[None, :])
        near[start : start + 256] = ((p <= NEAR_PHASH_BITS) & (d <= NEAR_DHASH_BITS)).any(axis=1)
    result[ok] = result[ok].to_numpy() | near
    return result


def write_outputs(evaluation: Evaluation, out_dir: Path, explain: int = 24) -> dict[str, Path]:
    """metrics.json, confusion_matrix.png, report.html (+ explain/ Grad-CAM PNGs)."""
    from winnow.evaluate.report import calibration_png, confusion_png, write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = evaluation.scores
    calibration = calibration_of(evaluation)
    metrics = {
        "data": str(evaluation.data_dir),
        "weights": str(evaluation.weights),
        "seconds": evaluation.seconds,
        "files": int(len(evaluation.rows)),
        "scored": scores["items"],
        "accuracy": scores["accuracy"],
        "micro_f1": scores["micro_f1"],
        "macro_f1": scores["macro_f1"],
        "weighted_f1": scores["weighted_f1"],
        "classification_report": scores["report"],
        "calibration": calibration,
        "confusion": {"labels": scores["labels"], "matrix": scores["confusion"]},
        "unknown_folders": evaluation.unknown_folders,
        "missing_classes": evaluation.missing_classes,
        "bad_files": evaluation.bad_files[["path", "status", "error"]].to_dict("records"),
        "duplicates_of_training": int(
            (evaluation.rows["duplicates_training"] & evaluation.rows["in_classes"]).sum()
        ),
        "without_duplicates_of_training": (
            {
                k: evaluation.scores_without_leaks[k]
                for k in ("items", "micro_f1", "macro_f1", "weighted_f1", "report")
            }
            if evaluation.scores_without_leaks
            else None
        ),
    }
    paths = {
        "metrics": out_dir / "metrics.json",
        "confusion": out_dir / "confusion_matrix.png",
        "calibration": out_dir / "calibration.png",
        "report": out_dir / "report.html",
    }
    atomic_write_bytes(
        paths["metrics"], json.dumps(metrics, indent=2, ensure_ascii=False, default=float).encode()
    )
    confusion_png(scores, paths["confusion"])
    calibration_png(calibration, paths["calibration"])
    columns = ["path", "label", "status", "predicted", "confidence", "duplicates_training"]
    present = [c for c in columns if c in evaluation.rows]
    evaluation.rows[present].to_csv(out_dir / "predictions.csv", index=False)
    write_report(evaluation, paths["report"], out_dir, explain, calibration)
    return paths


def calibration_of(evaluation: Evaluation) -> dict[str, Any]:
    """ECE, the reliability table and the threshold-vs-coverage curve of the scored files
    (confidence = the top class's calibrated probability)."""
    from winnow.evaluate.calibration import coverage_curve, reliability

    rows = evaluation.rows
    scored = rows[(rows["status"] == "ok") & rows["in_classes"]]
    confidence = scored["confidence"].to_numpy(dtype=float)
    correct = (scored["predicted"] == scored["label"]).to_numpy()
    table = reliability(confidence, correct)
    model = evaluation.model
    return {
        "ece": table["ece"],
        "temperature": model.temperature if model is not None else 1.0,
        "confidence_map": model.confidence_map if model is not None else None,
        "items": int(len(scored)),
        "bins": table["bins"],
        "coverage": coverage_curve(confidence, correct),
    }
