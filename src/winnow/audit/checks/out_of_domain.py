"""out_of_domain: images of the other style, e.g. photographs in an illustration set.

Unsupervised, from pixels only (never the file format, name or metadata): hand-crafted
colour and texture statistics (`winnow.audit.style.features`) and, with `out_of_domain_learned`,
the noise level a denoiser trained on the dataset itself finds (`winnow.audit.style.denoiser`),
combined and thresholded by `winnow.audit.style.domain` (a median, its threshold, then one linear
discriminant step learned from what the median flagged). Extra columns:
    photo_likeness            the combined score (larger = more photographic), robust z units:
                              the median robust z of the photo statistics, or the discriminant
                              learned from that median's flags when there were enough
    out_of_domain_evidence    the feature family that pointed out of domain most (colour,
                              texture, learned)
    out_of_domain_borderline  flagged, but with a probability below `out_of_domain_sure`
    out_of_domain_cleared     out of domain on its own pixels, but a copy of an in-domain
                              picture (its duplicate group, when near_duplicate ran first):
                              copies share their style
                              (`winnow.audit.style.domain.shared_by_copies`)
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from winnow.audit.checks.base import AuditContext, Check, CheckResult, empty_columns, ok_rows
from winnow.audit.style.denoiser import fit_denoiser, noise_level, training_sample
from winnow.audit.style.domain import family_evidence, strongest_evidence, verdict
from winnow.audit.style.features import photo_like_features
from winnow.data.manifest import cache_positions, longer_sides

_CHUNK = 2048
MIN_ITEMS = 20  # below this a dataset has no "typical" image to compare with


def compute_features(
    context: AuditContext, rows: pd.DataFrame, learned: bool = False
) -> pd.DataFrame:
    """Photo statistics for `rows`, read from the pixel cache chunk by chunk; with `learned`,
    also `learned_noise` from a denoiser trained on (a sample of) the rows' detail crops."""
    cache = context.cache
    model = None
    if learned:
        sample = rows.iloc[training_sample(len(rows))]
        model = fit_denoiser(cache.take_detail(*cache_positions(sample)))
    longer = longer_sides(rows)
    parts = []
    for start in range(0, len(rows), _CHUNK):
        where = cache_positions(rows.iloc[start : start + _CHUNK])
        detail = cache.take_detail(*where)
        part = photo_like_features(
            cache.take(*where), longer[start : start + _CHUNK], cache.background, detail
        )
        if model is not None:
            part["learned_noise"] = noise_level(model, detail, cache.background)
        parts.append(part)
    features = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    features.index = rows.index
    return features


def run(context: AuditContext) -> CheckResult:
    started = time.perf_counter()
    settings = context.settings
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
    features = compute_features(context, rows, learned=settings.out_of_domain_learned)
    # copies share their style when near_duplicate ran in the same audit (`Check.after`)
    copies = "duplicate_group" in context.frame
    groups = context.frame.loc[rows.index, "duplicate_group"] if copies else None
    result = verdict(features, settings.dominant_style, groups)
    style, likeness, decision = result.style, result.likeness, result.decision
    evidence = family_evidence(result.z) * result.direction
    strongest = strongest_evidence(evidence)
    probability, flagged, cleared = result.probability, result.flagged, result.cleared

    columns.loc[rows.index, CHECK.score_column] = 1.0 - probability
    columns.loc[rows.index, CHECK.issue_column] = flagged
    columns.loc[rows.index, "photo_likeness"] = likeness
    columns.loc[rows.index, "out_of_domain_evidence"] = strongest.where(flagged)
    columns.loc[rows.index, "out_of_domain_borderline"] = flagged & (
        probability < settings.out_of_domain_sure
    )
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
    threshold = decision.threshold * result.direction if np.isfinite(decision.threshold) else None
    summary = {
        "dominant_style": style,
        "out_of_domain_style": "photo" if style == "drawing" else "drawing",
        # the median, the discriminant step when it ran, and the rule that set the threshold
        "method": ", ".join(
            ["median", *(["discriminant"] if result.refined else []), decision.rule]
        ),
        "threshold_rule": decision.rule,
        "separation": None if decision.separation is None else round(decision.separation, 2),
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
        "learned_representation": "denoiser" if settings.out_of_domain_learned else None,
        "mixture_components": decision.components,
        "flagged": int(flagged.sum()),
        "copies_share_style": copies,
        "cleared_as_copies": int(cleared.sum()),
        "borderline": int(columns["out_of_domain_borderline"].sum()),
        "contamination_estimate": round(decision.contamination, 4),  # the mixture's, on pixels
        # what is flagged after copies share their style (cleared copies are not counted)
        "flagged_share": round(float(flagged.sum()) / max(len(rows), 1), 4),
        "sure": settings.out_of_domain_sure,
        "photo_likeness_threshold": threshold,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return CheckResult(columns=columns, tables={"out_of_domain": table}, summary=summary)


CHECK = Check(
    name="out_of_domain",
    description=(
        "Images of the other style than the dataset's (photographs among drawings or the "
        "reverse), from colour and texture statistics; unsupervised, pixels only."
    ),
    needs=("status", "width", "height", "cache_shard", "cache_index", "path", "label"),
    run=run,
    extra_columns=(
        "photo_likeness",
        "out_of_domain_evidence",
        "out_of_domain_borderline",
        "out_of_domain_cleared",
    ),
    after=("duplicate_group",),
)
