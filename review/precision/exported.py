"""The precision of the exported set, estimated from what was measured.

What is exported (``CandidateQuerySet.approved``) falls into three strata, each with its own
evidence:

- **auto-accepted**, unrated: the blind audit sample of the auto-accepted pool, post-stratified by
  confidence (review.audit's strata), as for the pool's own figure;
- **human-approved** (the raters' majority approved it, no adjudication): how often a rater's
  approval is right, measured on the approvals that something checked: a second rater's verdict
  on the same candidate (double rating, the blind re-audit of a share of approvals, studies) or
  an adjudication (review.majority.reference_validity). Human approval is never assumed right;
- **adjudicated** (the adjudicator approved it): adjudications are the reference the raters are
  measured against, so nothing measures the adjudicators themselves; the stratum counts as n of n
  valid, and its Jeffreys interval narrows with n but never closes.

The strata are combined into one estimate, weighted by their sizes in the exported set, with an
interval from each stratum's Jeffreys posterior (review.precision.stats.stratified_jeffreys).
When a stratum with members has too little evidence the figure is not available, and says why
and on how many verdicts; the page, the export page, the manifest and ``manage.py precision
--json`` all show this one figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from review import majority
from review.precision import stats
from review.precision.format import show
from review.precision.ratings import Rated

METHOD = (
    "stratified: unrated auto-accepted from the blind audit (by confidence), human-approved "
    "from the checked approvals of the raters, adjudicated as n of n; Jeffreys posteriors "
    f"combined by Monte Carlo ({stats.MC_DRAWS:,} draws, fixed seed)"
)


def approval_checks(rated: Sequence[Rated]) -> tuple[int, int]:
    """(confirmed, checked): every rater's approval that a second rater or an adjudicator also
    judged, and how many of them that reference found valid."""
    confirmed = checked = 0
    for c in rated:
        for rating in c.rater_ratings:
            if not rating.valid(lenient=True):
                continue
            reference = majority.reference_validity(c.ratings, rating.rater_id)
            if reference is not None:
                checked += 1
                confirmed += int(reference)
    return confirmed, checked


def shortfall(sizes: dict[str, int], samples: dict[str, int], min_n: int) -> str | None:
    """Why the estimate is not available, or None when every stratum has its evidence."""
    if not sum(sizes.values()):
        return "nothing is exported yet: n=0"
    if sizes["auto"] and not samples["auto"]:
        return f"no blind audit verdict on the {sizes['auto']} unrated auto-accepted: n=0"
    if sizes["auto"] and samples["auto"] < min_n:
        return f"not enough audit verdicts: n={samples['auto']}"
    if sizes["human"] and not samples["human"]:
        return (
            "the raters' accuracy is unmeasured: no approval was checked by a second rater "
            "or an adjudicator: n=0"
        )
    if sizes["human"] and samples["human"] < min_n:
        return f"not enough checked approvals to measure the raters' accuracy: n={samples['human']}"
    return None


def parts_table(
    confidence: Sequence[stats.Stratum], human: tuple[int, int, int], adjudicated: int
) -> list[dict[str, Any]]:
    """The three strata as the page and the JSON show them (the audit's by confidence)."""
    size_h, confirmed, checked = human
    audit = {"size": sum(s.size for s in confidence), "k": sum(s.k for s in confidence)}
    audit["n"] = sum(s.n for s in confidence)
    rows = [
        {"stratum": "auto-accepted, unrated (blind audit)", **audit},
        {
            "stratum": "human-approved (checked approvals)",
            "size": size_h,
            "k": confirmed,
            "n": checked,
        },
        {"stratum": "adjudicated", "size": adjudicated, "k": adjudicated, "n": adjudicated},
    ]
    for row in rows:
        row["value"] = stats.wilson(row["k"], row["n"]).value
    return rows


def exported_set(
    rated: Sequence[Rated], unrated_strata: Sequence[stats.Stratum], min_n: int
) -> dict[str, Any]:
    """The exported set's precision: every stratum estimated from its own evidence."""
    approved = [c for c in rated if c.valid(lenient=True)]
    adjudicated = sum(1 for c in approved if c.adjudication is not None)
    human = len(approved) - adjudicated
    confirmed, checked = approval_checks(rated)
    confidence = stats.collapse_empty_strata(unrated_strata)
    sizes = {"auto": sum(s.size for s in unrated_strata), "human": human, "adj": adjudicated}
    samples = {"auto": sum(s.n for s in confidence), "human": checked, "adj": adjudicated}
    total = sum(sizes.values())
    parts = [stats.Part(s.size / total, s.k, s.n) for s in confidence] if total else []
    if total:
        parts += [stats.Part(human / total, confirmed, checked)]
        parts += [stats.Part(adjudicated / total, adjudicated, adjudicated)]
    reason = shortfall(sizes, samples, min_n)
    estimate = None if reason else stats.stratified_jeffreys(parts)
    if estimate is None and reason is None:
        reason = f"a stratum of the exported set has no verdict: n={sum(samples.values())}"
    value, low, high = estimate or (None, None, None)
    figure = {
        "available": reason is None,
        "value": value,
        "low": low,
        "high": high,
        "n": sum(samples.values()),
        "enough": reason is None,
        "exportable": total,
        "verified": len(approved),
        "estimated": sizes["auto"],
        "audited": samples["auto"],
        "human_approved": human,
        "adjudicated": adjudicated,
        "approvals_checked": checked,
        "approvals_confirmed": confirmed,
        "method": METHOD,
        "parts": parts_table(confidence, (human, confirmed, checked), adjudicated),
    }
    if reason:
        figure["reason"] = reason
    return {**figure, "text": show(figure)}


def label_noise(exported: dict[str, Any]) -> dict[str, Any]:
    """One minus the exported set's precision, its interval mirrored."""
    noise = {
        "available": exported["available"],
        "value": None if exported["value"] is None else 1 - exported["value"],
        "low": None if exported["high"] is None else 1 - exported["high"],
        "high": None if exported["low"] is None else 1 - exported["low"],
        "n": exported["n"],
        "enough": exported["enough"],
        **({"reason": exported["reason"]} if "reason" in exported else {}),
    }
    return {**noise, "text": show(noise)}


def human_precision(rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """How often a rater's approval is right, on the approvals a second rater or an
    adjudicator checked (Wilson interval)."""
    confirmed, checked = approval_checks(rated)
    return {
        **stats.wilson(confirmed, checked).as_dict(),
        "enough": checked >= min_n,
        "method": "approvals checked against a second rater's verdict or an adjudication",
    }


def adjudication_figures(rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """Adjudicated candidates apart: how many, how they were decided, how often the adjudicator
    went against the raters' majority, and how many disagreements wait for one."""
    decided = [c for c in rated if c.adjudication is not None]
    overturned = sum(
        c.adjudication.valid(lenient=True) != majority.majority(c.rater_ratings, lenient=True)
        for c in decided
    )
    approved = sum(c.valid(lenient=True) for c in decided)
    return {
        "n": len(decided),
        "approved": approved,
        "rejected": len(decided) - approved,
        "overturned": overturned,
        "pending": sum(majority.needs_adjudication(c.ratings) for c in rated),
        "precision_strict": {
            **stats.wilson(sum(c.valid() for c in decided), len(decided)).as_dict(),
            "enough": len(decided) >= min_n,
        },
    }
