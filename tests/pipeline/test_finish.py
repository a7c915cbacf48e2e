"""Finishing a run is a check after every task: it must cost the same at any size. It reads the
run's counter of pending items (kept in each result's transaction), not the items: on PostgreSQL,
with statistics taken while a run was all pending, asking the items scans every item of every
run, once per task (O(N^2) over a run; bench/finish_check.py measures it)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from relabel.models import Run, RunItem
from relabel.runs import resume_run, start_run
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db


def small_dataset(failed: int = 3, won: int = 1):
    dataset = make_dataset()
    for _ in range(failed):
        make_trajectory(dataset)
    for _ in range(won):
        make_trajectory(dataset, success=True, reward=1.0)
    return dataset


def test_the_finish_check_of_an_unfinished_run_reads_one_row_of_the_run(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run(small_dataset(), backend="rules")
    run.refresh_from_db()
    assert run.pending_items == 4
    with CaptureQueriesContext(connection) as queries:
        assert run.finish_if_done() is False
    assert len(queries) == 1 and "relabel_runitem" not in queries[0]["sql"]


def test_the_counter_follows_every_result_to_zero_and_the_run_finishes(relabel_now):
    run = relabel_now(small_dataset(failed=5, won=2), "rules")
    assert run.status == Run.Status.FINISHED and run.pending_items == 0
    assert not RunItem.objects.filter(run=run).pending().exists()


def test_a_counter_that_disagrees_with_the_items_is_corrected_and_never_finishes_early(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run(small_dataset(), backend="rules")
    Run.objects.filter(pk=run.pk).update(pending_items=0)  # as if a write had been lost
    assert run.finish_if_done() is False
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.pending_items == 4
    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run)
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED and run.pending_items == 0
