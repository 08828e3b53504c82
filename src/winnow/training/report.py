"""What a finished training run leaves for people: metrics.csv, curves.png, model_card.md,
summary.json, and the best checkpoint's scores on the run's own test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from winnow.config import dump_config
from winnow.data.io import atomic_output, atomic_write_bytes
from winnow.evaluate.scoring import score
from winnow.inference.calibrated import IDENTITY_MAP
from winnow.inference.load import load_model
from winnow.training.config import UNMIXED, TrainConfig
from winnow.training.data import SplitRows


def write_outputs(
    out_dir: Path,
    module,
    images: dict,
    rows: SplitRows,
    config: TrainConfig,
    plan: dict,
    run_dir: Path,
) -> dict[str, Any]:
    history = module.history  # metrics.csv: written by MetricsFile after every validation
    if history:
        batches = "plain" if config.augment == "none" else "augmented"
        if config.augment in UNMIXED:
            batches += ", mixed"
        plot_curves(
            history,
            out_dir / "curves.png",
            title=f"{config.model} on {run_dir.name}  "
            f"(train metrics on {batches} batches; validation "
            f"{len(rows.frames['val'])} items)",
            select=config.select,
        )
    best = load_model(out_dir / "best.ckpt")
    scores = {}
    for split in ("val", "test"):
        frame = rows.frames[split]
        if frame.empty:
            continue
        pixels = images[split].permute(0, 2, 3, 1).numpy()
        predicted = best.probabilities(pixels).argmax(axis=1)
        scores[split] = score(frame["target"].to_numpy(), predicted, rows.classes)
    if not history:
        best_epoch = {}
    elif config.select == "best_macro_f1":
        best_epoch = max(history, key=lambda r: r["val_macro_f1"])
    else:
        best_epoch = history[-1]
    summary = {
        "out_dir": str(out_dir),
        "model": config.model,
        "classes": rows.classes,
        "fingerprint": rows.fingerprint,
        "epochs": len(history),
        "best_epoch": int(best_epoch.get("epoch", 0)),
        "select": config.select,
        "val_items": int(len(rows.frames["val"])),
        "temperature": plan.get("temperature", 1.0),
        "confidence_map": plan.get("confidence_map", dict(IDENTITY_MAP)),
        "plan": plan,
        "scores": {
            split: {k: v for k, v in s.items() if k not in ("report_text", "confusion")}
            for split, s in scores.items()
        },
    }
    atomic_write_bytes(
        out_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode()
    )
    card = model_card(config, rows, plan, scores, best_epoch, run_dir)
    atomic_write_bytes(out_dir / "model_card.md", card.encode())
    return summary


def full_epochs(history: list[dict[str, float]]) -> list[bool]:
    """Per epoch row, whether its train metrics cover at least half as many images as the
    fullest epoch: the budget's last epoch can be a few batches (one mixed batch scores
    far below the epoch around it), which the curves leave out of the train line. Rows
    without `train_items` (older runs) count as full."""
    covered = [row.get("train_items") for row in history]
    most = max((c for c in covered if c is not None), default=None)
    return [c is None or most is None or c >= most / 2 for c in covered]


def plot_curves(
    history: list[dict[str, float]], path: Path, title: str = "", select: str = "final"
) -> None:
    epochs = [row["epoch"] for row in history]
    full = full_epochs(history)
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for ax, metric, label in zip(
        axes, ("loss", "acc", "macro_f1"), ("loss", "accuracy", "macro-F1"), strict=True
    ):
        shown = [
            (e, r[f"train_{metric}"]) for e, r, f in zip(epochs, history, full, strict=True) if f
        ]
        ax.plot(*zip(*shown, strict=True), "o-", ms=3, label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "o-", ms=3, label="validation")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if metric != "loss":
            ax.set_ylim(0, 1)
    axes[0].legend()
    if select == "best_macro_f1":
        chosen, word = max(history, key=lambda r: r["val_macro_f1"]), "best"
    else:
        chosen, word = history[-1], "final"
    axes[2].axvline(chosen["epoch"], color="grey", ls="--", lw=1)
    axes[2].annotate(
        f"{word} {chosen['val_macro_f1']:.3f}", (chosen["epoch"], 0.05), ha="right", color="grey"
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def model_card(config, rows, plan, scores, best_epoch, run_dir) -> str:
    counts = rows.frames["train"]["target"].value_counts().sort_index()
    lines = [
        f"# Model card: {config.model}",
        "",
        "Trained from scratch (random initialisation, no pretrained weights) by `winnow train`.",
        "",
        "## Data",
        f"- run: `{run_dir}` (fingerprint `{rows.fingerprint}`)",
        f"- cleaning: {'on (rows kept by `winnow clean`)' if config.cleaning else 'off'}"
        + (f", {rows.added_uncleaned} dropped rows added back" if not config.cleaning else ""),
        f"- items: train {len(rows.frames['train'])}, val {len(rows.frames['val'])}, "
        f"test {len(rows.frames['test'])}",
        "",
        "| class | train items |",
        "|---|---:|",
        *[f"| {rows.classes[i]} | {n} |" for i, n in counts.items()],
        "",
        "## Training",
        f"- model `{config.model}` {json.dumps(config.model_params)}",
        f"- imbalance `{config.imbalance}`, augment `{config.augment}`, label smoothing "
        f"{config.label_smoothing}, AdamW lr {config.lr} one-cycle, batch {config.batch_size}",
        f"- weight averaging (EMA) {config.ema_decay or 'off'}, test-time augmentation "
        f"`{config.tta}`, progressive resizing "
        + (f"from {config.progressive_min_size} px" if config.progressive_min_size else "off"),
        f"- planned {plan['epochs']} epochs = {plan['max_steps']} steps ({plan['source']}); "
        f"trained {plan.get('steps_done', '?')} steps in {plan.get('seconds_trained', '?')} s, "
        f"{plan.get('train_images_per_second') or plan['images_per_second']} images/s on "
        f"{plan['device']}",
        "- best.ckpt: "
        + (
            "the epoch with the best validation macro-F1"
            if config.select == "best_macro_f1"
            else "the final weights of the annealed schedule (no choice made on validation)"
        )
        + f", epoch {int(best_epoch.get('epoch', 0))}, validation macro-F1 "
        f"{best_epoch.get('val_macro_f1', float('nan')):.3f} on {len(rows.frames['val'])} items",
        f"- softmax temperature {plan.get('temperature', 1.0)}, then the confidence map "
        f"{map_text(plan.get('confidence_map'))} (both fitted on validation)",
        "",
        "## Scores of best.ckpt",
    ]
    for split, result in scores.items():
        lines += [
            f"### {split} split ({result['items']} items): macro-F1 {result['macro_f1']:.3f}, "
            f"micro-F1 {result['micro_f1']:.3f}",
            "",
            "```",
            result["report_text"].rstrip(),
            "```",
            "",
        ]
    lines += [
        "## Config",
        "```yaml",
        dump_config(config).rstrip(),
        "```",
        "",
        "Evaluate on another folder: `winnow evaluate --data TEST_DIR --weights best.ckpt`.",
        "",
    ]
    return "\n".join(lines)


def map_text(confidence_map: dict | None) -> str:
    """`sigmoid(1.52 · logit(c) − 0.47)`, or `identity` when the map changes nothing."""
    found = confidence_map or IDENTITY_MAP
    slope, bias = float(found["slope"]), float(found["bias"])
    if {"slope": slope, "bias": bias} == IDENTITY_MAP:
        return "identity"
    return f"sigmoid({slope:g} · logit(c) {'−' if bias < 0 else '+'} {abs(bias):g})"
