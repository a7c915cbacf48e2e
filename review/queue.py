"""What goes into the review queue when a run finishes.

``populate_queue`` gives a finished run its tasks: curation tasks for the candidates the gate left
to humans, and audit tasks for a random sample of the auto-accepted ones, stratified by confidence
(review.audit), which raters see blind: the precision of what is exported is measured on these.
It runs when the automatic side sends ``relabel.signals.run_finished`` (connected in
``ReviewConfig.ready``). Taking, deciding and undoing tasks are ReviewTask's and Verdict's verbs
(review.models).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relabel.models import Candidate, Run
from review.audit import audit_sample, draw
from review.models import ReviewTask

REMAINING_CAP = 1000


def slots_for(run: Run, candidate_id: int, cfg: dict[str, Any]) -> int:
    extra = draw(run, candidate_id, "second-rater") < float(cfg["second_rater_share"])
    return int(cfg["raters_per_candidate"]) + int(extra)


def curation_priority(run: Run, candidate_id: int, confidence: float, order: str) -> float:
    if order == "highest_confidence_first":
        return -confidence
    if order == "random":
        return draw(run, candidate_id, "order")
    return confidence


def planned_tasks(run: Run) -> Iterable[ReviewTask]:
    cfg = run.review_settings()
    rows = list(Candidate.objects.for_run(run).needs_review().values_list("id", "confidence"))
    priorities = []
    for cid, confidence in rows:
        priority = curation_priority(run, cid, confidence, cfg["order"])
        priorities.append(priority)
        for slot in range(slots_for(run, cid, cfg)):
            yield ReviewTask(candidate_id=cid, kind="curation", slot=slot, priority=priority)
    # Audit items are spread over the same priority range, so they arrive mixed in with the
    # curation items instead of in a block that would give them away.
    low, high = (min(priorities), max(priorities)) if priorities else (0.0, 1.0)
    for cid in audit_sample(run):
        priority = low + (high - low) * draw(run, cid, "audit-position")
        for slot in range(slots_for(run, cid, cfg)):
            yield ReviewTask(candidate_id=cid, kind="audit", slot=slot, priority=priority)


def populate_queue(run: Run) -> int:
    """Creates the review tasks of a finished run (idempotent); returns how many were added."""
    existing = set(ReviewTask.objects.for_run(run).values_list("candidate_id", "kind", "slot"))
    new = [t for t in planned_tasks(run) if (t.candidate_id, t.kind, t.slot) not in existing]
    # Ids are in every form's URL: created in priority order, audit tasks are not told apart by
    # having the highest ids of their run.
    new.sort(key=lambda t: (t.priority, draw(run, t.candidate_id, f"id-{t.kind}-{t.slot}")))
    # ignore_conflicts: a concurrent populate of the same run must not fail, only add nothing.
    ReviewTask.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    return len(new)


def on_run_finished(sender: Any, run: Run, **kwargs: Any) -> None:
    """``run_finished`` receiver: the finished run's review work joins the queue."""
    populate_queue(run)
