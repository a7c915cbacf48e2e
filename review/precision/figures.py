"""The precision figures of one run, computed from its candidates and the human verdicts.

``run_figures(run)`` is the one place that turns the database into numbers: the page, the JSON
and CSV downloads, the ``precision`` command and the export manifests (``export_precision``)
all use it. The statistics themselves live in review.precision.stats; the method is written up in
review/precision-README-section.md.

Which verdicts count: verdicts are append-only; an undo cancels the verdict it points at (an
undo of an undo restores it); skips say nothing about validity. The effective verdict of a
(candidate, rater) is their latest verdict that is neither cancelled, an undo, nor a skip. A
candidate's validity is the majority of its raters' effective verdicts, a tie counting as
invalid; precision counts candidates, so ``n`` is the number of rated candidates (with one rater
per candidate, the number of effective verdicts).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count

from relabel.models import Candidate, Run, RunItem
from review.models import Verdict
from review.precision import stats

DEFAULT_TARGET = 0.97
DEFAULT_BINS = 10
STRICT = {"accept": True, "valid": True, "edit": False, "reject": False, "invalid": False}
LENIENT = {**STRICT, "edit": True}
NOT_RATINGS = {Verdict.Decision.SKIP, Verdict.Decision.UNDO}


def min_verdicts() -> int:
    """Below this many verdicts a figure is reported as "not enough verdicts"."""
    return int(getattr(settings, "PRECISION_MIN_VERDICTS", 10))


# -- from verdict rows to ratings -------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    """The effective verdict of one rater on one candidate; ``order`` is its place in time."""

    candidate_id: int
    rater_id: int
    kind: str
    decision: str
    order: int

    def valid(self, *, lenient: bool = False) -> bool:
        return (LENIENT if lenient else STRICT)[self.decision]


@dataclass(frozen=True)
class VerdictRow:
    id: int
    candidate_id: int
    rater_id: int
    kind: str
    decision: str
    undoes_id: int | None


def cancelled_ids(rows: Sequence[VerdictRow]) -> set[int]:
    """Ids of verdicts an effective undo cancels. Newest first: an undo that is itself undone
    cancels nothing, so the verdict it pointed at stands again."""
    cancelled: set[int] = set()
    for row in reversed(rows):
        if row.id not in cancelled and row.decision == Verdict.Decision.UNDO and row.undoes_id:
            cancelled.add(row.undoes_id)
    return cancelled


def effective_ratings(rows: Sequence[VerdictRow]) -> list[Rating]:
    """The latest valid-or-not verdict per (candidate, rater); ``rows`` are in time order."""
    cancelled = cancelled_ids(rows)
    latest: dict[tuple[int, int], Rating] = {}
    for order, row in enumerate(rows):
        if row.id in cancelled or row.decision in NOT_RATINGS or row.decision not in STRICT:
            continue
        latest[(row.candidate_id, row.rater_id)] = Rating(
            row.candidate_id, row.rater_id, row.kind, row.decision, order
        )
    return sorted(latest.values(), key=lambda r: r.order)


def majority(ratings: Iterable[Rating], *, lenient: bool = False) -> bool:
    """Valid when more raters say valid than invalid; a tie is invalid (the cautious side)."""
    votes = [r.valid(lenient=lenient) for r in ratings]
    return sum(votes) * 2 > len(votes)


@dataclass
class Rated:
    """A candidate with at least one effective verdict."""

    id: int
    gate: str
    confidence: float
    benchmark: str
    failure_type: str
    judges: list[dict[str, Any]]
    ratings: list[Rating] = field(default_factory=list)

    def valid(self, *, lenient: bool = False) -> bool:
        return majority(self.ratings, lenient=lenient)

    @property
    def audit_ratings(self) -> list[Rating]:
        return [r for r in self.ratings if r.kind == "audit"]


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


def load_ratings(run: Run) -> tuple[list[Rated], dict[str, Any]]:
    """The run's rated candidates, and counts of the verdicts behind them."""
    rows = [
        VerdictRow(*values)
        for values in Verdict.objects.filter(candidate__run=run)
        .order_by("created_at", "id")
        .values_list("id", "candidate_id", "rater_id", "kind", "decision", "undoes_id")
    ]
    ratings = effective_ratings(rows)
    by_candidate: dict[int, list[Rating]] = defaultdict(list)
    for r in ratings:
        by_candidate[r.candidate_id].append(r)
    fields = ("id", "gate", "confidence", "trajectory__source_format", "item__failure_type")
    rated = [
        Rated(cid, gate, conf, fmt, ftype, judges or [], by_candidate[cid])
        for cid, gate, conf, fmt, ftype, judges in Candidate.objects.filter(
            id__in=Verdict.objects.filter(candidate__run=run).values("candidate_id")
        )
        .order_by("id")
        .values_list(*fields, "judges")
        if by_candidate.get(cid)
    ]
    cancelled = cancelled_ids(rows)
    counts = {
        "total": len(ratings),
        "recorded": len(rows),
        "undone": len(cancelled),
        "skips": sum(r.decision == Verdict.Decision.SKIP and r.id not in cancelled for r in rows),
        "rated_candidates": len(rated),
        "raters": len({r.rater_id for r in ratings}),
        "by_decision": dict(sorted(Counter(r.decision for r in ratings).items())),
        "by_kind": dict(sorted(Counter(r.kind for r in ratings).items())),
    }
    return rated, counts


def gate_counts(run: Run) -> dict[str, Any]:
    by_gate = dict(
        Candidate.objects.for_run(run).values_list("gate").annotate(n=Count("id")).order_by()
    )
    by_status = dict(
        RunItem.objects.for_run(run).values_list("status").annotate(n=Count("id")).order_by()
    )
    gates = {g: by_gate.get(g, 0) for g in Candidate.Gate.values}
    gates["discarded"] = by_status.get(RunItem.Status.DISCARDED, 0)
    return {
        "items": sum(by_status.values()),
        "candidates": sum(by_gate.values()),
        "by_gate": gates,
        "by_status": dict(sorted(by_status.items())),
    }


def bucket_edges(run: Run) -> list[float]:
    """Confidence strata of the auto-accepted pool: equal widths from the accept threshold to 1,
    as many as the run's audit sample is stratified into."""
    parts = max(1, int(run.config.get("review", {}).get("audit_buckets", 4)))
    low = min(max(run.accept_threshold, 0.0), 1.0)
    return [low + (1 - low) * i / parts for i in range(parts + 1)]


def stratum_of(confidence: float, edges: Sequence[float]) -> int:
    for i in range(len(edges) - 2, -1, -1):
        if confidence >= edges[i]:
            return i
    return 0


def pool_strata(
    pool: Sequence[float], audited: Sequence[tuple[float, bool]], edges: Sequence[float]
) -> list[stats.Stratum]:
    sizes, ks, ns = Counter(), Counter(), Counter()
    for confidence in pool:
        sizes[stratum_of(confidence, edges)] += 1
    for confidence, valid in audited:
        ns[stratum_of(confidence, edges)] += 1
        ks[stratum_of(confidence, edges)] += int(valid)
    return [stats.Stratum(sizes[i], ks[i], ns[i]) for i in range(len(edges) - 1)]


def strata_table(strata: Sequence[stats.Stratum], edges: Sequence[float]) -> list[dict]:
    return [
        {"low": edges[i], "high": edges[i + 1], "size": s.size, "n": s.n, "k": s.k}
        for i, s in enumerate(strata)
    ]


def audit_and_export(run: Run, rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """The auto-accepted pool's precision from its blind audit sample, and the precision of the
    exportable set: human-approved candidates (verified) plus the auto-accepted ones nobody rated
    (estimated from the audit sample, stratum by stratum)."""
    edges = bucket_edges(run)
    by_id = {c.id: c for c in rated}
    pool = list(Candidate.objects.for_run(run).auto_accepted().values_list("id", "confidence"))
    audited = [
        (c.confidence, majority(c.audit_ratings))
        for c in rated
        if c.gate == Candidate.Gate.AUTO_ACCEPTED and c.audit_ratings
    ]
    pool_est = pool_strata([conf for _, conf in pool], audited, edges)
    audit = stats.stratified_proportion(pool_est)
    unrated = [conf for cid, conf in pool if cid not in by_id]
    rest_est = pool_strata(unrated, audited, edges)
    rest = stats.stratified_proportion(rest_est)
    verified = sum(c.valid(lenient=True) for c in rated)
    # What the figure rests on: the verified candidates and the audited ones (some are both).
    behind = {c.id for c in rated if c.valid(lenient=True) or c.audit_ratings}
    exported = stats.with_verified(verified, len(unrated), rest)
    audit_fig = {
        **audit.as_dict(),
        "k": sum(valid for _, valid in audited),
        "enough": len(audited) >= min_n,
        "pool": len(pool),
        "method": "post-stratified by confidence, Wilson at the effective sample size",
        "strata": strata_table(pool_est, edges),
    }
    export_fig = {
        **exported,
        "n": len(behind),
        "audited": len(audited),
        "enough": len(behind) >= min_n and (not unrated or len(audited) >= min_n),
        "exportable": verified + len(unrated),
        "verified": verified,
        "estimated": len(unrated),
        "method": "human-approved count as valid; unrated auto-accepted estimated from the audit",
        "strata": strata_table(rest_est, edges),
    }
    if unrated and len(audited) < min_n:
        # The shortfall is in the audit sample, whatever the number of verified candidates.
        export_fig["note"] = f"not enough audit verdicts: n={len(audited)}"
    noise = {
        "value": None if exported["value"] is None else 1 - exported["value"],
        "low": None if exported["high"] is None else 1 - exported["high"],
        "high": None if exported["low"] is None else 1 - exported["low"],
        "n": len(behind),
        "enough": export_fig["enough"],
        **({"note": export_fig["note"]} if "note" in export_fig else {}),
    }
    return {"audit_precision": audit_fig, "export_precision": export_fig, "label_noise": noise}


def agreement(rated: Sequence[Rated], min_n: int) -> dict[str, Any]:
    """Cohen's kappa when every multiply-rated candidate has two raters (first and second verdict
    in time as rater A and B), Fleiss' kappa when some have more; on strict validity."""
    multi = [c for c in rated if len(c.ratings) >= 2]
    base = {"n": len(multi), "enough": len(multi) >= min_n, "categories": ["valid", "invalid"]}
    if not multi:
        return {**base, "method": None, "value": None, "low": None, "high": None}
    if all(len(c.ratings) == 2 for c in multi):
        pairs = [(c.ratings[0].valid(), c.ratings[1].valid()) for c in multi]
        kappa = stats.cohen_kappa(pairs)
        return {**base, **kappa.as_dict(), "method": "cohen", "interval": "Cohen 1960 SE"}
    table = stats.counts_table([[r.valid() for r in c.ratings] for c in multi], [True, False])
    kappa = stats.fleiss_kappa(table)
    return {
        **base,
        **kappa.as_dict(),
        "method": "fleiss",
        "interval": f"bootstrap over items, {stats.BOOTSTRAP_RESAMPLES} resamples, fixed seed",
        "raters_per_item": dict(sorted(Counter(len(c.ratings) for c in multi).items())),
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
    }


# -- CSV ------------------------------------------------------------------------------------------

CSV_HEADER = ["figure", "group", "value", "low", "high", "n", "enough"]


def _row(figure: str, group: str, fig: dict[str, Any]) -> list[Any]:
    return [figure, group, *(fig.get(k) for k in ("value", "low", "high", "n", "enough"))]


def figure_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """Every figure as one flat row: what the CSV download holds."""
    rows = [_row(f"precision_{w}", "all", figures[f"precision_{w}"]) for w in ("strict", "lenient")]
    for key in ("by_benchmark", "by_failure_type"):
        for group, pair in figures[key].items():
            rows += [_row(f"{key}_{w}", group, pair[w]) for w in ("strict", "lenient")]
    for b in figures["by_bucket"]:
        group = f"{b['low']:.2f}-{b['high']:.2f}"
        rows += [_row(f"by_bucket_{w}", group, b[w]) for w in ("strict", "lenient")]
    for key in ("audit_precision", "export_precision", "label_noise"):
        rows.append(_row(key, "all", figures[key]))
    rows.append(_row(f"kappa_{figures['kappa']['method'] or 'none'}", "all", figures["kappa"]))
    rows.append(_row("ece", "all", {**figures["calibration"], "value": figures["ece"]}))
    rows.append(_row("recommended_threshold", "all", figures["threshold"]))
    for j in figures["judges"]:
        rows.append(_row("judge_agreement", j["name"], j["agreement"]))
        rows.append(_row("judge_kappa", j["name"], {**j["kappa"], "n": j["n"]}))
    for gate, n in figures["counts"]["by_gate"].items():
        rows.append(["count_gate", gate, n, None, None, n, True])
    for decision, n in figures["verdicts"]["by_decision"].items():
        rows.append(["count_verdict", decision, n, None, None, n, True])
    return rows


def figures_csv(figures: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(
        [cell if cell is not None else "" for cell in row] for row in figure_rows(figures)
    )
    return out.getvalue()
