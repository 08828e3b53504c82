"""`winnow experiment grid.yaml`: train every combination of a grid under one per-run
budget and compare them in a table (markdown, CSV and HTML with every run's curves).

    run: runs/exp1              # a split run (see `winnow split`)
    test: data/test             # optional: every model is also scored on this folder
    budget_minutes: 3           # per run; the schedule of each run fits it
    base: {image_size: 64}      # TrainConfig keys shared by every run
    grid:                       # TrainConfig keys → values; the runs are their product
      model: [simple_cnn, resnet18]
      imbalance: [none, weighted_sampler]
      augment: [basic, mix]
      cleaning: [true, false]

Runs are named after their settings under RUN/train/; a finished run is reused, so an
interrupted grid continues where it stopped. Results: RUN/experiments/<grid name>/.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from winnow.config import ConfigError, build_config
from winnow.data.io import atomic_write_bytes
from winnow.training.config import TrainConfig


class GridConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run: Path
    test: Path | None = None
    budget_minutes: float = 3.0
    base: dict[str, Any] = {}
    grid: dict[str, list[Any]]

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not value or any(not isinstance(v, list) or not v for v in value.values()):
            raise ValueError("grid maps TrainConfig keys to non-empty lists of values")
        return value


def load_grid(path: Path) -> GridConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from None
    grid = build_config(GridConfig, data)
    base = Path(path).parent

    def near_grid_file(folder: Path) -> Path:  # relative paths are relative to the YAML file
        return folder if folder.is_absolute() else Path(os.path.normpath(base / folder))

    updates = {"run": near_grid_file(grid.run)}
    if grid.test is not None:
        updates["test"] = near_grid_file(grid.test)
    return grid.model_copy(update=updates)


def combinations(grid: GridConfig) -> list[tuple[str, TrainConfig]]:
    """(run name, config) for every point of the grid, validated before anything trains."""
    keys = list(grid.grid)
    runs = []
    for values in itertools.product(*(grid.grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        settings = {**grid.base, **point, "max_minutes": grid.budget_minutes}
        name = "grid-" + "-".join(_short(k, v) for k, v in point.items())
        runs.append((name, build_config(TrainConfig, settings)))
    return runs


def _short(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key}_{'on' if value else 'off'}"
    if isinstance(value, dict):
        return "_".join(f"{k}{v}" for k, v in value.items())
    return str(value)


def run_grid(path: Path, say=print) -> dict[str, Path]:
    from winnow.training.loop import train

    grid = load_grid(path)
    runs = combinations(grid)
    say(f"{len(runs)} runs of {grid.budget_minutes} min each on {grid.run}")
    rows = []
    for number, (name, config) in enumerate(runs, 1):
        out_dir = grid.run / "train" / name
        if (out_dir / "summary.json").exists():
            say(f"[{number}/{len(runs)}] {name}: done before, reused")
            summary = json.loads((out_dir / "summary.json").read_text())
        else:
            say(f"[{number}/{len(runs)}] {name} …")
            summary = train(grid.run, config, name=name).summary
        row = _row(name, config, summary, grid)
        if grid.test is not None:
            row.update(_score_folder(grid.test, out_dir))
        rows.append(row)
        say(f"    validation macro-F1 {row['val_macro_f1']:.3f}")
    table = pd.DataFrame(rows)
    return write_tables(table, grid, Path(path).stem)


def _row(name: str, config: TrainConfig, summary: dict, grid: GridConfig) -> dict[str, Any]:
    row: dict[str, Any] = {"run": name}
    for key in grid.grid:
        value = getattr(config, key)
        row[key] = json.dumps(value) if isinstance(value, dict) else value
    plan = summary["plan"]
    row["epochs"] = summary["epochs"]
    row["images_per_s"] = plan["images_per_second"]
    row["train_items"] = plan["train_items"]
    for split, scores in summary["scores"].items():
        row[f"{split}_macro_f1"] = round(scores["macro_f1"], 4)
        row[f"{split}_micro_f1"] = round(scores["micro_f1"], 4)
    return row


def _score_folder(test: Path, out_dir: Path) -> dict[str, Any]:
    from winnow.evaluate.runner import evaluate

    result = evaluate(test, out_dir / "best.ckpt")
    scores = result.scores_without_leaks or result.scores
    return {
        "folder_macro_f1": round(scores["macro_f1"], 4),
        "folder_micro_f1": round(scores["micro_f1"], 4),
        "folder_items": scores["items"],
    }


def write_tables(table: pd.DataFrame, grid: GridConfig, name: str) -> dict[str, Path]:
    out = grid.run / "experiments" / name
    out.mkdir(parents=True, exist_ok=True)
    sort_key = "folder_macro_f1" if "folder_macro_f1" in table else "val_macro_f1"
    table = table.sort_values(sort_key, ascending=False).reset_index(drop=True)
    paths = {
        "csv": out / "results.csv",
        "markdown": out / "results.md",
        "html": out / "results.html",
    }
    atomic_write_bytes(paths["csv"], table.to_csv(index=False).encode())
    note = (
        f"{len(table)} runs, {grid.budget_minutes} min each, on `{grid.run}`"
        + (
            f"; `folder_*` = scored on `{grid.test}` without test files that duplicate "
            "training files"
            if grid.test
            else ""
        )
        + f". Sorted by {sort_key}."
    )
    effects = _effects(table, list(grid.grid), sort_key)
    markdown = f"# Experiment {name}\n\n{note}\n\n{_markdown(table)}\n\n{effects}\n"
    atomic_write_bytes(paths["markdown"], markdown.encode())
    atomic_write_bytes(paths["html"], _html(table, grid, name, note, sort_key).encode())
    return paths


def _markdown(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def _setting_means(table: pd.DataFrame, keys: list[str], metric: str) -> list[dict[str, str]]:
    """Mean of the metric per value of each grid key: which choice wins, and by how much."""
    effects = []
    for key in keys:
        if table[key].nunique() < 2:
            continue
        means = table.groupby(key)[metric].mean().sort_values(ascending=False)
        effects.append(
            {
                "key": key,
                "means": ", ".join(f"{k}: {v:.3f}" for k, v in means.items()),
                "gap": f"{means.iloc[0] - means.iloc[-1]:+.3f}",
            }
        )
    return effects


def _effects(table: pd.DataFrame, keys: list[str], metric: str) -> str:
    lines = [f"## Mean {metric} per setting"]
    for effect in _setting_means(table, keys, metric):
        lines.append(f"- **{effect['key']}**: {effect['means']} (best − worst {effect['gap']})")
    return "\n".join(lines)


def _html(table: pd.DataFrame, grid: GridConfig, name: str, note: str, metric: str) -> str:
    from winnow.pages import CSS, templates

    figures = []
    for run in table["run"]:
        curves = grid.run / "train" / run / "curves.png"
        if curves.exists():
            figures.append({"run": run, "png": base64.b64encode(curves.read_bytes()).decode()})
    rows = [
        [f"{v:.3f}" if isinstance(v, float) else v for v in row]
        for row in table.itertuples(index=False)
    ]
    return (
        templates("winnow.workflows")
        .get_template("experiment.html")
        .render(
            css=CSS,
            name=name,
            note=note,
            columns=list(table.columns),
            rows=rows,
            effects=_setting_means(table, list(grid.grid), metric),
            figures=figures,
        )
    )
