"""The label_issue check on planted label noise, beside cleanlab on the same probabilities.

A copy of the benchmark's training folder (hard links, nothing rewritten) in which 5 % of
the clean drawings (no photograph, no damaged file, no planted copy or its source) sit in
a random wrong class; truth.json records each moved file's true class. The copy is
scanned and audited with exact_duplicate, near_duplicate and label_issue at the default
settings (3 folds, 3 minutes). Reported against the moved files:
  - precision, recall and F1 of `is_label_issue_issue`;
  - the share of found ones whose `suggested_label` is the true class;
  - the same for cleanlab's `find_label_issues` (default `prune_by_noise_rate`) run in its
    own environment (.bench/cleanlab-venv; cleanlab is AGPL-3.0 and never enters ours)
    on the very probabilities the check saved, and for the baseline "argmax ≠ label";
  - recall on the moved spirograph stars (one of 1,252 look-alikes, its source gone);
  - what the folder's own labels cost: the share of unmoved files flagged, and the
    out-of-fold accuracy on unmoved files (the ceiling the fold models put on precision).
`--noise-seed` draws another set of moved files: seed 0 was used while building the
check; seed 1 is the held-aside draw, reported last.

Usage: python benchmarks/bench_label_issue.py [--noise-seed N] [--share 0.05] [--minutes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from bench_results import save_result  # noqa: E402
from venvs import venv_python  # noqa: E402

ROOT = Path(".bench")
SOURCE = ROOT / "clipart"
CLEANLAB_VENV = ROOT / "cleanlab-venv"
CLEANLAB = ["cleanlab==2.9.0", "numpy", "pandas", "scikit-learn"]

CLEANLAB_SCRIPT = """
import sys, numpy as np
from cleanlab.filter import find_label_issues
data = np.load(sys.argv[1])
mask = find_label_issues(data["labels"], data["probabilities"])
np.save(sys.argv[2], mask)
"""


def clean_drawings(truth: dict) -> list[str]:
    """Training files (relative to the training folder) that are plain drawings: not a
    photograph, not damaged, not a planted copy and not the source of one."""
    excluded = set(truth["photos"]) | {p for p, _ in truth["bad"]}
    for pair in truth["renamed_copies"] + truth["near_pairs"] + truth["leaks"]:
        excluded |= {pair[0], pair[1]}
    training = SOURCE / "training"
    found = []
    for path in sorted(training.rglob("*")):
        relative = path.relative_to(SOURCE).as_posix()
        if path.is_file() and relative not in excluded and not path.name.startswith("."):
            found.append(path.relative_to(training).as_posix())
    return found


def build_noisy(out: Path, share: float, seed: int) -> dict:
    """Hard-link the training folder into out/training with `share` of the clean drawings
    in a random other class; returns {moved path: true class}."""
    truth = json.loads((SOURCE / "truth.json").read_text())
    classes = sorted(p.name for p in (SOURCE / "training").iterdir() if p.is_dir())
    drawings = clean_drawings(truth)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(drawings), int(round(share * len(drawings))), replace=False)
    chosen = {drawings[i] for i in picks}
    if out.exists():
        shutil.rmtree(out)
    moved = {}
    training = SOURCE / "training"
    for path in sorted(training.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(training).as_posix()
        target = relative
        if relative in chosen:
            label = relative.split("/")[0]
            wrong = rng.choice([c for c in classes if c != label])
            target = f"{wrong}/{Path(relative).name}"
            if (training / target).exists():  # a file of that name is there already
                target = relative
            else:
                moved[target] = label
        destination = out / "training" / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, destination)
    (out / "truth.json").write_text(json.dumps({"moved": moved, "seed": seed, "share": share}))
    return moved


def scores(flagged: np.ndarray, planted: np.ndarray) -> dict:
    hits = int((flagged & planted).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / max(int(planted.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "flagged": int(flagged.sum()),
        "found": hits,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
    }


def bench_label_issue(noise_seed: int = 0, share: float = 0.05, minutes: float = 3.0) -> dict:
    from winnow.audit.config import AuditConfig
    from winnow.audit.runner import run_audit
    from winnow.data.scan import scan

    data = ROOT / f"label-noise-{noise_seed}"
    run = ROOT / "runs" / f"label-noise-{noise_seed}"
    moved = build_noisy(data, share, noise_seed)
    if run.exists():
        shutil.rmtree(run)
    scan(data / "training", run)
    started = time.perf_counter()
    checks = ["exact_duplicate", "near_duplicate", "label_issue"]
    summary = run_audit(run, AuditConfig(checks=checks, label_issue_minutes=minutes))
    audit_seconds = time.perf_counter() - started
    info = summary["checks"]["label_issue"]
    frame = pd.read_parquet(run / "manifest.parquet")
    table = pd.read_parquet(run / "audit" / "label_issue_probabilities.parquet")
    classes = [c[2:] for c in table.columns if c.startswith("p_")]
    probabilities = table[[f"p_{c}" for c in classes]].to_numpy(np.float64)
    labels = table["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    rows = frame.set_index("path").loc[table["path"]]
    planted = table["path"].isin(moved).to_numpy()
    ours = rows["is_label_issue_issue"].to_numpy(bool)
    true_class = table["path"].map(moved)
    suggested = rows["suggested_label"].to_numpy(object)
    right = (suggested == true_class.to_numpy(object)) & ours & planted

    python = venv_python(CLEANLAB_VENV, CLEANLAB, "cleanlab")
    scratch = run / "bench_cleanlab"
    scratch.mkdir(exist_ok=True)
    np.savez(scratch / "input.npz", labels=labels, probabilities=probabilities)
    subprocess.run(
        [str(python), "-c", CLEANLAB_SCRIPT, str(scratch / "input.npz"), str(scratch / "mask.npy")],
        check=True,
    )
    theirs = np.load(scratch / "mask.npy")
    argmax = probabilities.argmax(1) != labels
    predicted = np.array(classes, dtype=object)[probabilities.argmax(1)]
    stars = table["path"].str.contains("/stars__").to_numpy() & planted
    unmoved = ~planted
    result = {
        "noise_seed": noise_seed,
        "share": share,
        "minutes": minutes,
        "items": int(len(table)),
        "moved": int(planted.sum()),
        "audit_seconds": round(audit_seconds, 1),
        "label_issue_seconds": info["seconds"],
        "folds": info["folds"],
        "fold_training": info["fold_training"],
        "winnow": {
            **scores(ours, planted),
            "suggested_right": round(int(right.sum()) / max(int((ours & planted).sum()), 1), 3),
        },
        "cleanlab": {
            **scores(theirs, planted),
            # cleanlab suggests nothing; the argmax is what a user would take
            "argmax_right": round(
                int(((predicted == true_class.to_numpy(object)) & theirs & planted).sum())
                / max(int((theirs & planted).sum()), 1),
                3,
            ),
        },
        "argmax_differs": scores(argmax, planted),
        "agreement_with_cleanlab": round(float((ours == theirs).mean()), 4),
        "moved_stars": int(stars.sum()),
        "moved_stars_found": int((ours & stars).sum()),
        "unmoved_flagged_share": round(float(ours[unmoved].mean()), 4),
        "unmoved_out_of_fold_accuracy": round(float((~argmax[unmoved]).mean()), 4),
        "moved_out_of_fold_accuracy_true_class": round(
            float((predicted[planted] == true_class.to_numpy(object)[planted]).mean()), 4
        ),
        "noise_estimate": info["noise_estimate"],
    }
    return result


def report(result: dict) -> str:
    w, c, a = result["winnow"], result["cleanlab"], result["argmax_differs"]
    lines = [
        f"label_issue (noise seed {result['noise_seed']}, {result['moved']} of "
        f"{result['items']} moved, {result['label_issue_seconds']} s):",
        f"  winnow   P {w['precision']:.3f} R {w['recall']:.3f} F1 {w['f1']:.3f} "
        f"flagged {w['flagged']}, suggested right {w['suggested_right']:.3f}",
        f"  cleanlab P {c['precision']:.3f} R {c['recall']:.3f} F1 {c['f1']:.3f} "
        f"flagged {c['flagged']}, argmax right {c['argmax_right']:.3f}",
        f"  argmax≠label P {a['precision']:.3f} R {a['recall']:.3f} F1 {a['f1']:.3f}",
        f"  stars found {result['moved_stars_found']}/{result['moved_stars']}; unmoved flagged "
        f"{result['unmoved_flagged_share']:.3f}; out-of-fold accuracy on unmoved "
        f"{result['unmoved_out_of_fold_accuracy']:.3f}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--minutes", type=float, default=3.0, help="label_issue_minutes")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    result = bench_label_issue(args.noise_seed, args.share, args.minutes)
    suffix = "" if args.minutes == 3.0 else f"_{args.minutes:g}min"
    save_result(f"label_issue_seed{args.noise_seed}{suffix}", result, started)
    print(report(result))


if __name__ == "__main__":
    main()
