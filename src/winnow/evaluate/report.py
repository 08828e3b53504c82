"""The evaluation page: scores, the confusion matrix, the most-confused pairs and a gallery of
mistakes with Grad-CAM overlays. One self-contained HTML file (images inlined)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from winnow.data.bad_files import bad_files_section
from winnow.data.io import atomic_output, atomic_write_bytes
from winnow.data.scan import companions
from winnow.pages import CSS, png_base64, thumbnail_uri

GALLERY = 60
PAIRS = 10
PAIR_EXAMPLES = 6


def confusion_png(scores: dict[str, Any], path: Path) -> None:
    matrix = np.asarray(scores["confusion"], dtype=float)
    labels = scores["labels"]
    normalized = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.42 * len(labels) + 2.5)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.subplots()
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    colour = "white" if normalized[i, j] > 0.55 else "#223"
                    ax.text(
                        j,
                        i,
                        f"{normalized[i, j]:.2f}".lstrip("0"),
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color=colour,
                    )
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true class")
    ax.set_title(f"confusion matrix, normalised by true class ({scores['items']} items)")
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
        f"reliability: ECE {calibration['ece']:.3f} over {calibration['items']} items "
        f"(temperature {calibration['temperature']:.2f})",
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


def _calibration_section(calibration: dict[str, Any], out_dir: Path) -> str:
    rows = "".join(
        f"<tr><td>{c['threshold']:.2f}</td><td>{c['kept']}</td><td>{c['coverage']:.1%}</td>"
        f"<td>{'–' if c['kept'] == 0 else format(c['accuracy'], '.1%')}</td></tr>"
        for c in calibration["coverage"]
        if round(c["threshold"] * 10, 6) % 1 == 0  # every 0.1
    )
    return (
        "<h2>Confidence</h2><p>Expected calibration error <b>"
        f"{calibration['ece']:.3f}</b>: on average the stated confidence is this far from the "
        "accuracy of the predictions made with it. Probabilities are divided by the softmax "
        f"temperature {calibration['temperature']:.2f} fitted on the validation split.</p>"
        "<div class=plots><img alt='reliability diagram and threshold-coverage curve' "
        "src='data:image/png;base64," + _inline(out_dir / "calibration.png") + "'></div>"
        "<table><tr><th>threshold</th><th>kept</th><th>share kept</th><th>accuracy of kept"
        f"</th></tr>{rows}</table>"
    )


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
    encoded = png_base64(fig)
    return f"<img src='data:image/png;base64,{encoded}'>"


def _cards(evaluation) -> str:
    s = evaluation.scores
    cards = [
        ("macro-F1", f"{s['macro_f1']:.3f}"),
        ("micro-F1 (accuracy)", f"{s['micro_f1']:.3f}"),
        ("weighted-F1", f"{s['weighted_f1']:.3f}"),
        ("items scored", str(s["items"])),
    ]
    if evaluation.model is not None:
        cards.append(("softmax temperature", f"{evaluation.model.temperature:.2f}"))
    bad = evaluation.bad_files
    others = int(companions(bad).sum())
    cards.append(("files that can't be read", str(len(bad) - others)))
    if others:
        cards.append(("other files (not images)", str(others)))
    leaks = int((evaluation.rows["duplicates_training"] & evaluation.rows["in_classes"]).sum())
    if evaluation.scores_without_leaks:
        w = evaluation.scores_without_leaks
        cards.append(("macro-F1 without training copies", f"{w['macro_f1']:.3f}"))
    html_cards = "".join(
        f"<div class=card><b>{html.escape(v)}</b>{html.escape(k)}</div>" for k, v in cards
    )
    warn = (
        f"<div class='card warn'><b>{leaks}</b>test files duplicate training files</div>"
        if leaks
        else ""
    )
    return f"<div class=cards>{html_cards}{warn}</div>"


def _figure(evaluation, number: int, caption: str, link: str | None) -> str:
    row = evaluation.rows.loc[number]
    src = thumbnail_uri(evaluation.pixels[number])
    image = f"<img src='{src}' title='{html.escape(row['path'])}'>"
    if link:
        image = f"<a href='{html.escape(link)}'>{image}</a>"
    return (
        f"<figure>{image}<figcaption>{html.escape(row['path'])}<br>"
        f"<span class=tag>{html.escape(caption)}</span></figcaption></figure>"
    )


def _pairs(evaluation, links: dict[int, str]) -> str:
    mistakes = evaluation.rows[
        (evaluation.rows["status"] == "ok")
        & evaluation.rows["in_classes"]
        & (evaluation.rows["predicted"] != evaluation.rows["label"])
    ]
    if mistakes.empty:
        return "<p>No mistakes.</p>"
    totals = evaluation.rows[evaluation.rows["in_classes"] & (evaluation.rows["status"] == "ok")][
        "label"
    ].value_counts()
    pairs = mistakes.groupby(["label", "predicted"]).size().sort_values(ascending=False)
    parts = []
    for (true, predicted), count in pairs.head(PAIRS).items():
        examples = mistakes[(mistakes["label"] == true) & (mistakes["predicted"] == predicted)]
        examples = examples.sort_values("confidence", ascending=False)
        figures = "".join(
            _figure(evaluation, i, f"{r.confidence:.0%}", links.get(i))
            for i, r in examples.head(PAIR_EXAMPLES).iterrows()
            if i in evaluation.pixels
        )
        share = count / totals.get(true, 1)
        parts.append(
            f"<h3>{html.escape(true)} → {html.escape(predicted)}: {count} "
            f"({share:.0%} of {html.escape(true)})</h3><div class=strip>{figures}</div>"
        )
    return "".join(parts)


def _gallery(evaluation, links: dict[int, str]) -> str:
    rows = evaluation.rows.loc[list(evaluation.pixels)].sort_values("confidence", ascending=False)
    if rows.empty:
        return "<p>No mistakes.</p>"
    figures = "".join(
        _figure(evaluation, i, f"true {r.label} · {r.predicted} {r.confidence:.0%}", links.get(i))
        for i, r in rows.head(GALLERY).iterrows()
    )
    return (
        "<p class=muted>Most confident mistakes first; click a thumbnail for its Grad-CAM "
        "(where the model looked).</p>"
        f"<div class=strip>{figures}</div>"
    )


def _problems(evaluation) -> str:
    parts = []
    if evaluation.unknown_folders:
        items = ", ".join(f"{html.escape(k)} ({v})" for k, v in evaluation.unknown_folders.items())
        parts.append(f"<p><b>Folders that are not classes of the model</b> (left out): {items}</p>")
    if evaluation.missing_classes:
        parts.append(
            "<p><b>Classes of the model with no test files</b>: "
            + html.escape(", ".join(evaluation.missing_classes))
            + "</p>"
        )
    bad = evaluation.bad_files
    if not bad.empty:  # the audit report's listing: damaged first, companions counted
        parts.append(
            "<p><b>Files that could not be read</b> (left out):</p>" + bad_files_section(bad)
        )
    return "".join(parts) or "<p>Every file was read and every folder is a class.</p>"


def write_report(
    evaluation, path: Path, out_dir: Path, explain: int, calibration: dict[str, Any]
) -> None:
    links = _explanations(evaluation, out_dir, explain)
    scores = evaluation.scores
    leak_note = ""
    if evaluation.scores_without_leaks:
        w = evaluation.scores_without_leaks
        leak_note = (
            "<h2>Leakage</h2><p>Some test files duplicate training files, which inflates scores. "
            f"Without them ({w['items']} items): macro-F1 <b>{w['macro_f1']:.3f}</b>, micro-F1 "
            f"<b>{w['micro_f1']:.3f}</b> (with them: {scores['macro_f1']:.3f} / "
            f"{scores['micro_f1']:.3f}).</p>"
        )
    body = [
        "<h1>winnow evaluate</h1>",
        f"<div class=muted>{html.escape(str(evaluation.data_dir))} · weights "
        f"{html.escape(str(evaluation.weights))} · {evaluation.seconds} s</div>",
        _cards(evaluation),
        leak_note,
        "<h2>Per-class F1</h2><div class=plots>",
        _f1_chart(scores),
        "</div><h2>Confusion matrix</h2><div class=plots><img src='data:image/png;base64,"
        + _inline(out_dir / "confusion_matrix.png")
        + "' style='width:900px'></div>",
        f"<h2>classification_report</h2><pre>{html.escape(scores['report_text'])}</pre>",
        _calibration_section(calibration, out_dir),
        "<h2>Most confused pairs</h2>",
        _pairs(evaluation, links),
        "<h2>Misclassified</h2>",
        _gallery(evaluation, links),
        "<h2>Left out</h2>",
        _problems(evaluation),
    ]
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>winnow evaluate</title>"
        f"<style>{CSS} pre{{background:#fff;padding:10px;border-radius:8px}}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>"
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
