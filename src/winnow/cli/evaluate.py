"""`winnow evaluate`, `winnow predict`, `winnow explain`."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.base import BAD_FILES_SHOWN, command, console, fail, out, with_progress


@command(epilog="Example: winnow evaluate --data data/test --weights runs/exp1/train/resnet18")
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder with one sub-folder per class.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt, a training folder, or an .onnx file.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the report (default: next to weights)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Decode processes (default: all cores).")
    ] = None,
    explain: Annotated[
        int, typer.Option(help="Grad-CAM overlays for this many mistakes (0 = none).")
    ] = 24,
) -> None:
    """Score a model on an image folder: classification_report, confusion matrix, report.html."""
    from winnow.evaluate.runner import evaluate as run_evaluate
    from winnow.evaluate.runner import write_outputs
    from winnow.inference.load import let_idle_threads_sleep

    let_idle_threads_sleep()

    result = with_progress(lambda cb: run_evaluate(data, weights, workers=workers, on_progress=cb))
    if out_dir is None:
        base = weights if weights.is_dir() else weights.parent
        out_dir = base / "evaluate" / (data.resolve().name or "data")
    paths = write_outputs(result, out_dir, explain=explain)
    _print_evaluation(result, paths)


def _print_evaluation(result, paths: dict) -> None:
    scores = result.scores
    out.print(f"evaluate: {result.data_dir} ({scores['items']} files scored, {result.seconds} s)")
    out.print(scores["report_text"], highlight=False, markup=False)
    out.print(f"micro-F1 {scores['micro_f1']:.3f}   macro-F1 {scores['macro_f1']:.3f}")
    bad = result.bad_files
    if not bad.empty:
        from winnow.data.scan import companion_kinds, companions, kinds_text

        companion = companions(bad)
        others, bad = bad[companion], bad[~companion]
        if not bad.empty:  # damaged images first: an image folder's companions are counted
            out.print(f"\n[yellow]{len(bad)} files could not be read[/] (left out):")
            for row in bad.head(BAD_FILES_SHOWN).itertuples():
                out.print(f"  {row.status:<10} {row.path} — {row.error}", highlight=False)
            if len(bad) > BAD_FILES_SHOWN:
                more = len(bad) - BAD_FILES_SHOWN
                out.print(f"  … and {more} more in {paths['metrics'].resolve()}", soft_wrap=True)
        if not others.empty:
            kinds = kinds_text(companion_kinds(others["path"]))
            out.print(
                f"{len(others)} other files are not images ({kinds}); left out.",
                highlight=False,
                soft_wrap=True,
            )
    for folder, count in result.unknown_folders.items():
        out.print(
            f"[yellow]folder {folder!r} is not a class of the model[/] ({count} files left out)"
        )
    if result.missing_classes:
        out.print(f"[yellow]classes with no test files:[/] {', '.join(result.missing_classes)}")
    duplicates = int((result.rows["duplicates_training"] & result.rows["in_classes"]).sum())
    if duplicates and not result.scores_without_leaks:
        out.print(
            f"\n[bold yellow]All {duplicates} scored test files duplicate training files:[/] "
            "these scores measure memory, not generalisation."
        )
    if result.scores_without_leaks:
        w = result.scores_without_leaks
        leaked = scores["items"] - w["items"]
        out.print(
            f"\n[bold yellow]{leaked} test files duplicate training files.[/] Without them "
            f"({w['items']} files): micro-F1 {w['micro_f1']:.3f}   macro-F1 {w['macro_f1']:.3f}"
        )
    out.print(f"\nreport: [bold]{paths['report'].resolve()}[/]", soft_wrap=True)
    out.print(f"metrics: {paths['metrics'].resolve()}", soft_wrap=True)


@command(epilog="Example: winnow predict photos/ --weights model.onnx --threshold 0.7")
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt, a training folder, or .onnx.")],
    threshold: Annotated[
        float,
        typer.Option(
            help="Below this calibrated probability (the checkpoint's softmax temperature "
            "and confidence map applied) a prediction is marked uncertain; 0 marks none. "
            "The evaluation page's threshold-coverage curve shows what each value keeps "
            "(default: 0.7)."
        ),
    ] = 0.7,
    top_k: Annotated[int, typer.Option(help="Labels per image.")] = 3,
    out_csv: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV file (default: stdout).")
    ] = None,
) -> None:
    """Predict labels for images → CSV (path, top-k labels and probabilities, uncertain)."""
    from winnow.inference.predict import predict as run_predict
    from winnow.inference.predict import to_csv, write_csv

    if not 0 <= threshold <= 1:
        raise fail(f"--threshold must be in [0, 1], got {threshold}")
    notes: list[str] = []
    predictions = run_predict(paths, weights, threshold=threshold, top_k=top_k, notes=notes)
    for note in notes:  # on stderr: stdout may be the CSV
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
    if out_csv is None:
        typer.echo(to_csv(predictions, top_k), nl=False)
    else:
        write_csv(predictions, top_k, out_csv)
        read = [p for p in predictions if p.status == "ok"]
        bad = len(predictions) - len(read)
        top = [p.probabilities[0] for p in read]
        median = statistics.median(top) if top else float("nan")
        if threshold > 0:
            sure = sum(1 for p in read if not p.uncertain)
            verdicts = f"{sure} confident, {len(read) - sure} uncertain (below {threshold})"
        else:  # threshold 0 marks nothing, so say so rather than "confident"
            verdicts = f"{len(read)} predicted (--threshold 0: none marked uncertain)"
        console.print(
            f"{len(predictions)} files: {verdicts}, {bad} unreadable; median top-1 probability "
            f"{median:.2f} → {out_csv}",
            soft_wrap=True,
        )


@command(epilog="Example: winnow explain img1.png img2.png --weights best.ckpt --out cams/")
def explain(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    weights: Annotated[Path, typer.Option(help="best.ckpt or a training folder.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs.")] = Path(
        "explain"
    ),
    explained: Annotated[
        str | None,
        typer.Option(
            "--class", help="Draw the evidence for this class (default: the predicted one)."
        ),
    ] = None,
) -> None:
    """Grad-CAM overlays: one PNG per image, titled with the prediction."""
    from rich.markup import escape

    from winnow.data.io import printable
    from winnow.inference.explain import explain_files
    from winnow.inference.load import load_model

    loaded = load_model(weights)
    loaded.torch_model  # noqa: B018 - Grad-CAM needs gradients: fail early for ONNX
    for path, target, answer in explain_files(paths, loaded, out_dir, explained):
        if target is None:
            shown = escape(printable(str(path)))
            console.print(f"[yellow]skipped[/] {shown}: {answer['error']}", soft_wrap=True)
            continue
        said = f"{target}  {answer['predicted']} ({answer['confidence']:.0%})"
        if explained is not None:
            said += f"; evidence for {answer['explained']} ({answer['explained_probability']:.0%})"
        if answer["empty"]:
            said += "; the map is zero (no region raised the score)"
        out.print(escape(said), soft_wrap=True)


@command("export-onnx", epilog="Example: winnow export-onnx runs/exp1/train/fastnet model.onnx")
def export_onnx(
    weights: Annotated[Path, typer.Argument(help="best.ckpt or a training folder.")],
    out_file: Annotated[Path, typer.Argument(help="The .onnx file to write.")],
) -> None:
    """Export a model as ONNX (dynamic batch; classes, preprocessing, temperature and TTA
    in its metadata), checked against PyTorch."""
    write_onnx(weights, out_file)


def write_onnx(weights: Path, out_file: Path) -> None:
    from winnow.inference.onnx import export_onnx as export

    result = export(weights, out_file)
    out.print(f"wrote {result.path} (dynamic batch; checked with batches of 1 and 7)")
    out.print(f"max abs diff: {result.max_abs_diff:.3g}")
    if result.max_abs_diff > 1e-4:
        raise fail("ONNX and PyTorch disagree by more than 1e-4; do not use this file.")
