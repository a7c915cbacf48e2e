"""A run's rated candidates: each with its raters' effective ratings (review.majority)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from relabel.models import Candidate, Run
from review.majority import Rating, cancelled_ids, effective_ratings, majority
from review.models import Verdict


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


def load_ratings(run: Run) -> tuple[list[Rated], dict[str, Any]]:
    """The run's rated candidates, and counts of the verdicts behind them."""
    verdicts = Verdict.objects.filter(candidate__run=run)
    rows = verdicts.rows()
    ratings = effective_ratings(rows)
    by_candidate: dict[int, list[Rating]] = defaultdict(list)
    for r in ratings:
        by_candidate[r.candidate_id].append(r)
    fields = ("id", "gate", "confidence", "trajectory__source_format", "item__failure_type")
    candidates = Candidate.objects.filter(id__in=verdicts.values("candidate_id")).order_by("id")
    rated = [
        Rated(cid, gate, conf, fmt, ftype, judges or [], by_candidate[cid])
        for cid, gate, conf, fmt, ftype, judges in candidates.values_list(*fields, "judges")
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
