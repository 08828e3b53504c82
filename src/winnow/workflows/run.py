"""`winnow run DATA [--test TEST_DIR]`: every stage with sensible defaults, one summary page.

scan → audit (against TEST_DIR when given) → clean → split → train → evaluate → RUN/index.html.
Each stage is the same library call its own command makes; the page links every report.
With a test folder, the split keeps no test share (the folder is the test); without one,
a share of the run as large as the validation share (10 % by default) is held out and
scored instead.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from winnow.audit.config import AuditConfig
from winnow.data.config import ScanConfig
from winnow.data.io import atomic_write_bytes
from winnow.training.config import TrainConfig

Say = Callable[[str], None]


def run_pipeline(
    data: Path,
    run_dir: Path,
    test: Path | None = None,
    train_config: TrainConfig | None = None,
    scan_config: ScanConfig | None = None,
    audit_config: AuditConfig | None = None,
    say: Say = print,
    progress: bool = False,
    policy: Path | None = None,
    decisions: Path | None = None,
    val: float = 0.1,
    split_seed: int = 0,
    with_progress: Callable[[Callable[[Callable], Any]], Any] | None = None,
) -> dict[str, Any]:
    """Every stage in turn. `policy` / `decisions` go to clean (the review's
    RUN/review/decisions.csv is applied when no decisions file is given), `val` and
    `split_seed` to split; `with_progress(work)` calls `work(on_progress)` with a progress
    callback for scan and audit, and `progress` shows training's bar."""
    from winnow.audit.runner import run_audit
    from winnow.curate.clean import lost_classes, run_clean
    from winnow.curate.split import run_split
    from winnow.data.scan import scan
    from winnow.evaluate.runner import evaluate, write_outputs
    from winnow.training.loop import train

    run_dir = Path(run_dir)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(stage: str, work: Callable[[], Any]) -> Any:
        tick = time.perf_counter()
        result = work()
        timings[stage] = round(time.perf_counter() - tick, 1)
        return result

    def tracked(work: Callable[[Callable | None], Any]) -> Any:
        return with_progress(work) if with_progress else work(None)

    scanned = timed(
        "scan", lambda: tracked(lambda cb: scan(data, run_dir, scan_config, on_progress=cb))
    )
    say(f"scan: {scanned.headline()}")
    audited = timed(
        "audit",
        lambda: tracked(lambda cb: run_audit(run_dir, audit_config, against=test, on_progress=cb)),
    )
    flagged = {k: v["issues"] for k, v in audited["checks"].items() if v["issues"]}
    say("audit: " + (", ".join(f"{k} {v}" for k, v in flagged.items()) or "nothing flagged"))
    cleaned = timed("clean", lambda: run_clean(run_dir, policy, decisions))
    say(
        f"clean: kept {cleaned['kept']} of {cleaned['rows']} files"
        + (f" (decisions applied from {cleaned['decisions']})" if cleaned["decisions"] else "")
    )
    for line in lost_classes(cleaned, run_dir):
        say(f"clean: {line}")
    from winnow.curate.review.findings import awaiting_review

    to_review = awaiting_review(run_dir)
    split = timed(
        "split", lambda: run_split(run_dir, val=val, test=0.0 if test else val, seed=split_seed)
    )
    say("split: " + ", ".join(f"{k} {v}" for k, v in sorted(split["counts"].items())))
    trained = timed(
        "train", lambda: train(run_dir, train_config or TrainConfig(), progress=progress)
    )
    scores = trained.summary["scores"]
    say(
        f"train: {trained.summary['model']}, {trained.summary['epochs']} epochs, validation "
        f"macro-F1 {scores['val']['macro_f1']:.3f} on {trained.summary['val_items']} items"
    )
    evaluation = None
    if test is not None:
        result = timed(
            "evaluate", lambda: tracked(lambda cb: evaluate(test, trained.best, on_progress=cb))
        )
        paths = write_outputs(result, trained.out_dir / "evaluate" / Path(test).name)
        evaluation = _evaluation_summary(result, paths["report"])
        say(
            f"evaluate: {test} macro-F1 {evaluation['macro_f1']:.3f}, "
            f"micro-F1 {evaluation['micro_f1']:.3f}"
        )
    summary = {
        "data": str(data),
        "test": str(test) if test else None,
        "seconds": round(time.perf_counter() - started, 1),
        "stages": timings,
        "scan": {"files": scanned.files, "bad": len(scanned.bad_files)},
        "audit": {"report": audited["report"], "flagged": flagged},
        "review": {"awaiting": to_review, "command": f"winnow review {run_dir}"},
        "clean": {
            "kept": cleaned["kept"],
            "rows": cleaned["rows"],
            "reasons": cleaned["reasons"],
            "classes_emptied": cleaned["classes_emptied"],
            "classes_halved": cleaned["classes_halved"],
        },
        "split": split["counts"],
        "train": _training_summary(trained, split),
        "evaluate": evaluation,
    }
    atomic_write_bytes(
        run_dir / "run_summary.json",
        json.dumps(summary, indent=2, ensure_ascii=False, default=str).encode(),
    )
    summary["page"] = str(write_index(run_dir, summary))
    return summary


def _evaluation_summary(result, report: Path) -> dict[str, Any]:
    """The test folder's scores for the run's summary (with and without training copies)."""
    return {
        "report": str(report),
        "macro_f1": result.scores["macro_f1"],
        "micro_f1": result.scores["micro_f1"],
        "items": result.scores["items"],
        "without_training_copies": (
            {k: result.scores_without_leaks[k] for k in ("items", "macro_f1", "micro_f1")}
            if result.scores_without_leaks
            else None
        ),
        "report_text": result.scores["report_text"],
    }


def _training_summary(trained, split: dict[str, Any]) -> dict[str, Any]:
    """Where the weights are, how long it trained, and its scores on each split."""
    per_class = split.get("per_class")
    return {
        "out_dir": str(trained.out_dir),
        "weights": str(trained.best),
        "epochs": trained.summary["epochs"],
        "val_items": trained.summary["val_items"],
        "val_per_class": per_class
        and {label: counts.get("val", 0) for label, counts in per_class.items()},
        "scores": {
            k: {m: v[m] for m in ("macro_f1", "micro_f1")}
            for k, v in trained.summary["scores"].items()
        },
    }


SMALL_VALIDATION = 100  # fewer validation items than this: its scores are warned about
SMALL_VALIDATION_CLASS = 5


def _link(run_dir: Path, target: str | Path, text: str) -> dict[str, str]:
    return {"href": os.path.relpath(Path(target), run_dir), "text": text}


def write_index(run_dir: Path, summary: dict[str, Any]) -> Path:
    from winnow.curate.clean import lost_classes
    from winnow.pages import CSS, templates

    train = summary["train"]
    out_dir = Path(train["out_dir"])
    evaluation = summary["evaluate"]
    headline = evaluation or {
        "macro_f1": train["scores"].get("test", train["scores"]["val"])["macro_f1"],
        "micro_f1": train["scores"].get("test", train["scores"]["val"])["micro_f1"],
    }
    cards = [
        ("files scanned", summary["scan"]["files"]),
        ("kept after clean", f"{summary['clean']['kept']} / {summary['clean']['rows']}"),
        ("epochs", train["epochs"]),
        ("test macro-F1" if evaluation else "held-out macro-F1", f"{headline['macro_f1']:.3f}"),
        ("test micro-F1" if evaluation else "held-out micro-F1", f"{headline['micro_f1']:.3f}"),
        ("validation items", train.get("val_items", "–")),
    ]
    if evaluation and evaluation["without_training_copies"]:
        cards.append(
            (
                "macro-F1 without training copies",
                f"{evaluation['without_training_copies']['macro_f1']:.3f}",
            )
        )
    audit_dir = Path(summary["audit"]["report"]).parent
    links = [
        _link(
            run_dir,
            summary["audit"]["report"],
            "audit report (duplicates, leaks, photos, bad files)",
        ),
        _link(run_dir, out_dir / "curves.png", "training curves"),
        _link(run_dir, out_dir / "model_card.md", "model card"),
        _link(run_dir, out_dir / "best.ckpt", "weights (best.ckpt)"),
    ]
    if (audit_dir / "leaks.csv").exists():
        links.append(
            _link(
                run_dir, audit_dir / "leaks.csv", "leaks.csv (every test item with a training copy)"
            )
        )
    if evaluation:
        report = Path(evaluation["report"])
        links.append(_link(run_dir, report, "evaluation report (confusion, mistakes)"))
        if (report.parent / "predictions.csv").exists():
            links.append(
                _link(
                    run_dir, report.parent / "predictions.csv", "predictions.csv (every test file)"
                )
            )
    val_items = train.get("val_items")
    per_class = train.get("val_per_class") or {}
    smallest = min(per_class.items(), key=lambda item: item[1]) if per_class else None
    curves = out_dir / "curves.png"
    page = (
        templates("winnow.workflows")
        .get_template("index.html")
        .render(
            css=CSS,
            run_name=Path(run_dir).resolve().name,
            data=summary["data"],
            test=summary["test"],
            seconds=summary["seconds"],
            cards=[{"label": k, "value": v} for k, v in cards],
            small_validation=val_items is not None
            and (
                val_items < SMALL_VALIDATION
                or (smallest is not None and smallest[1] < SMALL_VALIDATION_CLASS)
            ),
            val_items=val_items,
            smallest_val_class={"name": smallest[0], "count": smallest[1]} if smallest else None,
            evaluation=evaluation,
            links=links,
            curves=os.path.relpath(curves, run_dir) if curves.exists() else None,
            awaiting=summary["review"]["awaiting"],
            review_command=summary["review"]["command"],
            reasons=list(summary["clean"]["reasons"].items()),
            lost_classes=lost_classes(summary["clean"], run_dir),
            stages=list(summary["stages"].items()),
        )
    )
    path = run_dir / "index.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
