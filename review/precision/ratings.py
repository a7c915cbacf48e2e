"""A run's rated candidates: each with its raters' effective ratings and its adjudication
(review.majority)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from relabel.models import Candidate, Run
from review import majority
from review.majority import Rating, cancelled_ids, effective_ratings
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
        """The candidate's validity by the one rule: its adjudication, else its raters' majority."""
        return majority.is_valid(self.ratings, lenient=lenient)

    @property
    def rater_ratings(self) -> list[Rating]:
        """The raters' ratings, without the adjudication (what agreement is measured on)."""
        return majority.raters_ratings(self.ratings)

    @property
    def adjudication(self) -> Rating | None:
        return majority.adjudication(self.ratings)

    @property
    def audit_ratings(self) -> list[Rating]:
        return [r for r in self.ratings if r.kind == "audit"]

    def audit_valid(self) -> bool:
        """What the blind audit found: its raters' majority, or the adjudication of their
        disagreement."""
        final = [self.adjudication] if self.adjudication else []
        return majority.is_valid(self.audit_ratings + final)


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
