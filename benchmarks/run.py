"""`make bench`: build the benchmark data if needed, run every benchmark, save the numbers.

Results go to .bench/results/<name>.json and are printed. Each benchmark compares winnow
with a floor or a peer measured in the same invocation, so ratios are honest on any machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_audit  # noqa: E402
import bench_domain  # noqa: E402
import bench_engines  # noqa: E402
import bench_label_issue  # noqa: E402
import bench_peers  # noqa: E402
import bench_photo_sources  # noqa: E402
import bench_same_size  # noqa: E402
import bench_train  # noqa: E402
from bench_results import RESULTS, save_result  # noqa: E402
from bench_scan import bench_scan, report  # noqa: E402
from build_dataset import current  # noqa: E402
from winnow.data.scan import scan  # noqa: E402

ROOT = Path(".bench")


def main() -> None:
    data = current(ROOT)  # built from Debian packages when missing or outdated
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    scan_result = bench_scan(data / "training")
    save_result("scan", scan_result, started)
    print(report(scan_result), flush=True)

    run = ROOT / "runs" / "train"
    scan(data / "training", run)  # incremental: reuses an earlier scan of the same data
    truth = json.loads((data / "truth.json").read_text())
    audit_result = bench_audit.audit_recall(run, data / "test", truth, RESULTS)
    audit_result["candidate_search_growth"] = bench_audit.candidate_growth()
    save_result("audit", audit_result, started)
    print(bench_audit.report(audit_result))

    # the exact and near-duplicate stages end to end on synthetic folders, one process each
    # (a million is not run: about 4 hours of verification on 2 cores)
    for items in (10_000, 100_000):
        script = Path(__file__).parent / "bench_audit_scale.py"
        subprocess.run([sys.executable, str(script), "--items", str(items)], check=True)

    # scan and audit on each engine (one process, the local pool, Ray): time and equality
    engines_result = bench_engines.bench_engines(data, ROOT / "runs" / "engines")
    save_result("engines", engines_result, started)
    print(bench_engines.report(engines_result), flush=True)

    # copies of the same size, which the planted (resized) copies never are
    same_size_result = bench_same_size.bench_same_size()
    save_result("same_size", same_size_result, started)
    print(bench_same_size.report(same_size_result), flush=True)

    # the same duplicate search by cleanvision and imagededup (own venv), side by side
    peers_result = bench_peers.bench_peers(data / "training", truth)
    save_result("peers", peers_result, started)
    print(bench_peers.report(peers_result), flush=True)

    domain_result = bench_domain.ablation(run, data / "truth.json")
    save_result("domain", domain_result, started)
    print(bench_domain.report(domain_result))

    # out_of_domain per kind of photograph, on the photo-source benchmark (build_photos.py)
    sources_result = bench_photo_sources.benchmark(ROOT)
    save_result("photo_sources", sources_result, started)
    print(bench_photo_sources.report(sources_result, None), flush=True)

    # label_issue on 5 % planted mislabels beside cleanlab (own venv); seed 1 is held aside
    for noise_seed in (0, 1):
        label_result = bench_label_issue.bench_label_issue(noise_seed)
        save_result(f"label_issue_seed{noise_seed}", label_result, started)
        print(bench_label_issue.report(label_result), flush=True)

    # training: 3 seeds × 10 minutes on the cleaned run, scored on the clean test folder,
    # beside the Keras notebook and a plain PyTorch script on the same rows and budget
    train_run, clean_test = bench_train.prepare(run, data, truth)
    train_result = bench_train.bench_train(train_run, clean_test, 10.0, [0, 1, 2])
    save_result("train", train_result, started)
    print(bench_train.report(train_result), flush=True)
    keras_result = bench_train.keras_baseline(train_run, clean_test, 10.0, [0, 1, 2])
    save_result("keras", keras_result, started)
    print(bench_train.keras_report(keras_result, train_result), flush=True)
    # the plain PyTorch script (benchmarks/plain_torch.py) on the files Keras read
    plain_result = bench_train.plain_baseline(clean_test, 10.0, [0, 1, 2])
    save_result("plain", plain_result, started)
    print(bench_train.side_by_side(train_result, keras_result, plain_result), flush=True)

    weights = train_run / "train" / "bench-seed0" / "best.ckpt"
    # a fresh process, as `winnow evaluate` is: training has loaded torch in this one
    script = Path(__file__).parent / "bench_infer.py"
    subprocess.run([sys.executable, str(script), str(weights), "--when", started], check=True)
    # `winnow serve` on loopback under load, beside its in-process floor (own process too)
    script = Path(__file__).parent / "bench_serve.py"
    command = [sys.executable, str(script), str(weights), str(clean_test), "--when", started]
    subprocess.run(command, check=True)
    print(f"\nresults saved in {RESULTS}/")


if __name__ == "__main__":
    main()
