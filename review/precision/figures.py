"""The precision figures of one run, computed from its candidates and the human verdicts.

``run_figures(run)`` is the one place that turns the database into numbers: the page, the JSON
and CSV downloads (review.precision.table), the ``precision`` command and the export manifests
(``export_precision``) all use it. Which verdicts count and how a candidate's raters decide is
review.majority (the same rule sets the review state that exports read); the audit strata are
review.audit's; the statistics are review.precision.stats. Precision counts candidates, so ``n``
is the number of rated candidates (with one rater per candidate, the number of effective
verdicts). The method is written up in the README ("Measuring precision").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from relabel.models import Candidate, Run
from review.audit import strata_edges, stratum
from review.precision import stats
from review.precision.exported import (
    adjudication_figures,
    exported_set,
    human_precision,
    label_noise,
)
from review.precision.ratings import Rated, load_ratings
from review.precision.study import study_figures

DEFAULT_TARGET = 0.97
DEFAULT_BINS = 10


def min_verdicts() -> int:
    """Below this many verdicts a figure is reported as "not enough verdicts"."""
    return int(getattr(settings, "PRECISION_MIN_VERDICTS", 10))


# -- figures ----------------------------------------------------------------------------------


def proportion(k: int, n: int, min_n: int) -> dict[str, Any]:
    """A share with its Wilson interval, and whether it rests on enough verdicts."""
    return {**stats.wilson(k, n).as_dict(), "enough": n >= min_n}


def share_of(rated: Sequence[Rated], min_n: int, *, lenient: bool = False) -> dict[str, Any]:
    return proportion(sum(c.valid(lenient=lenient) for c in rated), len(rated), min_n)


def both_ways(rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    return {
        "strict": share_of(rated, min_n),
        "lenient": share_of(rated, min_n, lenient=True),
    }


def grouped(rated: Sequence[Rated], key: str, min_n: int) -> dict[str, Any]:
    groups: dict[str, list[Rated]] = defaultdict(list)
    for c in rated:
        groups[getattr(c, key) or "unknown"].append(c)
    return {name: both_ways(groups[name], min_n) for name in sorted(groups)}


def gate_counts(run: Run) -> dict[str, Any]:
    """The run's counts (``Run.counts``) as the figures report them."""
    counts = run.counts()
    by_gate = {
        Candidate.Gate.AUTO_ACCEPTED: counts.auto_accepted,
        Candidate.Gate.NEEDS_REVIEW: counts.needs_review,
        Candidate.Gate.REJECTED: counts.rejected,
    }
    return {
        "items": counts.total,
        "candidates": counts.candidates,
        "by_gate": {**{str(g): n for g, n in by_gate.items()}, "discarded": counts.discarded},
        "by_status": dict(sorted(counts.by_status.items())),
    }


def pool_strata(
    pool: Sequence[float], audited: Sequence[tuple[float, bool]], edges: Sequence[float]
) -> list[stats.Stratum]:
    sizes, ks, ns = Counter(), Counter(), Counter()
    for confidence in pool:
        sizes[stratum(confidence, edges)] += 1
    for confidence, valid in audited:
        ns[stratum(confidence, edges)] += 1
        ks[stratum(confidence, edges)] += int(valid)
    return [stats.Stratum(sizes[i], ks[i], ns[i]) for i in range(len(edges) - 1)]


def strata_table(strata: Sequence[stats.Stratum], edges: Sequence[float]) -> list[dict]:
    return [
        {"low": edges[i], "high": edges[i + 1], "size": s.size, "n": s.n, "k": s.k}
        for i, s in enumerate(strata)
    ]


def audit_and_export(run: Run, rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """The auto-accepted pool's precision from its blind audit sample, and the precision of the
    exported set (review.precision.exported): the unrated auto-accepted estimated from the audit
    stratum by stratum, the human-approved from the checked approvals, the adjudicated apart."""
    edges = strata_edges(run)
    by_id = {c.id: c for c in rated}
    pool = list(Candidate.objects.for_run(run).auto_accepted().values_list("id", "confidence"))
    audited = [
        (c.confidence, c.audit_valid())
        for c in rated
        if c.gate == Candidate.Gate.AUTO_ACCEPTED and c.audit_ratings
    ]
    pool_est = pool_strata([conf for _, conf in pool], audited, edges)
    audit_fig = {
        **stats.stratified_proportion(pool_est).as_dict(),
        "k": sum(valid for _, valid in audited),
        "enough": len(audited) >= min_n,
        "pool": len(pool),
        "method": "post-stratified by confidence, Wilson at the effective sample size",
        "strata": strata_table(pool_est, edges),
    }
    unrated = pool_strata([conf for cid, conf in pool if cid not in by_id], audited, edges)
    export_fig = {**exported_set(rated, unrated, min_n), "strata": strata_table(unrated, edges)}
    return {
        "audit_precision": audit_fig,
        "export_precision": export_fig,
        "label_noise": label_noise(export_fig),
        "human_precision": human_precision(rated, min_n),
        "adjudication": adjudication_figures(rated, min_n),
    }


def agreement(rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """Cohen's kappa when every multiply-rated candidate has two raters (first and second verdict
    in time as rater A and B), Fleiss' kappa when some have more; on strict validity."""
    multi = [c.rater_ratings for c in rated if len(c.rater_ratings) >= 2]
    base = {"n": len(multi), "enough": len(multi) >= min_n, "categories": ["valid", "invalid"]}
    if not multi:
        return {**base, "method": None, "value": None, "low": None, "high": None}
    if all(len(ratings) == 2 for ratings in multi):
        pairs = [(ratings[0].valid(), ratings[1].valid()) for ratings in multi]
        kappa = stats.cohen_kappa(pairs)
        return {**base, **kappa.as_dict(), "method": "cohen", "interval": "Cohen 1960 SE"}
    table = stats.counts_table([[r.valid() for r in ratings] for ratings in multi], [True, False])
    kappa = stats.fleiss_kappa(table)
    return {
        **base,
        **kappa.as_dict(),
        "method": "fleiss",
        "interval": f"bootstrap over items, {stats.BOOTSTRAP_RESAMPLES} resamples, fixed seed",
        "raters_per_item": dict(sorted(Counter(len(ratings) for ratings in multi).items())),
    }


def calibration(rated: Sequence[Rated], bins: int, min_n: int) -> dict[str, Any]:
    pairs = [(c.confidence, c.valid()) for c in rated]
    table = stats.reliability_bins(pairs, bins)
    ece = stats.expected_calibration_error(table)
    return {
        "ece": ece,
        "n": len(pairs),
        "enough": len(pairs) >= min_n,
        "bins": [b.as_dict() for b in table],
    }


def by_bucket(rated: Sequence[Rated], bins: int, min_n: int) -> list[dict[str, Any]]:
    members: list[list[Rated]] = [[] for _ in range(bins)]
    for c in rated:
        members[stats.bin_index(c.confidence, bins)].append(c)
    return [
        {"low": round(i / bins, 10), "high": round((i + 1) / bins, 10), **both_ways(group, min_n)}
        for i, group in enumerate(members)
    ]


def threshold(run: Run, rated: Sequence[Rated], target: float, min_n: int) -> dict[str, Any]:
    """The lowest accept threshold meeting ``target`` and how many more it would auto-accept:
    candidates at or above it that the gate did not reject (a judge's veto stays binding)."""
    best = stats.recommend_threshold([(c.confidence, c.valid()) for c in rated], target)
    current = Candidate.objects.for_run(run).auto_accepted().count()
    out: dict[str, Any] = {
        "target": target,
        "current": run.accept_threshold,
        "currently_accepted": current,
        "n": len(rated),
        "enough": best is not None,
    }
    if best is None:
        return {**out, "value": None, "would_accept": None, "more": None}
    would = (
        Candidate.objects.for_run(run)
        .filter(confidence__gte=best.threshold)
        .exclude(gate=Candidate.Gate.REJECTED)
        .count()
    )
    return {
        **out,
        "value": best.threshold,
        "low": best.low,
        "precision": best.value,
        "rated_above": best.n,
        "would_accept": would,
        "more": would - current,
    }


def judge_agreement(rated: Sequence[Rated], min_n: int) -> list[dict[str, Any]]:
    """Each judge's accept/reject against the humans' strict majority: share agreeing, kappa."""
    pairs: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for c in rated:
        human = c.valid()
        for j in c.judges:
            if isinstance(j, dict) and isinstance(j.get("accept"), bool):
                key = (str(j.get("name") or j.get("model") or "judge"), str(j.get("model", "")))
                pairs[key].append((j["accept"], human))
    return [
        {
            "name": name,
            "model": model,
            "n": len(got),
            "agreement": proportion(sum(a == b for a, b in got), len(got), min_n),
            "kappa": {**stats.cohen_kappa(got).as_dict(), "enough": len(got) >= min_n},
        }
        for (name, model), got in sorted(pairs.items())
    ]


def run_figures(
    run: Run, *, target: float = DEFAULT_TARGET, bins: int = DEFAULT_BINS, min_n: int | None = None
) -> dict[str, Any]:
    """Every precision figure of ``run``, JSON-serialisable. Figures that rest on fewer than
    ``min_n`` verdicts carry ``"enough": false``."""
    min_n = min_verdicts() if min_n is None else min_n
    rated, verdict_counts = load_ratings(run)
    calib = calibration(rated, bins, min_n)
    recommendation = threshold(run, rated, target, min_n)
    return {
        "run": run.pk,
        "run_name": run.name or f"run {run.pk}",
        "dataset": run.dataset.name,
        "backend": run.backend,
        "prompt_version": run.prompt_version,
        "accept_threshold": run.accept_threshold,
        "reject_threshold": run.reject_threshold,
        "target": target,
        "min_verdicts": min_n,
        "counts": gate_counts(run),
        "verdicts": verdict_counts,
        "precision_strict": share_of(rated, min_n),
        "precision_lenient": share_of(rated, min_n, lenient=True),
        "by_benchmark": grouped(rated, "benchmark", min_n),
        "by_failure_type": grouped(rated, "failure_type", min_n),
        "by_bucket": by_bucket(rated, bins, min_n),
        **audit_and_export(run, rated, min_n),
        "kappa": agreement(rated, min_n),
        "calibration": calib,
        "ece": calib["ece"],
        "threshold": recommendation,
        "recommended_threshold": recommendation["value"],
        "judges": judge_agreement(rated, min_n),
        "studies": study_figures(run, min_n),
    }
