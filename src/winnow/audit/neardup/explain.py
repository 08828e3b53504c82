"""`winnow compare RUN A B`: why two pictures of a run are, or are not, near copies.

The near-duplicate check reports a pair only when it passes every stage: the candidate
search, the aspect test, the pixel tests at the verification side, the changed area at
the cache's full resolution, the same-size comparison and the series rule. The audit
keeps only the pairs that pass; this command runs the same stages on one pair and says
which passed and which stopped it, with each value beside its limit, so a user looking
at a missed copy (or a false pair) knows which setting decides it.

With `against` (the TEST folder or RUN given to `winnow audit --against`), A is a test
picture and B a training picture, and the stages are the leak check's: the test picture is
searched among the training pictures and verified against them, and the audit's record is
its leaks.csv.

The settings are the latest audit's (RUN/audit/config.yaml) unless a config is given.
The candidate search ranks a picture among all others, so it is only re-run with
`search=True` (it describes every picture of the run, as the audit does). The series
rule judges a pair against all verified pairs, so it is not re-run: the last audit's
pairs table tells whether it kept the pair (winnow.audit.neardup.records reads the audit's
record and words the verdict).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from winnow.audit.checks.near_duplicate import CHECK as NEAR_DUPLICATE
from winnow.audit.checks.near_duplicate import representatives
from winnow.audit.config import AuditConfig
from winnow.audit.neardup.alignment import Pictures, align, verification_view
from winnow.audit.neardup.records import Comparison, Step, audit_record, leak_record, verdict
from winnow.audit.neardup.same_size import same_size_change
from winnow.audit.neardup.search import Items, NearDuplicateSettings, describe
from winnow.audit.neardup.similarity import (
    FULL_SIDE,
    VERIFY_SIDE,
    pair_similarity,
)
from winnow.audit.neardup.verify import (
    IDENTICAL_DIFFERENCE,
    aspect_change,
    full_side_test,
    same_size_comparable,
    series_score,
    verification_tests,
)
from winnow.audit.runner import AUDIT_DIR, CONFIG_FILE, reference_folder
from winnow.config import load_config
from winnow.data.cache import PixelCache
from winnow.data.manifest import longer_sides, read_manifest
from winnow.data.scan import scanned_folder
from winnow.errors import WinnowError


class CompareError(WinnowError, ValueError):
    """A pair that cannot be compared (unknown path, unreadable file, no scan)."""


_MEANINGS = {  # what each verification test asks, by the setting that limits it
    "min_correlation": "luminance correlation once aligned (brightness-invariant)",
    "min_detail": "correlation of fine detail: do the edges coincide?",
    "max_chroma_distance": "90th-percentile colour change (0–510): recoloured parts",
    "max_greyed_area": "share of pixels grey in one picture and coloured in the other",
    "max_changed_area": f"share of pixels that still differ once aligned (at {VERIFY_SIDE} px)",
    "max_changed_area_full": f"the same at {FULL_SIDE} px: thin frames, small marks",
}


def find_row(frame: pd.DataFrame, name: str | Path, data_dir: Path | None) -> int:
    """The manifest row of `name`: a manifest path (relative to the data folder), a path to
    the file itself, or a unique end of a manifest path."""
    paths = frame["path"].astype(str)
    text = str(name).replace("\\", "/")
    hits = np.flatnonzero(paths.to_numpy() == text)
    if not len(hits) and data_dir:
        try:
            relative = Path(name).resolve().relative_to(Path(data_dir).resolve()).as_posix()
        except ValueError:
            relative = None
        if relative is not None:
            hits = np.flatnonzero(paths.to_numpy() == relative)
    if not len(hits):
        hits = np.flatnonzero(paths.str.endswith("/" + text.lstrip("/")).to_numpy())
    if len(hits) == 1:
        return int(frame.index[hits[0]])
    if len(hits) > 1:
        shown = ", ".join(paths.iloc[hits[:5]])
        raise CompareError(f"'{name}' matches {len(hits)} files ({shown}…): give more of the path.")
    close = difflib.get_close_matches(text, paths.tolist(), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise CompareError(f"'{name}' is not in the manifest.{hint}")


def _settings(run_dir: Path, config: Path | None) -> tuple[NearDuplicateSettings, str]:
    saved = run_dir / AUDIT_DIR / CONFIG_FILE
    if config is not None:
        audit_config, source = load_config(AuditConfig, config, {}), str(config)
    elif saved.exists():
        audit_config, source = load_config(AuditConfig, saved, {}), str(saved)
    else:
        audit_config, source = AuditConfig(), "defaults (no audit config found)"
    return NEAR_DUPLICATE.settings_of(audit_config), source


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def _rank(vectors: np.ndarray, of: int, other: int) -> int:
    """Where `other` ranks among `of`'s neighbours by inner product (1 = nearest; `of`
    itself is not counted)."""
    similarity = vectors @ vectors[of]
    closer = similarity > similarity[other]
    closer[of] = False
    return int(closer.sum()) + 1


def _search_step(
    reps: pd.DataFrame, cache: PixelCache, a: int, b: int, settings, test: Side | None = None
) -> Step:
    """Where the pair ranks in the candidate search, computed as the audit does: within the
    run (either picture among the other's neighbours), or with `test` the test picture `a`
    among its neighbours in the training set (the leak check's search)."""
    items = describe(reps, cache)  # as the audit describes them (same sample, same seed)
    ib = reps.index.get_loc(b)
    if test is None:
        ia = reps.index.get_loc(a)
        ranks = {
            kind: min(_rank(vectors, ia, ib), _rank(vectors, ib, ia))
            for kind, vectors in (("colour", items.coarse), ("detail", items.detail))
        }
        query = (items.coarse[ia], items.detail[ia])
        question = "is either among the other's nearest neighbours under a descriptor?"
    else:
        one = describe(test.frame.loc[[a]], test.cache, items.projection)
        query = (one.coarse[0], one.detail[0])
        ranks = {
            kind: _rank_of(vectors, vector, ib)
            for kind, vectors, vector in (
                ("colour", items.coarse, query[0]),
                ("detail", items.detail, query[1]),
            )
        }
        question = "is the training picture among the test picture's nearest neighbours?"
    agreement = max(float(items.coarse[ib] @ query[0]), float(items.detail[ib] @ query[1]))
    near_enough = min(ranks.values()) <= settings.neighbours
    approximate = len(reps) > settings.exact_index_limit
    return Step(
        "candidate search",
        near_enough and agreement >= settings.min_descriptor_similarity,
        f"rank {ranks['colour']} (colour), {ranks['detail']} (detail); agreement {agreement:.3f}",
        f"rank ≤ {settings.neighbours} (neighbours); agreement ≥ "
        f"{settings.min_descriptor_similarity}",
        question + (" (the audit's index is approximate at this size)" if approximate else ""),
    )


def _rank_of(vectors: np.ndarray, query: np.ndarray, other: int) -> int:
    """Where `other` ranks among the neighbours of an outside `query` (1 = nearest)."""
    similarity = vectors @ query
    return int((similarity > similarity[other]).sum()) + 1


@dataclass(frozen=True)
class Side:
    """Where a picture of the pair comes from: a run's manifest and pixel cache."""

    frame: pd.DataFrame
    cache: PixelCache
    data_dir: Path | None

    @classmethod
    def of(cls, run_dir: Path) -> Side:
        try:
            frame = read_manifest(run_dir)
        except FileNotFoundError as exc:
            raise CompareError(str(exc)) from None
        return cls(frame, PixelCache(run_dir), scanned_folder(run_dir))

    def row(self, name: str | Path) -> int:
        row = find_row(self.frame, name, self.data_dir)
        status, error = self.frame.at[row, "status"], self.frame.at[row, "error"]
        if status != "ok" or pd.isna(self.frame.at[row, "cache_shard"]):
            raise CompareError(
                f"{self.frame.at[row, 'path']} was not read ({status}: {error}); "
                "nothing to compare."
            )
        return row


def reference_run(run_dir: Path, against: Path) -> Path:
    """The scanned test set an audit `--against` used (`audit.reference_folder`)."""
    folder = reference_folder(against, run_dir)
    if folder is not None:
        return folder
    raise CompareError(
        f"--against {against}: no scan of it for this run. Run "
        f"'winnow audit {run_dir} --against {against}' first (it scans a data folder)."
    )


def compare_pair(
    run_dir: Path,
    first: str | Path,
    second: str | Path,
    config: Path | None = None,
    search: bool = False,
    against: Path | None = None,
) -> Comparison:
    """Run the near-duplicate check's stages on one pair of the run's pictures; with
    `against`, the leak check's on a test picture `first` and a training picture `second`."""
    run_dir = Path(run_dir)
    train = Side.of(run_dir)
    test = Side.of(reference_run(run_dir, against)) if against is not None else None
    side_a = test or train
    a, b = side_a.row(first), train.row(second)
    if test is None and a == b:
        raise CompareError(f"'{first}' and '{second}' are the same file.")
    settings, source = _settings(run_dir, config)
    result = Comparison(
        (side_a.frame.at[a, "path"], train.frame.at[b, "path"]),
        settings_from=source,
        leak=test is not None,
    )
    reps, rep_of = representatives(train.frame)  # the audit compares each picture's best copy
    result.audit = (
        leak_record(run_dir, *result.paths)
        if test is not None
        else audit_record(run_dir, train.frame, rep_of, a, b)
    )
    row_a, row_b = side_a.frame.loc[[a]], train.frame.loc[[b]]
    exact, exact_verdict = _exact_step(row_a, row_b, leak=test is not None)
    result.steps.append(exact)
    if exact_verdict:
        result.verdict = exact_verdict
        return result
    if search:
        query = a if test is not None else rep_of[a]
        result.steps.append(_search_step(reps, train.cache, query, rep_of[b], settings, test))
    else:
        result.steps.append(
            Step(
                "candidate search",
                None,
                "not re-run",
                f"rank ≤ {settings.neighbours}",
                "add --search to rank the pair among all pictures (describes the whole run)",
            )
        )
    result.steps.append(_aspect_step(row_a, row_b))
    result.steps.extend(_pixel_steps((row_a, side_a), (row_b, train), settings))
    result.verdict = verdict(result)
    return result


def _exact_step(row_a: pd.DataFrame, row_b: pd.DataFrame, leak: bool) -> tuple[Step, str]:
    """Identical bytes or decoded pixels, and the verdict when they are ("" otherwise)."""
    for column, what in (("sha256", "bytes"), ("pixel_sha256", "decoded pixels")):
        if row_a[column].iloc[0] == row_b[column].iloc[0]:
            said = (
                f"an exact leak (identical {what}): the leak check's exact pairs."
                if leak
                else f"exact duplicates (identical {what}): the exact_duplicate check."
            )
            return Step("exact copy", True, f"identical {what}", "—", "exact_duplicate"), said
    return Step("exact copy", None, "bytes and pixels differ", "—", "exact_duplicate"), ""


def _aspect_step(row_a: pd.DataFrame, row_b: pd.DataFrame) -> Step:
    change, limit = aspect_change(row_a, row_b)
    return Step(
        "aspect ratio",
        not bool(change[0] > limit[0]),
        f"×{np.exp(change[0]):.3f}",
        f"≤ ×{np.exp(limit[0]):.3f}",
        "can a crop explain the change of shape?",
    )


def _pixel_steps(
    first: tuple[pd.DataFrame, Side], second: tuple[pd.DataFrame, Side], settings
) -> list[Step]:
    """The verification's pixel tests, the full-resolution changed area, the same-size
    comparison and the series rule, on the pair's cached pictures."""
    (row_a, side_a), (row_b, side_b) = first, second
    regions = [
        Items(rows, side.cache, np.zeros((1, 1)), np.zeros((1, 1))).regions(np.arange(1))[0]
        for rows, side in (first, second)
    ]
    views = [Pictures.of(verification_view(region)[None]) for region in regions]
    alignment = align(*views)  # the crop, fitted once for both sides as verification does
    resolution = np.minimum(longer_sides(row_a), longer_sides(row_b))
    alike = pair_similarity(*views, resolution=resolution, alignment=alignment)
    steps = [
        _test_step(name, test, _MEANINGS[name])
        for name, test in verification_tests(alike, settings).items()
    ]
    sharp = pair_similarity(*views, side=FULL_SIDE, colour=False, alignment=alignment)
    steps.append(
        _test_step(
            "max_changed_area_full",
            full_side_test(sharp, settings),
            _MEANINGS["max_changed_area_full"],
        )
    )
    comparable, strict = same_size_comparable(row_a, row_b, side_a.cache, side_b.cache)
    limit = f"≤ {settings.max_same_size_change}"
    if comparable[0]:
        changed = same_size_change(*regions, reach=0 if strict[0] else 1)
        steps.append(
            Step(
                "max_same_size_change",
                changed <= settings.max_same_size_change,
                _fmt(changed),
                limit,
                "same size, so compared pixel for pixel: share of the ink that differs",
            )
        )
    else:
        steps.append(
            Step(
                "max_same_size_change",
                None,
                "not compared",
                limit,
                "only for files of the same size decoded alike",
            )
        )
    identical = bool(alike.difference[0] < IDENTICAL_DIFFERENCE)
    steps.append(
        Step(
            "series rule",
            True if identical else None,
            f"series score {series_score(sharp)[0]:.4f}"
            + (" (identical once aligned: exempt)" if identical else ""),
            f"stand out by {settings.series_margin} in a cluster > {settings.series_size}",
            "judged against every verified pair: see the audit's decision below",
        )
    )
    return steps


def _test_step(name: str, test, meaning: str) -> Step:
    value = float(test.values[0])
    sign = "≥" if test.at_least else "≤"
    return Step(name, bool(test.passed()[0]), _fmt(value), f"{sign} {test.limit}", meaning)
