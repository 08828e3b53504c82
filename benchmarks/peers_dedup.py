"""Run a peer duplicate finder on a folder and write the pairs it reports as JSON.

Runs inside `.bench/peers-venv` (created by bench_peers.py), never in winnow's own
environment. Each tool is used as its README shows, with its default settings:

- cleanvision: `Imagelab(data_path).find_issues({"exact_duplicates", "near_duplicates"})`
  (md5 for exact; equal 8×8 pHash for near). Its sets become all pairs inside each set.
- imagededup: `PHash().find_duplicates(image_dir, recursive=True)` (Hamming distance ≤ 10,
  the default). imagededup's package `__init__`s import its CNN method and CNN model
  eagerly, which need torch + torchvision (torchvision is not installable beside our CPU
  torch); PHash uses neither, so those two modules get empty stand-ins before the import.

Usage: python peers_dedup.py TOOL DATA OUT.json
Paths in the output are relative to DATA, with "/" separators. A tool that raises is
recorded with its error (a crash is a result too), not re-tried.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import traceback
import types
from pathlib import Path


def _pairs_from_sets(sets: list[list[str]], data: Path) -> set[tuple[str, str]]:
    pairs = set()
    for members in sets:
        names = sorted(Path(m).resolve().relative_to(data).as_posix() for m in members)
        pairs.update(itertools.combinations(names, 2))
    return pairs


def cleanvision(data: Path) -> dict:
    from cleanvision import Imagelab

    lab = Imagelab(data_path=str(data))
    lab.find_issues({"exact_duplicates": {}, "near_duplicates": {}})
    exact = _pairs_from_sets(lab.info["exact_duplicates"]["sets"], data)
    near = _pairs_from_sets(lab.info["near_duplicates"]["sets"], data)
    return {"exact_pairs": sorted(exact), "pairs": sorted(exact | near)}


def imagededup(data: Path) -> dict:
    for module, name in (("methods.cnn", "CNN"), ("utils.models", "CustomModel")):
        stand_in = types.ModuleType(f"imagededup.{module}")
        setattr(stand_in, name, None)  # the CNN method is not benchmarked (needs torchvision)
        sys.modules[f"imagededup.{module}"] = stand_in
    from imagededup.methods import PHash

    found = PHash(verbose=False).find_duplicates(image_dir=str(data), recursive=True)
    pairs = set()
    for name, duplicates in found.items():
        for other in duplicates:
            a, b = sorted((Path(name).as_posix(), Path(other).as_posix()))
            pairs.add((a, b))
    return {"pairs": sorted(pairs)}


TOOLS = {"cleanvision": cleanvision, "imagededup": imagededup}


def main(tool: str, data: Path, out: Path) -> None:
    started = time.perf_counter()
    try:
        result = TOOLS[tool](data.resolve())
        result["error"] = None
    except Exception as exc:  # noqa: BLE001 - a peer's crash is what we report
        result = {"pairs": [], "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    result["tool"] = tool
    result["seconds"] = round(time.perf_counter() - started, 2)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
