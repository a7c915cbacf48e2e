"""What goes into the review queues: a finished run's default queues, and queues a researcher
defines.

``populate_queue`` gives a finished run its work in its default queues (made on first use): the
curation queue holds the candidates the gate left to humans; the audit queue a random sample of
the auto-accepted ones, stratified by confidence (review.audit), which raters see blind: the
precision of what is exported is measured on these; the adjudication queue fills as raters
disagree (``ReviewTask.objects.follow_up``). It runs when the automatic side sends
``relabel.signals.run_finished`` (connected in ``ReviewConfig.ready``).

``create_queue`` makes a researcher's queue: the run's candidates that match a filter (gate,
confidence range, failure type, benchmark, review state), ``overlap`` slots each, taking their
open work out of the run's default queue of the same kind so nobody does it twice; or a study: a
random sample of N candidates, K raters each, blind, that takes nothing from anyone.

Taking, deciding and undoing tasks are ReviewTask's and Verdict's verbs (review.models).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from relabel.models import Candidate, Run
from review.audit import audit_sample, draw
from review.models import ReviewQueue, ReviewTask

REMAINING_CAP = 1000
CHUNK = 2000
Purpose = ReviewQueue.Purpose


def slots_for(run: Run, candidate_id: int, cfg: dict[str, Any]) -> int:
    extra = draw(run, candidate_id, "second-rater") < float(cfg["second_rater_share"])
    return int(cfg["raters_per_candidate"]) + int(extra)


def curation_priority(run: Run, candidate_id: int, confidence: float, order: str) -> float:
    if order == "highest_confidence_first":
        return -confidence
    if order == "random":
        return draw(run, candidate_id, "order")
    return confidence


def taken_by_custom_queues(run: Run) -> set[tuple[int, str]]:
    """(candidate, kind) whose work a researcher's queue took over: not queued again here."""
    tasks = ReviewTask.objects.filter(queue__run=run, queue__purpose=Purpose.CUSTOM)
    return set(tasks.values_list("candidate_id", "kind"))


def planned_tasks(run: Run, queues: dict[str, ReviewQueue]) -> Iterable[ReviewTask]:
    cfg = run.review_settings()
    taken = taken_by_custom_queues(run)
    rows = list(Candidate.objects.for_run(run).needs_review().values_list("id", "confidence"))
    priorities = []
    for cid, confidence in rows:
        priority = curation_priority(run, cid, confidence, cfg["order"])
        priorities.append(priority)
        if (cid, ReviewTask.Kind.CURATION) in taken:
            continue
        for slot in range(slots_for(run, cid, cfg)):
            yield ReviewTask(
                queue=queues[Purpose.CURATION],
                candidate_id=cid,
                kind="curation",
                slot=slot,
                priority=priority,
            )
    # Audit items are spread over the same priority range, so they arrive mixed in with the
    # curation items instead of in a block that would give them away.
    low, high = (min(priorities), max(priorities)) if priorities else (0.0, 1.0)
    for cid in audit_sample(run):
        if (cid, ReviewTask.Kind.AUDIT) in taken:
            continue
        priority = low + (high - low) * draw(run, cid, "audit-position")
        for slot in range(slots_for(run, cid, cfg)):
            yield ReviewTask(
                queue=queues[Purpose.AUDIT], candidate_id=cid, kind="audit", slot=slot,
                priority=priority,
            )  # fmt: skip


def default_queues(run: Run) -> dict[str, ReviewQueue]:
    """The run's curation, audit and adjudication queues (made on first use): every run has
    them, open to every annotator until a researcher assigns members."""
    return {purpose: ReviewQueue.objects.default(run, purpose) for purpose in ReviewQueue.DEFAULTS}


def populate_queue(run: Run) -> int:
    """Creates the review tasks of a finished run (idempotent); returns how many were added."""
    queues = default_queues(run)
    existing = set(ReviewTask.objects.for_run(run).values_list("queue_id", "candidate_id", "slot"))
    new = [
        t
        for t in planned_tasks(run, queues)
        if (t.queue_id, t.candidate_id, t.slot) not in existing
    ]
    return add_tasks(run, new)


def add_tasks(run: Run, new: list[ReviewTask]) -> int:
    # Ids are in every form's URL: created in priority order, audit tasks are not told apart by
    # having the highest ids of their run.
    new.sort(key=lambda t: (t.priority, draw(run, t.candidate_id, f"id-{t.kind}-{t.slot}")))
    # ignore_conflicts: a concurrent populate of the same run must not fail, only add nothing.
    ReviewTask.objects.bulk_create(new, batch_size=CHUNK, ignore_conflicts=True)
    return len(new)


def on_run_finished(sender: Any, run: Run, **kwargs: Any) -> None:
    """``run_finished`` receiver: the finished run's review work joins the queue."""
    populate_queue(run)


# -- a researcher's queues --------------------------------------------------------------------


def matching_candidates(queue: ReviewQueue) -> QuerySet[Candidate]:
    """The run's candidates a queue's filter selects; never those the gate rejected (a judge's
    veto is binding: they are not for review)."""
    f = queue.filters or {}
    found = Candidate.objects.for_run(queue.run).exclude(gate=Candidate.Gate.REJECTED)
    if f.get("gate"):
        found = found.filter(gate=f["gate"])
    if f.get("min_confidence") is not None:
        found = found.filter(confidence__gte=f["min_confidence"])
    if f.get("max_confidence") is not None:
        found = found.filter(confidence__lte=f["max_confidence"])
    if f.get("failure_type"):
        found = found.filter(item__failure_type=f["failure_type"])
    if f.get("benchmark"):
        found = found.filter(trajectory__source_format=f["benchmark"])
    if f.get("review_state") == "reviewed":
        found = found.exclude(review_state=Candidate.ReviewState.UNREVIEWED)
    elif f.get("review_state"):
        found = found.filter(review_state=f["review_state"])
    return found


def queue_priority(queue: ReviewQueue, candidate_id: int, confidence: float) -> float:
    if queue.blind:  # a blind queue's order must not follow the confidence raters cannot see
        return draw(queue.run, candidate_id, f"order-{queue.pk}")
    return curation_priority(queue.run, candidate_id, confidence, queue.order)


def queue_items(queue: ReviewQueue) -> list[tuple[int, float]]:
    rows = list(matching_candidates(queue).values_list("id", "confidence"))
    if queue.purpose == Purpose.STUDY:
        rows.sort(key=lambda row: draw(queue.run, row[0], f"study-{queue.pk}"))
        rows = rows[: queue.sample_size]
    return rows


def take_over_open_work(queue: ReviewQueue, candidate_ids: Sequence[int]) -> int:
    """Removes the open, untouched slots of these candidates from the run's default queue of the
    queue's kind: their work lives in the new queue now. Slots someone holds or skipped stay."""
    purpose = Purpose.AUDIT if queue.blind else Purpose.CURATION
    default = ReviewQueue.objects.filter(run=queue.run, purpose=purpose).first()
    if default is None:
        return 0
    removed, now = 0, timezone.now()
    for start in range(0, len(candidate_ids), CHUNK):
        untouched = (
            ReviewTask.objects.open()
            .filter(queue=default, candidate_id__in=candidate_ids[start : start + CHUNK])
            .filter(ReviewTask.free_at(now), verdicts__isnull=True)
        )
        ids = list(untouched.values_list("pk", flat=True))
        removed += ReviewTask.objects.filter(pk__in=ids).delete()[0]
    return removed


def fill_queue(queue: ReviewQueue) -> int:
    """Gives the queue ``overlap`` slots of each of its items (idempotent); returns how many
    were added."""
    items = queue_items(queue)
    tasks = [
        ReviewTask(
            queue=queue,
            candidate_id=cid,
            kind=queue.task_kind,
            slot=slot,
            priority=queue_priority(queue, cid, confidence),
        )
        for cid, confidence in items
        for slot in range(queue.overlap)
    ]
    existing = set(ReviewTask.objects.filter(queue=queue).values_list("candidate_id", "slot"))
    new = [t for t in tasks if (t.candidate_id, t.slot) not in existing]
    with transaction.atomic():
        if queue.purpose == Purpose.CUSTOM:
            take_over_open_work(queue, [cid for cid, _ in items])
        return add_tasks(queue.run, new)


def create_queue(
    run: Run,
    by: AbstractBaseUser | None,
    *,
    members: Iterable[AbstractBaseUser] = (),
    groups: Iterable[Group] = (),
    guidelines: str = "",
    **fields: Any,
) -> tuple[ReviewQueue, int]:
    """A researcher's queue (custom or study) with its members, guidelines and tasks."""
    if fields.get("purpose") == Purpose.STUDY:
        fields.update(blind=True, order="random")
    with transaction.atomic():
        queue = ReviewQueue.objects.create(run=run, created_by=by, **fields)
        queue.members.set(members)
        queue.member_groups.set(groups)
        if guidelines.strip():
            queue.set_guidelines(guidelines, by)
        added = fill_queue(queue)
    return queue, added
