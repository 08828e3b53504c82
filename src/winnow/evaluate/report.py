"""The evaluation page: scores, the confusion matrix (counts and shares), the per-class
scores as a sortable table beside sklearn's text report, calibration, the most-confused
pairs and a gallery of mistakes with Grad-CAM overlays. One self-contained HTML file
(images inlined), the `templates/report.html` template: Python prepares data only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from winnow.data.bad_files import bad_files_listing
from winnow.data.io import atomic_output, atomic_write_bytes
from winnow.data.scan import companions
from winnow.evaluate.calibration import IDENTITY_MAP
from winnow.pages import CSS, png_base64, templates, thumbnail_uri

GALLERY = 60
PAIRS = 10
PAIR_EXAMPLES = 6


CELL_TEXT_MAX_CLASSES = 150  # above this a cell (0.42 in a class) is too small for its count


def confusion_png(scores: dict[str, Any], path: Path) -> None:
    """The confusion matrix coloured by share of the true class, each non-empty cell
    labelled with its count (and, up to 25 classes, its share); the figure grows with the
    classes so every label stays readable at 8 pt, 100 classes included."""
    matrix = np.asarray(scores["confusion"], dtype=float)
    labels = scores["labels"]
    n = len(labels)
    normalized = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.42 * n + 2.5)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.subplots()
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= CELL_TEXT_MAX_CLASSES:
        size = 8 if n <= 25 else 6.5
        for i, j in zip(*np.nonzero(matrix), strict=True):
            text = f"{int(matrix[i, j])}"
            if n <= 25:
                text += "\n" + f"{normalized[i, j]:.2f}".lstrip("0")
            colour = "white" if normalized[i, j] > 0.55 else "#223"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=colour,
                    linespacing=0.9)  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true class")
    what = "count and share" if n <= 25 else "count" if n <= CELL_TEXT_MAX_CLASSES else "colour"
    ax.set_title(f"confusion matrix ({scores['items']} items; cells: {what} of the true class)")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def calibration_png(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagram (accuracy against confidence per bin, with the item counts) and
    the threshold-vs-coverage curve (share kept and accuracy of what is kept)."""
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    bins = [b for b in calibration["bins"] if b["items"]]
    centres = [(b["low"] + b["high"]) / 2 for b in calibration["bins"]]
    width = calibration["bins"][0]["high"] - calibration["bins"][0]["low"]
    accuracy = [b["accuracy"] if b["items"] else 0 for b in calibration["bins"]]
    left.bar(centres, accuracy, width=width * 0.92, color="#4a7bd0", label="accuracy in bin")
    left.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for b in bins:
        left.annotate(str(b["items"]), ((b["low"] + b["high"]) / 2, b["accuracy"]),
                      ha="center", va="bottom", fontsize=7, color="#223")  # fmt: skip
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.08)
    left.set_xlabel("confidence (calibrated probability of the predicted class)")
    left.set_ylabel("accuracy")
    left.set_title(
        f"reliability: ECE {calibration['ece']:.3f} over {calibration['items']} items\n"
        f"temperature {calibration['temperature']:.2f}"
        + (
            f", confidence map: {label}"
            if (label := _map_label(calibration.get("confidence_map")))
            else ""
        ),
        fontsize=10,
    )
    left.legend(loc="upper left", fontsize=8)
    curve = calibration["coverage"]
    thresholds = [c["threshold"] for c in curve]
    right.plot(thresholds, [c["coverage"] for c in curve], "o-", ms=3, label="share kept")
    right.plot(thresholds, [c["accuracy"] for c in curve], "o-", ms=3, label="accuracy of kept")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1.02)
    right.set_xlabel("confidence threshold (predict --threshold)")
    right.set_title("keeping only confident predictions", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _f1_chart(scores: dict[str, Any]) -> str:
    report = scores["report"]
    labels = scores["labels"]
    f1 = [report[name]["f1-score"] for name in labels]
    support = [int(report[name]["support"]) for name in labels]
    fig = Figure(figsize=(7.5, 0.28 * len(labels) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(labels))
    ax.barh(y, f1, color=["#c0392b" if v < 0.5 else "#4a7bd0" for v in f1])
    ax.set_yticks(y, [f"{n}  (n={s})" for n, s in zip(labels, support, strict=True)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(scores["macro_f1"], color="grey", ls="--", lw=1)
    ax.set_xlabel(f"F1 per class (dashed: macro-F1 {scores['macro_f1']:.3f})")
    fig.tight_layout()
    return png_base64(fig)


def _map_label(confidence_map: dict[str, float] | None) -> str:
    """`slope 1.52, bias -0.47` for the page; empty for no map or the identity."""
    if not confidence_map or confidence_map == IDENTITY_MAP:
        return ""
    return f"slope {confidence_map['slope']:.2f}, bias {confidence_map['bias']:+.2f}"


def _cards(evaluation) -> list[dict[str, Any]]:
    s = evaluation.scores
    cards = [
        ("macro-F1", f"{s['macro_f1']:.3f}"),
        ("micro-F1 (accuracy)", f"{s['micro_f1']:.3f}"),
        ("weighted-F1", f"{s['weighted_f1']:.3f}"),
        ("items scored", str(s["items"])),
    ]
    if evaluation.model is not None:
        cards.append(("softmax temperature", f"{evaluation.model.temperature:.2f}"))
        if label := _map_label(evaluation.model.confidence_map):
            cards.append(("confidence map", label))
    bad = evaluation.bad_files
    others = int(companions(bad).sum())
    cards.append(("files that can't be read", str(len(bad) - others)))
    if others:
        cards.append(("other files (not images)", str(others)))
    if evaluation.scores_without_leaks:
        w = evaluation.scores_without_leaks
        cards.append(("macro-F1 without training copies", f"{w['macro_f1']:.3f}"))
    items = [{"label": k, "value": v, "warn": False} for k, v in cards]
    leaks = int((evaluation.rows["duplicates_training"] & evaluation.rows["in_classes"]).sum())
    if leaks:
        items.append({"label": "test files duplicate training files", "value": leaks, "warn": True})
    return items


def _per_class(scores: dict[str, Any]) -> list[dict[str, Any]]:
    report = scores["report"]
    return [
        {
            "name": name,
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": int(report[name]["support"]),
        }
        for name in scores["labels"]
    ]


def _figure(evaluation, number: int, caption: str, link: str | None) -> Markup:
    row = evaluation.rows.loc[number]
    return Markup(
        templates("winnow.evaluate")
        .get_template("_figure.html")
        .render(
            src=thumbnail_uri(evaluation.pixels[number]),
            path=row["path"],
            caption=caption,
            link=link,
        )
    )


def _pairs(evaluation, links: dict[int, str]) -> list[dict[str, Any]]:
    mistakes = evaluation.rows[
        (evaluation.rows["status"] == "ok")
        & evaluation.rows["in_classes"]
        & (evaluation.rows["predicted"] != evaluation.rows["label"])
    ]
    if mistakes.empty:
        return []
    totals = evaluation.rows[evaluation.rows["in_classes"] & (evaluation.rows["status"] == "ok")][
        "label"
    ].value_counts()
    pairs = mistakes.groupby(["label", "predicted"]).size().sort_values(ascending=False)
    shown = []
    for (true, predicted), count in pairs.head(PAIRS).items():
        examples = mistakes[(mistakes["label"] == true) & (mistakes["predicted"] == predicted)]
        examples = examples.sort_values("confidence", ascending=False)
        figures = [
            _figure(evaluation, i, f"{r.confidence:.0%}", links.get(i))
            for i, r in examples.head(PAIR_EXAMPLES).iterrows()
            if i in evaluation.pixels
        ]
        shown.append(
            {
                "true": true,
                "predicted": predicted,
                "count": int(count),
                "share": count / totals.get(true, 1),
                "figures": figures,
            }
        )
    return shown


def _gallery(evaluation, links: dict[int, str]) -> list[Markup]:
    rows = evaluation.rows.loc[list(evaluation.pixels)].sort_values("confidence", ascending=False)
    return [
        _figure(evaluation, i, f"true {r.label} · {r.predicted} {r.confidence:.0%}", links.get(i))
        for i, r in rows.head(GALLERY).iterrows()
    ]


def write_report(
    evaluation, path: Path, out_dir: Path, explain: int, calibration: dict[str, Any]
) -> None:
    links = _explanations(evaluation, out_dir, explain)
    scores = evaluation.scores
    bad = evaluation.bad_files
    page = (
        templates("winnow.evaluate")
        .get_template("report.html")
        .render(
            css=CSS,
            data_name=Path(evaluation.data_dir).name,
            data_dir=str(evaluation.data_dir),
            weights=str(evaluation.weights),
            seconds=evaluation.seconds,
            cards=_cards(evaluation),
            leak=evaluation.scores_without_leaks or None,
            macro_f1=scores["macro_f1"],
            micro_f1=scores["micro_f1"],
            f1_chart=_f1_chart(scores),
            confusion=_inline(out_dir / "confusion_matrix.png"),
            per_class=_per_class(scores),
            report_text=scores["report_text"],
            calibration=calibration,
            calibration_png=_inline(out_dir / "calibration.png"),
            # every 0.1 of the coverage curve
            coverage=[c for c in calibration["coverage"] if round(c["threshold"] * 10, 6) % 1 == 0],
            pairs=_pairs(evaluation, links),
            gallery=_gallery(evaluation, links),
            unknown_folders=", ".join(f"{k} ({v})" for k, v in evaluation.unknown_folders.items()),
            missing_classes=", ".join(evaluation.missing_classes),
            # the audit report's listing: damaged first, companions counted
            bad_files=bad_files_listing(bad) if not bad.empty else None,
        )
    )
    atomic_write_bytes(path, page.encode("utf-8"))


def _inline(path: Path) -> str:
    import base64

    return base64.b64encode(Path(path).read_bytes()).decode()


def _explanations(evaluation, out_dir: Path, count: int) -> dict[int, str]:
    """Grad-CAM PNGs for the most confident mistakes (torch checkpoints only)."""
    if count <= 0 or not evaluation.pixels:
        return {}
    from winnow.inference.explain import save_explanation

    loaded = evaluation.model
    if loaded is None or loaded.kind != "torch":
        return {}
    rows = evaluation.rows.loc[list(evaluation.pixels)].sort_values("confidence", ascending=False)
    links = {}
    for number, row in rows.head(count).iterrows():
        name = f"explain/{len(links):03d}_{Path(row['path']).stem[:40]}.png"
        save_explanation(
            loaded, evaluation.pixels[number], out_dir / name, row["path"], true_label=row["label"]
        )
        links[number] = name
    return links
