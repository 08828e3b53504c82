"""`winnow run DATA [--test TEST_DIR]`: every stage with sensible defaults, one summary page.

scan → audit (against TEST_DIR when given) → clean → split → train → evaluate → RUN/index.html.
Each stage is the same library call its own command makes; the page links every report.
With a test folder, the split keeps no test share (the folder is the test); without one,
a share of the run as large as the validation share (10 % by default) is held out and
scored instead.
"""

from __future__ import annotations

import html
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
    from winnow.curate.clean import run_clean
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
        result = timed("evaluate", lambda: evaluate(test, trained.best))
        paths = write_outputs(result, trained.out_dir / "evaluate" / Path(test).name)
        evaluation = {
            "report": str(paths["report"]),
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
        say(
            f"evaluate: {test} macro-F1 {result.scores['macro_f1']:.3f}, "
            f"micro-F1 {result.scores['micro_f1']:.3f}"
        )
    summary = {
        "data": str(data),
        "test": str(test) if test else None,
        "seconds": round(time.perf_counter() - started, 1),
        "stages": timings,
        "scan": {"files": scanned.files, "bad": len(scanned.bad_files)},
        "audit": {"report": audited["report"], "flagged": flagged},
        "review": {"awaiting": to_review, "command": f"winnow review {run_dir}"},
        "clean": {"kept": cleaned["kept"], "rows": cleaned["rows"], "reasons": cleaned["reasons"]},
        "split": split["counts"],
        "train": {
            "out_dir": str(trained.out_dir),
            "weights": str(trained.best),
            "epochs": trained.summary["epochs"],
            "scores": {k: {m: v[m] for m in ("macro_f1", "micro_f1")} for k, v in scores.items()},
        },
        "evaluate": evaluation,
    }
    atomic_write_bytes(
        run_dir / "run_summary.json",
        json.dumps(summary, indent=2, ensure_ascii=False, default=str).encode(),
    )
    summary["page"] = str(write_index(run_dir, summary))
    return summary


def _link(run_dir: Path, target: str | Path, text: str) -> str:
    relative = os.path.relpath(Path(target), run_dir)
    return f"<a href='{html.escape(relative)}'>{html.escape(text)}</a>"


def write_index(run_dir: Path, summary: dict[str, Any]) -> Path:
    from winnow.pages import CSS

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
    ]
    if evaluation and evaluation["without_training_copies"]:
        cards.append(
            (
                "macro-F1 without training copies",
                f"{evaluation['without_training_copies']['macro_f1']:.3f}",
            )
        )
    stages = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v} s</td></tr>" for k, v in summary["stages"].items()
    )
    reasons = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
        for k, v in summary["clean"]["reasons"].items()
    )
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
    if evaluation:
        links.append(
            _link(run_dir, evaluation["report"], "evaluation report (confusion, mistakes)")
        )
    curves = out_dir / "curves.png"
    body = [
        "<h1>winnow run</h1>",
        f"<div class=muted>{html.escape(summary['data'])}"
        + (f" · test {html.escape(summary['test'])}" if summary["test"] else "")
        + f" · {summary['seconds']} s</div>",
        "<div class=cards>"
        + "".join(
            f"<div class=card><b>{html.escape(str(v))}</b>{html.escape(k)}</div>" for k, v in cards
        )
        + "</div>",
        "<h2>Reports</h2><ul>" + "".join(f"<li>{link}</li>" for link in links) + "</ul>",
        "<h2>Training</h2>",
        f"<img src='{html.escape(os.path.relpath(curves, run_dir))}' style='max-width:100%'>"
        if curves.exists()
        else "",
        "<h2>What clean decided</h2>",
        f"<p>{summary['review']['awaiting']} flagged files await a person's decision: "
        f"<code>{html.escape(summary['review']['command'])}</code> opens the review page, "
        "then <code>winnow clean</code> applies what was decided.</p>",
        "<table>" + reasons + "</table>",
        "<h2>Time per stage</h2><table>" + stages + "</table>",
    ]
    if evaluation:
        body.append(
            f"<h2>classification_report</h2><pre>{html.escape(evaluation['report_text'])}</pre>"
        )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>winnow run</title>"
        f"<style>{CSS} pre{{background:#fff;padding:10px;border-radius:8px}}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>"
    )
    path = run_dir / "index.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
