"""The review queue: which candidates people rate, leases, and the blind audit sample.

A finished run gets its tasks from ``populate_queue``: curation tasks for the candidates the gate
left to humans, and audit tasks for a random sample of the auto-accepted ones, stratified by
confidence, which raters see blind (the precision of what is exported is measured on these).

People take tasks with ``next_task_for``: a lease of ``LEASE`` minutes on one task, taken with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and confirmed by a conditional UPDATE (so two
people never hold the same task, on SQLite too). A lapsed lease is simply free again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from relabel.config import DEFAULTS, check_review
from relabel.models import Candidate, Run
from review.models import ReviewTask, Verdict

LEASE = timedelta(minutes=10)
# Claims lost to a concurrent rater are retried this many times before giving up for now.
CLAIM_ATTEMPTS = 5


def review_config(run: Run) -> dict[str, Any]:
    """The run's review settings over the defaults, checked (a bad value names its key)."""
    cfg = {**DEFAULTS["review"], **(run.config.get("review") or {})}
    check_review(cfg, where=f"run {run.pk}")
    return cfg


def draw(run: Run, candidate_id: int, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by run, candidate and purpose.

    Per-candidate draws (rather than one seeded stream) keep the queue idempotent: populating a
    run again, even after more candidates appeared, draws the same numbers for the old ones.
    """
    digest = hashlib.sha256(f"{run.pk}:{candidate_id}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def audit_bucket(run: Run, confidence: float, buckets: int | None = None) -> int:
    """The confidence stratum (0 = lowest) of an auto-accepted candidate: equal-width buckets
    from the run's accept threshold to 1."""
    buckets = buckets or int(review_config(run)["audit_buckets"])
    low = run.accept_threshold
    width = (1.0 - low) / buckets if low < 1 else 1.0
    return min(buckets - 1, max(0, int((confidence - low) / width)))


def slots_for(run: Run, candidate_id: int, cfg: dict[str, Any]) -> int:
    extra = draw(run, candidate_id, "second-rater") < float(cfg["second_rater_share"])
    return int(cfg["raters_per_candidate"]) + int(extra)


def curation_priority(run: Run, candidate_id: int, confidence: float, order: str) -> float:
    if order == "highest_confidence_first":
        return -confidence
    if order == "random":
        return draw(run, candidate_id, "order")
    return confidence


def audit_sample(run: Run, cfg: dict[str, Any]) -> list[int]:
    """Ids of the audited auto-accepted candidates: the same share of every confidence bucket
    (at least one from a non-empty bucket), chosen at random."""
    share = float(cfg["audit_share"])
    if share <= 0:
        return []
    buckets: dict[int, list[int]] = {}
    rows = Candidate.objects.for_run(run).auto_accepted().values_list("id", "confidence")
    for cid, confidence in rows.iterator(chunk_size=5000):
        buckets.setdefault(audit_bucket(run, confidence, int(cfg["audit_buckets"])), []).append(cid)
    chosen: list[int] = []
    for ids in buckets.values():
        ids.sort(key=lambda cid: draw(run, cid, "audit"))
        chosen += ids[: max(1, round(share * len(ids)))]
    return chosen


def planned_tasks(run: Run) -> Iterable[ReviewTask]:
    cfg = review_config(run)
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
    for cid in audit_sample(run, cfg):
        priority = low + (high - low) * draw(run, cid, "audit-position")
        for slot in range(slots_for(run, cid, cfg)):
            yield ReviewTask(candidate_id=cid, kind="audit", slot=slot, priority=priority)


def populate_queue(run: Run) -> int:
    """Creates the review tasks of a finished run (idempotent); returns how many were added.

    Called by the pipeline when a run finishes.
    """
    existing = set(
        ReviewTask.objects.filter(candidate__run=run).values_list("candidate_id", "kind", "slot")
    )
    new = [t for t in planned_tasks(run) if (t.candidate_id, t.kind, t.slot) not in existing]
    # Ids are in every form's URL: created in priority order, audit tasks are not told apart by
    # having the highest ids of their run.
    new.sort(key=lambda t: (t.priority, draw(run, t.candidate_id, f"id-{t.kind}-{t.slot}")))
    # ignore_conflicts: a concurrent populate of the same run must not fail, only add nothing.
    ReviewTask.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    return len(new)


# -- leases ------------------------------------------------------------------------------------


def free_at(now: datetime) -> Q:
    return Q(leased_to__isnull=True) | Q(lease_expires__lte=now)


def open_tasks_for(user: AbstractBaseUser, now: datetime) -> QuerySet[ReviewTask]:
    """Tasks ``user`` may take now: not done, not leased to anyone else, and on a candidate the
    user has not already decided (or skipped) unless that was undone."""
    # NOT IN over the rater's own (few) verdicts is one hashed set PostgreSQL checks row by row
    # while walking the open tasks in priority order, stopping at the first free one; NOT EXISTS
    # would be planned as an anti-join over every open task, then a sort.
    mine = (
        Verdict.objects.filter(rater=user, undone_by__isnull=True)
        .exclude(decision=Verdict.Decision.UNDO)
        .values("candidate_id")
    )
    return (
        ReviewTask.objects.filter(done_at__isnull=True)
        .filter(free_at(now))
        .exclude(candidate_id__in=mine)
        .order_by("priority", "id")
    )


def own_lease(user: AbstractBaseUser, now: datetime) -> ReviewTask | None:
    return (
        ReviewTask.objects.filter(leased_to=user, done_at__isnull=True, lease_expires__gt=now)
        .order_by("-lease_expires", "-id")
        .first()
    )


def claim(task_id: int, user: AbstractBaseUser, now: datetime) -> bool:
    """Leases the task to ``user`` if it is still free; the row count says who won."""
    return bool(
        ReviewTask.objects.filter(pk=task_id, done_at__isnull=True)
        .filter(free_at(now) | Q(leased_to=user))
        .update(leased_to=user, lease_expires=now + LEASE)
    )


def next_task_for(user: AbstractBaseUser, now: datetime | None = None) -> ReviewTask | None:
    """The task ``user`` should do now, leased to them: their own unexpired lease first (renewed),
    else the free task with the lowest priority. None when nothing is left for them."""
    now = now or timezone.now()
    task = own_lease(user, now)
    if task is not None:
        claim(task.pk, user, now)
        task.lease_expires = now + LEASE
        return task
    for _ in range(CLAIM_ATTEMPTS):
        with transaction.atomic():
            candidates = open_tasks_for(user, now)
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            task = candidates.first()
            if task is None:
                return None
            won = claim(task.pk, user, now)
        if won:
            task.leased_to, task.lease_expires = user, now + LEASE
            return task
    return None


def release_leases(user: AbstractBaseUser, *, except_task: ReviewTask | None = None) -> int:
    """Gives back every task ``user`` holds but has not done (e.g. before reopening another)."""
    held = ReviewTask.objects.filter(leased_to=user, done_at__isnull=True)
    if except_task is not None:
        held = held.exclude(pk=except_task.pk)
    return held.update(leased_to=None, lease_expires=None)


REMAINING_CAP = 1000


def remaining_count(cap: int = REMAINING_CAP) -> int:
    """Tasks not yet done across all runs, counted up to ``cap`` (the page says "1000+").

    An exact count reads every open task (tens of milliseconds at 100k); nobody needs more
    precision than "over a thousand" while rating.
    """
    return ReviewTask.objects.filter(done_at__isnull=True)[: cap + 1].count()


def done_today(user: AbstractBaseUser, now: datetime | None = None) -> int:
    """Decisions ``user`` made today (not skips, undos, or what was undone)."""
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        Verdict.objects.filter(rater=user, created_at__gte=start, undone_by__isnull=True)
        .exclude(decision__in=[Verdict.Decision.SKIP, Verdict.Decision.UNDO])
        .count()
    )


def audit_bucket_edges(run: Run) -> list[float]:
    """The lower edges of the audit strata, for reports."""
    buckets = int(review_config(run)["audit_buckets"])
    low = run.accept_threshold
    return [low + i * (1.0 - low) / buckets for i in range(buckets)] + [1.0]
