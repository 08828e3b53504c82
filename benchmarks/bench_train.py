"""Training benchmark: the default `winnow train` under a 10-minute budget, 3 seeds, scored
on a clean test folder; training throughput against the model's own forward+backward floor.

Clean test folder: the benchmark's test folder without the planted photographs and without
every test file the audit's leak check paired with a training file (copies of training
items would inflate the score). The training side keeps those files (policy `leaks: keep`):
the copy is removed from the test side instead, so nothing is lost for training.

Beside it, the Keras notebook baseline (benchmarks/keras_baseline.py) trains on the same
cleaned rows (exported as class folders) under the same budget, in its own environment
(.bench/keras-venv, created on first use with tensorflow-cpu), and is scored with sklearn
on the same clean test folder. Files its decoder refuses (PNGs of more than 2^31 bytes
decoded: the benchmark's two 623-megapixel stop signs) would stop it at the first epoch;
they are left out of its copy, as a notebook user would do after the crash, and listed.
The plain PyTorch script (benchmarks/plain_torch.py, no winnow) reads the same copy.

`--data subcategories` runs the same comparison on the held-out benchmark
(`build_subcategories.py`: openclipart's 20 largest second-level categories), scanned and
audited here with every default when its run is missing, its results saved as `sub-*`.

Usage: python benchmarks/bench_train.py [--minutes 10] [--seeds 0 1 2]
           [--set model=simple_cnn augment=basic] [--reuse] [--keras-only | --no-keras]
           [--no-plain] [--data clipart|subcategories]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml
from PIL import Image

from bench_results import save_result
from venvs import venv_python
from winnow.audit.runner import run_audit
from winnow.config import build_config
from winnow.curate.clean import run_clean
from winnow.curate.export import export_clean
from winnow.curate.split import run_split
from winnow.data.scan import scan
from winnow.evaluate.runner import calibration_of, evaluate
from winnow.training.config import TrainConfig
from winnow.training.loop import train
from winnow.training.sizing import step_images_per_second

ROOT = Path(".bench")
POLICY = {"leaks": "keep"}
KERAS_VENV = ROOT / "keras-venv"
KERAS_PINS = ["tensorflow-cpu==2.21.0", "scikit-learn==1.9.1"]


class Bench(NamedTuple):
    """Where one training benchmark's folders and runs live."""

    prefix: str  # of its result files
    data: Path  # training/ and test/ class folders, truth.json
    source_run: Path  # data/training scanned and audited against data/test
    run: Path  # the cleaned, split copy that training reads
    baselines: Path  # the rows `clean` kept, as class folders, for the baselines


CLIPART = Bench(
    "",
    ROOT / "clipart",
    ROOT / "runs" / "train",
    ROOT / "runs" / "train-bench",
    ROOT / "runs" / "baseline-train",
)
SUBCATEGORIES = Bench(
    "sub-",
    ROOT / "subcategories",
    ROOT / "runs" / "sub-train",
    ROOT / "runs" / "sub-train-bench",
    ROOT / "runs" / "sub-baseline-train",
)


def audited(bench: Bench) -> Path:
    """`bench.source_run`: its training folder scanned and audited against its test folder
    with every default, as a user would, unless that was done already."""
    if not (bench.source_run / "audit" / "leaks.csv").exists():
        scan(bench.data / "training", bench.source_run)
        run_audit(bench.source_run, against=bench.data / "test")
    return bench.source_run


def prepare(
    source_run: Path, data: Path, truth: dict, run: Path = CLIPART.run
) -> tuple[Path, Path]:
    """A cleaned, split copy (`run`) of the audited benchmark run, and the clean test
    folder (data/test-clean)."""
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(source_run, run, ignore=shutil.ignore_patterns("train", "experiments"))
    policy = run / "bench_policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    learnable = set(run_clean(run, policy)["kept_per_class"])  # classes with kept rows
    run_split(run, val=0.1, test=0.0, seed=0)
    leaks = pd.read_csv(run / "audit" / "leaks.csv")
    photos = {p.split("/", 1)[1] for p in truth.get("photos", []) if p.startswith("test/")}
    dropped = set(leaks["test_path"]) | photos
    # a class `clean` emptied is one no system can learn: its test files are left out (winnow
    # and the plain script would skip them; Keras' loader refuses a folder it has no class for)
    clean_test = data / "test-clean"
    if clean_test.exists():
        shutil.rmtree(clean_test)
    for path in sorted((data / "test").rglob("*")):
        relative = path.relative_to(data / "test").as_posix()
        if path.is_file() and relative not in dropped and relative.split("/")[0] in learnable:
            target = clean_test / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return run, clean_test


def floor_images_per_second(config: TrainConfig, n_classes: int, steps: int = 8) -> float:
    """Forward + backward + AdamW step on random tensors: no data, no augmentation; at the
    sizes and precision the run resolved on this machine (its config.yaml)."""
    return step_images_per_second(
        config, n_classes, "cpu", config.image_size, config.batch_size, steps
    )


def bench_train(
    run: Path,
    clean_test: Path,
    minutes: float,
    seeds: list[int],
    settings: dict | None = None,
    prefix: str = "bench",
) -> dict:
    """Train `settings` (TrainConfig keys; default config when None) once per seed."""
    results = []
    for seed in seeds:
        config = TrainConfig(**(settings or {}), max_minutes=minutes, seed=seed)
        name = f"{prefix}-seed{seed}"
        if (run / "train" / name).exists():
            shutil.rmtree(run / "train" / name)
        started = time.perf_counter()
        trained = train(run, config, name=name)
        wall = time.perf_counter() - started
        evaluation = evaluate(clean_test, trained.best)
        scores = evaluation.scores_without_leaks or evaluation.scores
        # every test file's prediction, for paired comparisons (benchmarks/paired.py)
        predictions = trained.out_dir / "test_predictions.csv"
        evaluation.rows[["path", "label", "predicted"]].to_csv(predictions, index=False)
        resolved = build_config(
            TrainConfig, yaml.safe_load((trained.out_dir / "config.yaml").read_text())
        )
        floor = floor_images_per_second(resolved, len(trained.summary["classes"]))
        achieved = trained.summary["plan"]["train_images_per_second"]
        results.append(
            {
                "seed": seed,
                "train_wall_seconds": round(wall, 1),
                "epochs": trained.summary["epochs"],
                "val_items": trained.summary["val_items"],
                "val_macro_f1": trained.summary["scores"]["val"]["macro_f1"],
                "val_micro_f1": trained.summary["scores"]["val"]["micro_f1"],
                "temperature": trained.summary["temperature"],
                "test_ece": calibration_of(evaluation)["ece"],
                "test_items": scores["items"],
                "test_macro_f1": scores["macro_f1"],
                "test_micro_f1": scores["micro_f1"],
                "test_hash_duplicates_left_out": evaluation.scores["items"] - scores["items"],
                # every file of the folder, as the Keras baseline reads it
                "all_files_macro_f1": evaluation.scores["macro_f1"],
                "all_files_micro_f1": evaluation.scores["micro_f1"],
                "images_per_second": achieved,
                "floor_images_per_second": round(floor, 1),
                "throughput_ratio": round(achieved / floor, 3) if achieved else None,
                "predictions": str(predictions),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return {
        "minutes": minutes,
        "settings": settings or {},
        "runs": results,
        **f1_spread(results),
        "throughput_ratio_mean": statistics.mean(r["throughput_ratio"] or 0 for r in results),
    }


def export_for_baselines(run: Path, folder: Path = CLIPART.baselines) -> list[str]:
    """The rows `clean` kept, as class folders (`folder`), for the baselines that read
    folders; returns the files left out because the Keras decoder refuses them."""
    if folder.exists():
        shutil.rmtree(folder)
    export_clean(run, folder, copy=True)
    return drop_undecodable(folder)


def _baseline_runs(
    command: list[str], name: str, clean_test: Path, minutes, seeds, folder: Path
) -> list:
    results = []
    for seed in seeds:
        out = ROOT / "results" / f"{name}-seed{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        args = [str(folder), str(clean_test), str(out), "--minutes", str(minutes)]
        subprocess.run([*command, *args, "--seed", str(seed)], check=True)
        results.append(json.loads(out.read_text()))
    return results


def keras_baseline(
    run: Path,
    clean_test: Path,
    minutes: float,
    seeds: list[int],
    export: bool = True,
    bench: Bench = CLIPART,
) -> dict:
    """The Keras notebook baseline on the rows `clean` kept, in its own environment."""
    python = venv_python(KERAS_VENV, KERAS_PINS, "Keras (tensorflow-cpu)")
    left_out = export_for_baselines(run, bench.baselines) if export else []
    script = Path(__file__).parent / "keras_baseline.py"
    command = [str(python), str(script)]
    name = f"{bench.prefix}keras"
    results = _baseline_runs(command, name, clean_test, minutes, seeds, bench.baselines)
    done = [r for r in results if "error" not in r]
    spread = f1_spread(done) if done else {}
    return {"minutes": minutes, "left_out": left_out, "runs": results, **spread}


def plain_baseline(
    clean_test: Path, minutes: float, seeds: list[int], bench: Bench = CLIPART
) -> dict:
    """benchmarks/plain_torch.py (no winnow) on `bench.baselines`, in this environment."""
    script = Path(__file__).parent / "plain_torch.py"
    command, name = [sys.executable, str(script)], f"{bench.prefix}plain"
    results = _baseline_runs(command, name, clean_test, minutes, seeds, bench.baselines)
    return {"minutes": minutes, "runs": results, **f1_spread(results)}


# tf.io.decode_image refuses a PNG whose decoded size (4 bytes a pixel) does not fit in an
# int ("PNG size too large for int: 20990 by 29700"), and the notebook's input pipeline
# stops with it; the benchmark's 623-megapixel stop signs are such files
TF_DECODE_LIMIT = 2**31 - 1


def drop_undecodable(folder: Path) -> list[str]:
    """Remove from the Keras baseline's copy of the cleaned rows the files its decoder
    refuses (TF_DECODE_LIMIT), as a notebook user would after the crash; returns them."""
    left_out = []
    # only the header is read, so no decompression bomb can go off: let every size through
    bomb_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except OSError:
                continue  # not for this rule: the notebook meets it as it is
            if width * height * 4 > TF_DECODE_LIMIT:
                path.unlink()
                left_out.append(str(path.relative_to(folder)))
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
    return left_out


def f1_spread(runs: list[dict]) -> dict[str, float]:
    """Mean and half-range of test macro- and micro-F1 over seeds."""
    summary = {}
    for name in ("macro", "micro"):
        values = [r[f"test_{name}_f1"] for r in runs]
        summary[f"{name}_f1_mean"] = statistics.mean(values)
        summary[f"{name}_f1_spread"] = (max(values) - min(values)) / 2
    return summary


def keras_report(result: dict, ours: dict | None = None) -> str:
    """The Keras runs; with `ours` (bench_train's result), winnow scored on the same files."""
    lines = [f"Keras notebook baseline ({result['minutes']} min budget, same data)"]
    if result.get("left_out"):
        lines.append(
            f"  left out of its copy, which its decoder refuses: {', '.join(result['left_out'])}"
        )
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"  seed {r['seed']}: failed: {r['error'][:300]}")
        else:
            lines.append(
                f"  seed {r['seed']}: {r['epochs']} epochs, test macro-F1 "
                f"{r['test_macro_f1']:.3f} micro-F1 {r['test_micro_f1']:.3f} "
                f"({r['test_items']} items)"
            )
    if "macro_f1_mean" in result:
        lines.append(
            f"  mean macro-F1 {result['macro_f1_mean']:.3f} ± {result['macro_f1_spread']:.3f}, "
            f"micro-F1 {result['micro_f1_mean']:.3f} ± {result['micro_f1_spread']:.3f}"
        )
    runs = [r for r in (ours or {}).get("runs", []) if "all_files_macro_f1" in r]
    if runs:
        macro = statistics.mean(r["all_files_macro_f1"] for r in runs)
        micro = statistics.mean(r["all_files_micro_f1"] for r in runs)
        lines.append(
            f"  winnow on the same files (every file, as Keras reads them): "
            f"macro-F1 {macro:.3f}, micro-F1 {micro:.3f} (mean of {len(runs)} seeds)"
        )
    return "\n".join(lines)


def side_by_side(ours: dict, keras: dict, plain: dict) -> str:
    """The table of docs/benchmarks.md: every system scored on every file of the clean
    test folder (mean ± half-range over seeds), and ours minus each baseline."""

    def stats(runs: list[dict], prefix: str) -> tuple[float, float, float, float]:
        macro = [r[f"{prefix}macro_f1"] for r in runs]
        micro = [r[f"{prefix}micro_f1"] for r in runs]
        half = lambda v: (max(v) - min(v)) / 2  # noqa: E731
        return statistics.mean(macro), half(macro), statistics.mean(micro), half(micro)

    rows = {
        "winnow (default)": stats(ours["runs"], "all_files_"),
        "plain PyTorch script": stats([r for r in plain["runs"] if "error" not in r], "test_"),
        "Keras notebook": stats([r for r in keras["runs"] if "error" not in r], "test_"),
    }
    lines = [
        f"side by side ({ours['minutes']} min, seeds {[r['seed'] for r in ours['runs']]}, "
        "every file of the clean test folder)",
        f"  {'system':<22} {'macro-F1':>15} {'micro-F1':>15}",
    ]
    for name, (ma, mas, mi, mis) in rows.items():
        lines.append(f"  {name:<22} {ma:>8.3f} ± {mas:.3f} {mi:>8.3f} ± {mis:.3f}")
    ours_row = rows["winnow (default)"]
    for name in ("plain PyTorch script", "Keras notebook"):
        other = rows[name]
        lines.append(
            f"  winnow − {name}: macro {ours_row[0] - other[0]:+.3f}, "
            f"micro {ours_row[2] - other[2]:+.3f}"
        )
    return "\n".join(lines)


def report(result: dict) -> str:
    lines = [
        f"training benchmark ({result['minutes']} min budget, {len(result['runs'])} seeds, "
        "clean test folder)"
    ]
    for r in result["runs"]:
        lines.append(
            f"  seed {r['seed']}: {r['epochs']} epochs, test macro-F1 {r['test_macro_f1']:.3f} "
            f"micro-F1 {r['test_micro_f1']:.3f} ({r['test_items']} items), ECE "
            f"{r['test_ece']:.3f}; validation macro-F1 {r['val_macro_f1']:.3f} on "
            f"{r['val_items']} items; {r['images_per_second']} img/s = "
            f"{r['throughput_ratio']:.2f}× floor"
        )
    lines.append(
        f"  mean macro-F1 {result['macro_f1_mean']:.3f} ± {result['macro_f1_spread']:.3f}, "
        f"micro-F1 {result['micro_f1_mean']:.3f} ± {result['micro_f1_spread']:.3f} "
        f"(targets 0.70 / 0.90); throughput {result['throughput_ratio_mean']:.2f}× floor"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", nargs="*", default=[], help="TrainConfig KEY=VALUE overrides (YAML values)"
    )
    parser.add_argument("--reuse", action="store_true", help="keep the prepared run")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--keras-only", action="store_true", help="only the Keras baseline")
    which.add_argument("--no-keras", action="store_true", help="skip the Keras baseline")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch script")
    parser.add_argument(
        "--data",
        choices=["clipart", "subcategories"],
        default="clipart",
        help="the project benchmark, or the held-out one (build_subcategories.py)",
    )
    args = parser.parse_args()
    if args.data == "subcategories":
        from build_subcategories import current

        bench, truth = SUBCATEGORIES, {}
        current(ROOT)
        source_run = audited(bench)
    else:
        bench = CLIPART
        truth = json.loads((bench.data / "truth.json").read_text())
        source_run = bench.source_run
    if args.reuse:
        run, clean_test = bench.run, bench.data / "test-clean"
    else:
        run, clean_test = prepare(source_run, bench.data, truth, bench.run)
    keras = plain = None
    if not args.no_keras:
        keras = keras_baseline(run, clean_test, args.minutes, args.seeds, bench=bench)
        save_result(f"{bench.prefix}keras", keras)
        print(keras_report(keras), flush=True)
    if args.keras_only:
        return
    if not args.no_plain:
        if args.no_keras:
            export_for_baselines(run, bench.baselines)
        plain = plain_baseline(clean_test, args.minutes, args.seeds, bench)
        save_result(f"{bench.prefix}plain", plain)
    settings = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    prefix = "bench" if not settings else "bench-" + "-".join(map(str, settings.values()))
    result = bench_train(run, clean_test, args.minutes, args.seeds, settings, prefix)
    save_result(bench.prefix + prefix.replace("bench", "train", 1), result)
    print(report(result))
    if keras and plain:
        print(side_by_side(result, keras, plain))


if __name__ == "__main__":
    main()
