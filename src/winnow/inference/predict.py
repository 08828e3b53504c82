"""`winnow predict PATHS... --weights MODEL`: top-k labels per image, `uncertain` below a
confidence threshold, as CSV. With an `.onnx` model torch is never imported."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.data.config import ScanConfig
from winnow.data.decode import IMAGE_SUFFIXES, Decoded, decode_file, prepare_worker
from winnow.data.io import atomic_write_bytes, printable
from winnow.data.walk import WalkStats, iter_files
from winnow.inference.load import LoadedModel, load_model


@dataclass
class Prediction:
    path: str
    status: str  # ok, or why the file could not be read
    labels: list[str]
    probabilities: list[float]
    uncertain: bool | None  # None: no prediction (the file could not be read)
    error: str | None = None


def expand_paths(paths: list[Path], notes: list[str] | None = None) -> list[Path]:
    """Files as given; folders are walked as `scan` walks them (sorted, hidden files
    skipped, link loops broken) for files named like images, broken links included so that
    each gets its row. What the walk skipped is appended to `notes`."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            stats = WalkStats()
            found += [
                Path(f.abspath)
                for f in iter_files(path, stats)
                if Path(f.abspath).suffix.lower() in IMAGE_SUFFIXES
            ]
            if notes is not None:
                notes += [f"{printable(str(path))}: {note}" for note in stats.notes]
        else:
            found.append(path)
    return found


def decode_path(path: Path, config: ScanConfig) -> Decoded:
    """One file → pixels, or a status and a reason in `scan`'s wording (a missing file is
    `missing`, a link to nothing `unreadable`)."""
    if not Path(path).exists():
        if Path(path).is_symlink():
            return Decoded("unreadable", "broken symbolic link")
        return Decoded("missing", "no such file")
    return decode_file(str(path), config, fingerprints=False)


def rank(
    loaded: LoadedModel,
    names: list[str],
    decoded: list[Decoded],
    threshold: float = 0.0,
    top_k: int = 3,
) -> list[Prediction]:
    """Decoded files → one `Prediction` each: the top-k calibrated classes, `uncertain` when
    the first is under `threshold`; a file without pixels keeps its status and reason.
    `predict` and `winnow serve` both answer through this."""
    top_k = max(1, min(top_k, len(loaded.classes)))
    good = [i for i, d in enumerate(decoded) if d.pixels is not None]
    probabilities = (
        loaded.probabilities(np.stack([decoded[i].pixels for i in good])) if good else []
    )
    by_index = dict(zip(good, probabilities, strict=True))
    results: list[Prediction] = []
    for i, name in enumerate(names):
        if i not in by_index:
            results.append(Prediction(name, decoded[i].status, [], [], None, decoded[i].error))
            continue
        probs = by_index[i]
        top = np.argsort(-probs)[:top_k]
        results.append(
            Prediction(
                name,
                "ok",
                [loaded.classes[j] for j in top],
                [float(probs[j]) for j in top],
                uncertain=bool(probs[top[0]] < threshold),
            )
        )
    return results


def predict(
    paths: list[Path],
    weights: Path | LoadedModel,
    threshold: float = 0.0,
    top_k: int = 3,
    batch_size: int = 64,
    notes: list[str] | None = None,
) -> list[Prediction]:
    """Every file of `paths` (folders walked as `scan` walks them) → one `Prediction`;
    what the walk skipped (link loops, unlistable folders) is appended to `notes`."""
    loaded = weights if isinstance(weights, LoadedModel) else load_model(Path(weights))
    prepare_worker()
    config = loaded.scan_config()
    results: list[Prediction] = []
    files = expand_paths(paths, notes)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        names = [printable(str(p)) for p in chunk]
        results += rank(loaded, names, [decode_path(p, config) for p in chunk], threshold, top_k)
    return results


def csv_header(top_k: int) -> list[str]:
    """path, status, prediction, confidence, uncertain, then prediction_k, confidence_k for
    the k-th most probable class (k = 2..top_k), then error: the names `winnow serve`'s
    JSON answer uses for the first."""
    header = ["path", "status", "prediction", "confidence", "uncertain"]
    for k in range(2, top_k + 1):
        header += [f"prediction_{k}", f"confidence_{k}"]
    return [*header, "error"]


def to_csv(predictions: list[Prediction], top_k: int) -> str:
    """One row per file; an unreadable file has its status and error and empty predictions."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_header(top_k))
    for p in predictions:
        uncertain = "" if p.uncertain is None else p.uncertain
        row = [p.path, p.status]
        for k in range(top_k):
            has = k < len(p.labels)
            row += [p.labels[k] if has else "", f"{p.probabilities[k]:.4f}" if has else ""]
            if k == 0:
                row.append(uncertain)
        row.append(p.error or "")
        writer.writerow(row)
    return buffer.getvalue()


def write_csv(predictions: list[Prediction], top_k: int, out: Path) -> None:
    atomic_write_bytes(Path(out), to_csv(predictions, top_k).encode("utf-8"))
