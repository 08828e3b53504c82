"""out_of_domain: images of the other style, e.g. photographs in an illustration set.

Unsupervised, from pixels only (never the file format, name or metadata): hand-crafted
colour and texture statistics (`winnow.audit.style.features`) and, with `learned`,
the noise level a denoiser trained on the dataset itself finds (`winnow.audit.style.denoiser`),
combined and thresholded by `winnow.audit.style.domain` (a median, its threshold, then one linear
discriminant step learned from what the median flagged). The settings are the audit
config's `out_of_domain` section (`OutOfDomainSettings`). Extra columns:
    photo_likeness            the combined score (larger = more photographic), robust z units:
                              the median robust z of the photo statistics, or the discriminant
                              learned from that median's flags when there were enough
    out_of_domain_evidence    the feature family that pointed out of domain most (colour,
                              texture, learned)
    out_of_domain_borderline  flagged, but with a probability below `sure`
    out_of_domain_cleared     out of domain on its own pixels, but a copy of an in-domain
                              picture (its duplicate group, when near_duplicate ran first):
                              copies share their style
                              (`winnow.audit.style.domain.shared_by_copies`)
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from winnow.audit.checks.base import (
    AuditContext,
    Check,
    CheckResult,
    CleanRule,
    ReportInputs,
    ReportSection,
    empty_columns,
    ok_rows,
)
from winnow.audit.sections import figures, marked, more, ranked, unavailable
from winnow.audit.style.denoiser import fit_denoiser, noise_level, training_sample
from winnow.audit.style.domain import family_evidence, strongest_evidence, verdict
from winnow.audit.style.features import photo_like_features
from winnow.audit.style.selftrain import cache_loader, self_trained
from winnow.data.manifest import cache_positions, longer_sides

_CHUNK = 512  # rows per engine task: several per worker, so none waits on the last
MIN_ITEMS = 20  # below this a dataset has no "typical" image to compare with


class OutOfDomainSettings(BaseModel):
    """dominant_style: the style of the dataset (`auto` detects it); the other is flagged.
    sure: out-of-domain probability from which a flag is sure (dropped by `clean`); flags
      below it are borderline (sent to review).
    learned: also train a small denoiser on the dataset's own detail crops and use the
      noise it finds as one more statistic (`winnow.audit.style.denoiser`; about 25 s of
      training plus 1 ms per image on 2 cores). Off by default: it reads JPEG ringing as
      noise (docs/benchmarks.md).
    self_training: when the statistics are sure of enough out-of-domain images, train a
      classifier on them and on sure in-domain ones, each also shown grey, small, cropped
      full-frame and as JPEG, and let it decide (`winnow.audit.style.selftrain`): it finds
      the kinds of the other style that the statistics' one direction misses (grey faces,
      landscape crops). About 10 s more on 8,000 images."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    legacy_keys: ClassVar[dict[str, str]] = {
        "dominant_style": "dominant_style",
        "out_of_domain_sure": "sure",
        "out_of_domain_learned": "learned",
    }

    dominant_style: Literal["auto", "drawing", "photo"] = "auto"
    sure: float = 0.8
    learned: bool = False
    self_training: bool = True

    @field_validator("sure")
    @classmethod
    def _probability(cls, value: float) -> float:
        if not 0.5 <= value <= 1:
            raise ValueError(f"sure must be in [0.5, 1], got {value:g}")
        return value


def compute_features(
    context: AuditContext, rows: pd.DataFrame, learned: bool = False
) -> pd.DataFrame:
    """Photo statistics for `rows`, read from the pixel cache chunk by chunk (each chunk a
    unit of work for the audit's engine); with `learned`, also `learned_noise` from a
    denoiser trained on (a sample of) the rows' detail crops."""
    cache = context.cache
    model = None
    if learned:
        sample = rows.iloc[training_sample(len(rows))]
        model = fit_denoiser(cache.take_detail(*cache_positions(sample)))
    shard, index = cache_positions(rows)
    longer = longer_sides(rows)
    spans = [slice(start, start + _CHUNK) for start in range(0, len(rows), _CHUNK)]
    chunks = ((shard[span], index[span], longer[span]) for span in spans)
    parts = list(context.engine.map(_feature_chunk, chunks, (cache, model)))
    features = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    features.index = rows.index
    return features


def _feature_chunk(chunk: tuple[np.ndarray, ...], shared: tuple) -> pd.DataFrame:
    """`compute_features` for one chunk of rows (an engine task): their cache positions
    and longer sides in, their statistics out."""
    (shard, index, longer), (cache, model) = chunk, shared
    detail = cache.take_detail(shard, index)
    part = photo_like_features(cache.take(shard, index), longer, cache.background, detail)
    if model is not None:
        part["learned_noise"] = noise_level(model, detail, cache.background)
    return part


def run(context: AuditContext) -> CheckResult:
    started = time.perf_counter()
    settings = CHECK.settings_of(context.settings)
    columns = empty_columns(CHECK, context.frame)
    columns["photo_likeness"] = np.nan
    columns["out_of_domain_evidence"] = pd.Series(None, index=columns.index, dtype=object)
    columns["out_of_domain_borderline"] = False
    columns["out_of_domain_cleared"] = False
    rows = ok_rows(context.frame)
    rows = rows[rows["cache_shard"].notna()]
    if len(rows) < MIN_ITEMS:
        return CheckResult(
            columns=columns, summary={"skipped": f"fewer than {MIN_ITEMS} readable images"}
        )
    features = compute_features(context, rows, learned=settings.learned)
    # copies share their style when near_duplicate ran in the same audit (`Check.after`)
    copies = "duplicate_group" in context.frame
    groups = context.frame.loc[rows.index, "duplicate_group"] if copies else None
    result = verdict(features, settings.dominant_style, groups)
    statistics = result.decision  # the statistics' own decision, before any self-training
    if settings.self_training:
        loader = cache_loader(context.cache, rows)
        background = context.cache.background
        result = self_trained(result, features, loader, background, groups, engine=context.engine)
    likeness, decision = result.likeness, result.decision
    evidence = family_evidence(result.z) * result.direction
    strongest = strongest_evidence(evidence)
    probability, flagged, cleared = result.probability, result.flagged, result.cleared

    columns.loc[rows.index, CHECK.score_column] = 1.0 - probability
    columns.loc[rows.index, CHECK.issue_column] = flagged
    columns.loc[rows.index, "photo_likeness"] = likeness
    columns.loc[rows.index, "out_of_domain_evidence"] = strongest.where(flagged)
    columns.loc[rows.index, "out_of_domain_borderline"] = flagged & (probability < settings.sure)
    columns.loc[rows.index, "out_of_domain_cleared"] = cleared
    for column in (CHECK.issue_column, "out_of_domain_borderline", "out_of_domain_cleared"):
        columns[column] = columns[column].astype(bool)

    table = pd.DataFrame(
        {
            "path": rows["path"],
            "label": rows["label"],
            "probability": probability,
            "probability_alone": decision.probability,  # its own pixels, before its copies
            "photo_likeness": likeness,
            **{f"{family}_evidence": evidence[family] for family in evidence},
        }
    ).sort_values("probability", ascending=False)
    summary = _summary(result, statistics, settings, copies, columns, len(rows))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return CheckResult(columns=columns, tables={"out_of_domain": table}, summary=summary)


def _summary(result, statistics, settings, copies: bool, columns, rows: int) -> dict:
    """What the check decided and how: the style, the rules and steps that ran, counts."""
    decision, flagged = result.decision, result.flagged
    threshold = decision.threshold * result.direction if np.isfinite(decision.threshold) else None
    return {
        "dominant_style": result.style,
        "out_of_domain_style": "photo" if result.style == "drawing" else "drawing",
        # the median, the discriminant step when it ran, and the rule that set the threshold
        "method": ", ".join(
            [
                "median",
                *(["discriminant"] if result.refined else []),
                statistics.rule,
                *([decision.rule] if result.self_trained else []),
            ]
        ),
        # the rule that set the statistics' threshold (and the seeds of self-training)
        "threshold_rule": statistics.rule,
        "separation": None if statistics.separation is None else round(statistics.separation, 2),
        # the discriminant step learns from the first pass's flags
        # (winnow.audit.style.domain.verdict)
        "discriminant_step": result.refined,
        "first_pass_flagged": int(result.first.flagged.sum()),
        # what the discriminant weighs, towards the other style (largest magnitude first)
        "discriminant_weights": (
            {
                name: round(float(weight), 3)
                for name, weight in result.weights.sort_values(key=abs, ascending=False).items()
            }
            if result.weights is not None
            else None
        ),
        "learned_representation": "denoiser" if settings.learned else None,
        # seeds of the self-trained classifier when it decided (0: the statistics decided)
        "self_trained_seeds": result.self_trained,
        "mixture_components": statistics.components,
        "flagged": int(flagged.sum()),
        "copies_share_style": copies,
        "cleared_as_copies": int(result.cleared.sum()),
        "borderline": int(columns["out_of_domain_borderline"].sum()),
        "contamination_estimate": round(decision.contamination, 4),  # estimated share, on pixels
        # what is flagged after copies share their style (cleared copies are not counted)
        "flagged_share": round(float(flagged.sum()) / max(rows, 1), 4),
        "sure": settings.sure,
        "photo_likeness_threshold": threshold,
    }


MAX_SURE, MAX_BORDER, MAX_NEAREST, MAX_CLEARED = 48, 24, 12, 12


def report_data(inputs: ReportInputs) -> dict:
    """The flagged images (sure, then borderline), the unflagged ones nearest the other
    style, the cleared copies, and the histogram of photo-likeness with the threshold."""
    if (shown_instead := unavailable(CHECK, inputs)) is not None:
        return shown_instead
    frame, numbers = inputs.frame, inputs.summary["checks"][CHECK.name]
    other = numbers["out_of_domain_style"]
    direction = 1.0 if other == "photo" else -1.0  # photographs score high, drawings low
    scored = frame[frame["photo_likeness"].notna()]
    flagged = scored[CHECK.issue_column].astype(bool)
    likeness = scored["photo_likeness"].astype(float)
    cleared = (
        scored["out_of_domain_cleared"].astype(bool)
        if "out_of_domain_cleared" in scored
        else pd.Series(False, index=scored.index)
    )
    kept = ~flagged & ~cleared
    prob = 1.0 - scored[CHECK.score_column].astype(float)

    def most_likely(rows: pd.DataFrame, limit: int) -> list:
        rows = rows.loc[prob[rows.index].sort_values(ascending=False).index].head(limit)
        return figures(
            inputs.thumbs,
            [(r.path, f"p={p:.2f} · {_evidence_tag(r.out_of_domain_evidence)}")
             for r, p in zip(rows.itertuples(), prob[rows.index], strict=True)],
        )  # fmt: skip

    sure = scored[flagged & ~scored["out_of_domain_borderline"].astype(bool)]
    border = scored[(prob >= 0.3) & (prob < numbers["sure"])]
    # the unflagged images nearest the other style, so a miss (or a folder that mixes both
    # styles in similar shares, where no minority stands out) can be seen, not only inferred
    nearest = likeness[kept].mul(direction).sort_values(ascending=False).head(MAX_NEAREST)
    return {
        "n": {"flagged_share": None, "separation": None, **numbers},
        "skipped": None,
        "other": other,
        "weights": _weights_text(numbers.get("discriminant_weights") or {}, other),
        "chart": _likeness_chart(scored, likeness, flagged, cleared, kept, numbers, direction),
        "sure": most_likely(sure, MAX_SURE),
        "sure_more": more(len(sure) - MAX_SURE, marked(CHECK.issue_column)),
        "border": most_likely(border, MAX_BORDER),
        "border_more": more(len(border) - MAX_BORDER, ranked(CHECK.score_column)),
        "nothing_flagged": not flagged.any(),
        "nearest": figures(
            inputs.thumbs,
            [(scored.at[i, "path"], f"likeness {likeness[i]:+.2f}") for i in nearest.index],
        ),
        "cleared": _cleared_beside_originals(inputs, scored, flagged, cleared),
    }


def _cleared_beside_originals(inputs, scored, flagged, cleared) -> list:
    """Each cleared copy beside the in-domain picture of its group that cleared it."""
    if not cleared.any():
        return []
    in_domain = scored[~flagged & ~cleared & scored["duplicate_group"].notna()]
    original = in_domain.groupby("duplicate_group")["path"].first()
    items = []
    for r in scored[cleared].head(MAX_CLEARED).itertuples():
        items.append((r.path, "cleared: looks out of domain alone", False))
        if r.duplicate_group in original.index:
            items.append((original[r.duplicate_group], "same picture, in domain", True))
    return figures(inputs.thumbs, items)


def _likeness_chart(scored, likeness, flagged, cleared, kept, numbers, direction) -> str:
    """The histogram of photo-likeness: in domain, flagged, cleared, and the threshold."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from winnow.pages import plain_number, png_base64

    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    bins = np.linspace(likeness.min(), likeness.max(), 60)
    ax.hist(likeness[kept], bins=bins, color="#4a72b0", label=f"in domain ({int(kept.sum())})")
    ax.hist(likeness[flagged], bins=bins, color="#d2502a", label=f"flagged ({int(flagged.sum())})")
    if cleared.any():
        ax.hist(
            likeness[cleared],
            bins=bins,
            color="#e8b04a",
            label=f"copies of in-domain pictures ({int(cleared.sum())})",
        )
    if numbers.get("photo_likeness_threshold") is not None:
        ax.axvline(
            numbers["photo_likeness_threshold"],
            color="#222",
            linestyle="--",
            label="automatic threshold",
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
    families = (
        "colour, texture and learned"
        if numbers.get("learned_representation")
        else "colour and texture"
    )
    if numbers.get("self_trained_seeds"):
        how = f"log-odds of a classifier self-trained on the {families} statistics"
    elif numbers.get("discriminant_step"):
        how = f"a discriminant on the {families} statistics, robust z"
    else:
        how = f"median robust z of {families} statistics"
    ax.set_xlabel(f"photo-likeness ({how})")
    ax.set_ylabel("images")
    # away from the flagged tail: photographs on the right, drawings on the left
    ax.legend(fontsize=8, loc="upper left" if direction > 0 else "upper right")
    return png_base64(fig)


def _weights_text(weights: dict[str, float], other: str, shown: int = 3) -> str:
    """The discriminant's largest weights towards and away from the other style, in words."""
    toward = [f"{n} ({w:+.1f})" for n, w in weights.items() if w > 0][:shown]
    against = [f"{n} ({w:+.1f})" for n, w in weights.items() if w < 0][:shown]
    parts = []
    if toward:
        parts.append(f"Weighed most towards {other}s: {', '.join(toward)}.")
    if against:
        parts.append(f"Weighed most against: {', '.join(against)}.")
    if parts:
        parts.append("(A weight is what a statistic adds given the others.)")
    return " ".join(parts)


def _evidence_tag(evidence: object) -> str:
    """The evidence family of a flagged image; an unflagged one (a borderline image under the
    threshold) has none (NaN, which is truthy, so `or` would print "nan")."""
    return str(evidence) if isinstance(evidence, str) and evidence else "near threshold"


def _borderline(frame: pd.DataFrame) -> pd.Series:
    """Flags under the sure probability (the `sure` setting)."""
    column = frame.get("out_of_domain_borderline", pd.Series(False, index=frame.index))
    return column.fillna(False).astype(bool)


def details(numbers: dict) -> str:
    if "dominant_style" not in numbers:
        return f"Skipped: {numbers.get('skipped', '')}"
    return (
        f"Dominant style {numbers['dominant_style']}; {numbers['flagged']} look like a "
        f"{numbers['out_of_domain_style']} ({numbers['borderline']} borderline, "
        f"{numbers['cleared_as_copies']} cleared as copies of in-domain pictures); "
        + (
            f"decided by a classifier self-trained on the {seeds} images the statistics were "
            f"sure of (their threshold: {numbers['threshold_rule']})."
            if (seeds := numbers.get("self_trained_seeds"))
            else f"threshold by {numbers['threshold_rule']}."
        )
    )


CHECK = Check(
    name="out_of_domain",
    description=(
        "Images of the other style than the dataset's (photographs among drawings or the "
        "reverse), from colour and texture statistics; unsupervised, pixels only."
    ),
    needs=("status", "width", "height", "cache_shard", "cache_index", "path", "label"),
    settings=OutOfDomainSettings,
    run=run,
    details=details,
    extra_columns=(
        "photo_likeness",
        "out_of_domain_evidence",
        "out_of_domain_borderline",
        "out_of_domain_cleared",
    ),
    after=("duplicate_group",),
    title="Out of domain",
    # sure flags are dropped; those under `sure` go to a person
    clean_rules=(
        CleanRule("out_of_domain", "drop", "out_of_domain", rows=lambda f: ~_borderline(f)),
        CleanRule("out_of_domain_borderline", "review", "out_of_domain", rows=_borderline),
    ),
    report=ReportSection("Out of domain", report_data, "checks/out_of_domain.html"),
)
