"""The blind audit's confidence strata and samples, in one place: the queue draws its sample by
them and the precision figures weight the audit's verdicts by them, so both always cut at the same
edges. The re-audit of human approvals is drawn here too.

The auto-accepted pool runs from the run's accept threshold to 1; it is cut into
``review.audit_buckets`` strata of equal width (the run's configuration). A confidence on an
edge belongs to the stratum above it; 1.0 belongs to the top one.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

from relabel.models import Candidate, Run


def strata_edges(run: Run) -> list[float]:
    """The strata's edges, lowest first: ``audit_buckets + 1`` numbers from the threshold to 1."""
    parts = int(run.review_settings()["audit_buckets"])
    low = min(max(run.accept_threshold, 0.0), 1.0)
    return [low + (1.0 - low) * i / parts for i in range(parts)] + [1.0]


def stratum(confidence: float, edges: Sequence[float]) -> int:
    """The stratum (0 = lowest) a confidence falls in; below the threshold counts as the lowest."""
    return bisect.bisect_right(edges[1:-1], confidence)


def draw(run: Run, candidate_id: int, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by run, candidate and purpose.

    Per-candidate draws (rather than one seeded stream) keep the queue idempotent: populating a
    run again, even after more candidates appeared, draws the same numbers for the old ones.
    """
    digest = hashlib.sha256(f"{run.pk}:{candidate_id}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_reaudit_sample(run: Run, candidate_id: int) -> bool:
    """Whether a candidate a single rater approved joins the audit queue, blind, for another
    rater: a random ``review.reaudit_share`` of them, fixed by run and candidate. Their second
    verdicts measure how often the raters' approvals are right (review.precision.exported)."""
    share = float(run.review_settings()["reaudit_share"])
    return share > 0 and draw(run, candidate_id, "reaudit") < share


def audit_sample(run: Run) -> list[int]:
    """Ids of the audited auto-accepted candidates: the same share of every stratum (at least
    one from a non-empty stratum), chosen at random."""
    share = float(run.review_settings()["audit_share"])
    if share <= 0:
        return []
    edges = strata_edges(run)
    strata: dict[int, list[int]] = {}
    rows = Candidate.objects.for_run(run).auto_accepted().values_list("id", "confidence")
    for cid, confidence in rows.iterator(chunk_size=5000):
        strata.setdefault(stratum(confidence, edges), []).append(cid)
    chosen: list[int] = []
    for ids in strata.values():
        ids.sort(key=lambda cid: draw(run, cid, "audit"))
        chosen += ids[: max(1, round(share * len(ids)))]
    return chosen
