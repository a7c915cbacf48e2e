"""The queue: what populate_queue puts in it and how ReviewTask.objects.claim_next leases it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from review.audit import strata_edges, stratum
from review.models import ReviewTask
from review.queue import REMAINING_CAP, populate_queue
from tests.conftest import make_user
from tests.factories import make_candidate, make_run
from tests.review.helpers import queued, record_decision, undo_last

LEASE = ReviewTask.LEASE


def test_it_queues_needs_review_candidates_lowest_confidence_first(run, annotator):
    high, low, mid = queued(run, 0.45, 0.21, 0.3)
    make_candidate(run, confidence=0.9)  # auto-accepted: no curation task
    make_candidate(run, confidence=0.1)  # rejected by the gate: never queued
    populate_queue(run)
    served = []
    for _ in range(3):
        task = ReviewTask.objects.claim_next(annotator)
        served.append(task.candidate_id)
        record_decision(task.pk, annotator, "accept")
    assert served == [low.pk, mid.pk, high.pk]
    assert ReviewTask.objects.claim_next(annotator) is None


def test_it_can_serve_the_highest_confidence_first(db, annotator):
    run = make_run(review={"order": "highest_confidence_first", "audit_share": 0})
    low, high = queued(run, 0.25, 0.45)
    assert ReviewTask.objects.claim_next(annotator).candidate_id == high.pk


def test_it_refuses_an_unknown_order(db):
    run = make_run(review={"order": "alphabetical"})
    make_candidate(run, confidence=0.3)
    with pytest.raises(ValueError, match="review.order"):
        populate_queue(run)


def test_populating_twice_adds_nothing(db):
    run = make_run(review={"second_rater_share": 0.5, "audit_share": 0.3})
    for i in range(20):
        make_candidate(run, confidence=0.2 + i * 0.015)
        make_candidate(run, confidence=0.5 + i * 0.02)
    added = populate_queue(run)
    assert added == ReviewTask.objects.count() > 20
    assert populate_queue(run) == 0
    assert ReviewTask.objects.count() == added


def test_it_gives_a_share_of_candidates_a_second_rater(db):
    run = make_run(review={"second_rater_share": 0.3, "audit_share": 0})
    for _ in range(200):
        make_candidate(run, confidence=0.35)
    populate_queue(run)
    seconds = ReviewTask.objects.filter(slot=1).count()
    assert ReviewTask.objects.filter(slot=0).count() == 200
    assert 35 <= seconds <= 85  # 30% of 200, give or take the draw
    assert not ReviewTask.objects.filter(slot=2).exists()


def test_raters_per_candidate_sets_the_slots(db):
    run = make_run(review={"raters_per_candidate": 3, "audit_share": 0})
    queued(run, 0.3)
    assert sorted(ReviewTask.objects.values_list("slot", flat=True)) == [0, 1, 2]


def test_the_audit_sample_is_stratified_by_confidence(db):
    run = make_run(review={"audit_share": 0.25, "audit_buckets": 4})
    # 40 auto-accepted candidates in the lowest bucket, 4 in the highest, none between.
    low = [make_candidate(run, confidence=0.55) for _ in range(40)]
    high = [make_candidate(run, confidence=0.99) for _ in range(4)]
    populate_queue(run)
    audited = set(ReviewTask.objects.filter(kind="audit").values_list("candidate_id", flat=True))
    assert len(audited & {c.pk for c in low}) == 10
    assert len(audited & {c.pk for c in high}) == 1
    edges = strata_edges(run)
    assert stratum(0.55, edges) == 0 and stratum(0.99, edges) == 3
    assert stratum(1.0, edges) == 3


def test_the_audit_sample_depends_on_the_run_not_on_luck(db):
    run = make_run(review={"audit_share": 0.2})
    for i in range(30):
        make_candidate(run, confidence=0.5 + i / 60)
    populate_queue(run)
    first = set(ReviewTask.objects.filter(kind="audit").values_list("candidate_id", flat=True))
    ReviewTask.objects.all().delete()
    populate_queue(run)
    again = set(ReviewTask.objects.filter(kind="audit").values_list("candidate_id", flat=True))
    assert first == again and len(first) >= 6


def test_audit_items_are_mixed_into_the_curation_order(db):
    run = make_run(review={"audit_share": 1.0})
    for i in range(20):
        make_candidate(run, confidence=0.2 + i * 0.015)
    for _ in range(10):
        make_candidate(run, confidence=0.8)
    populate_queue(run)
    curation = ReviewTask.objects.filter(kind="curation").values_list("priority", flat=True)
    audit = list(ReviewTask.objects.filter(kind="audit").values_list("priority", flat=True))
    assert all(min(curation) <= p <= max(curation) for p in audit)
    assert len(set(audit)) > 1


def test_a_candidate_leased_by_alice_is_not_served_to_bob(run, annotator, colleague):
    first, second = queued(run, 0.3, 0.4)
    assert ReviewTask.objects.claim_next(annotator).candidate_id == first.pk
    assert ReviewTask.objects.claim_next(colleague).candidate_id == second.pk
    assert ReviewTask.objects.claim_next(make_user("carol", "annotator")) is None


def test_my_own_lease_comes_back_first(run, annotator):
    queued(run, 0.3, 0.4)
    first = ReviewTask.objects.claim_next(annotator)
    assert ReviewTask.objects.claim_next(annotator).pk == first.pk


def test_a_lapsed_lease_is_reclaimed(run, annotator, colleague):
    (candidate,) = queued(run, 0.3)
    task = ReviewTask.objects.claim_next(annotator)
    assert ReviewTask.objects.claim_next(colleague) is None
    later = timezone.now() + LEASE + timedelta(seconds=1)
    reclaimed = ReviewTask.objects.claim_next(colleague, now=later)
    assert reclaimed.pk == task.pk
    task.refresh_from_db()
    assert task.leased_to == colleague


def test_nobody_rates_the_same_candidate_twice(db, annotator, colleague):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    (candidate,) = queued(run, 0.3)
    task = ReviewTask.objects.claim_next(annotator)
    record_decision(task.pk, annotator, "accept")
    assert ReviewTask.objects.claim_next(annotator) is None  # the second slot is for someone else
    other = ReviewTask.objects.claim_next(colleague)
    assert other.candidate_id == candidate.pk and other.slot != task.slot


def test_a_skipped_candidate_goes_to_someone_else(run, annotator, colleague):
    (candidate,) = queued(run, 0.3)
    task = ReviewTask.objects.claim_next(annotator)
    record_decision(task.pk, annotator, "skip")
    assert ReviewTask.objects.claim_next(annotator) is None
    assert ReviewTask.objects.claim_next(colleague).pk == task.pk


def test_undo_reopens_the_task_for_me(run, annotator, colleague):
    first, second = queued(run, 0.3, 0.4)
    task = ReviewTask.objects.claim_next(annotator)
    record_decision(task.pk, annotator, "accept")
    assert ReviewTask.objects.claim_next(annotator).candidate_id == second.pk
    undo_last(annotator)
    assert ReviewTask.objects.claim_next(annotator).pk == task.pk
    # the task I was looking at before the undo went back to the pool
    assert ReviewTask.objects.claim_next(colleague).candidate_id == second.pk


def test_remaining_counts_tasks_not_done(run, annotator):
    queued(run, 0.3, 0.4)
    assert ReviewTask.objects.remaining(REMAINING_CAP) == 2
    record_decision(
        ReviewTask.objects.claim_next(annotator).pk, annotator, "reject", reason_code="too_vague"
    )
    assert ReviewTask.objects.remaining(REMAINING_CAP) == 1


@pytest.mark.django_db(transaction=True)
def test_two_raters_grabbing_at_once_never_get_the_same_task():
    if connection.vendor != "postgresql":
        pytest.fail("the lease concurrency test needs PostgreSQL (set DATABASE_URL)")
    run = make_run(review={"audit_share": 0})
    queued(run, *[0.2 + i * 0.01 for i in range(24)])
    raters = [make_user(f"rater{i}", "annotator") for i in range(6)]
    barrier = threading.Barrier(len(raters))
    grabbed: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def grab(user) -> None:
        try:
            barrier.wait()
            mine = []
            for _ in range(4):
                task = ReviewTask.objects.claim_next(user)
                mine.append(task.pk)
                record_decision(task.pk, user, "accept")
            grabbed[user.username] = mine
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=grab, args=(u,)) for u in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    every = [pk for mine in grabbed.values() for pk in mine]
    assert len(every) == 24 and len(set(every)) == 24
    assert task_of_count_done() == 24


def task_of_count_done() -> int:
    return ReviewTask.objects.filter(done_at__isnull=False).count()


def test_remaining_is_counted_up_to_a_cap(run):
    queued(run, 0.3, 0.35, 0.4)
    assert ReviewTask.objects.remaining(2) == 3  # "more than 2"
    assert ReviewTask.objects.remaining(5) == 3
