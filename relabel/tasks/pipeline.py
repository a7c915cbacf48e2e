"""Celery tasks for the pipeline: thin adapters over relabel.pipeline.batch.

``process_items`` is idempotent (items are claimed with a conditional UPDATE and their result is
written only once), which is what makes ``acks_late`` safe: a task redelivered after its worker
died does again only what was not done. Database outages are retried with backoff; failures of
one trajectory (endpoint down, malformed output) are recorded on that trajectory instead.
"""

from __future__ import annotations

from functools import partial

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from relabel.models import Run, RunItem
from relabel.pipeline import batch
from relabel.pipeline.claims import unclaimed
from relabel.tasks import background
from relabel.tasks.batches import enqueue_batch_run
from relabel.tasks.options import RUN_TASK

__all__ = ["enqueue_run", "process_items"]


@shared_task(**RUN_TASK)
def process_items(self, run_id: int, item_ids: list[int]) -> None:
    try:
        batch.process_items(
            run_id,
            item_ids,
            claim_key=self.request.id or "",
            interruptions=(SoftTimeLimitExceeded,),
        )
    except SoftTimeLimitExceeded:
        # Out of time with items left: hand them to a new task rather than to a resume.
        left = unclaimed(item_ids)
        if left:
            process_items.delay(run_id, left)


def enqueue_run(run: Run) -> int:
    """Sends the run's unfinished items to the workers in chunks, once the transaction commits;
    returns how many tasks. A run with nothing left is finished instead. A run through the Batch
    API is a chain of checks instead (relabel.tasks.batches)."""
    if run.config.get("batch"):
        return enqueue_batch_run(run)
    items = RunItem.objects.for_run(run).unfinished().order_by("id")
    ids = list(items.values_list("id", flat=True))
    if not ids:
        transaction.on_commit(run.finish_if_done)
        return 0
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    size = len(ids) if eager else int(run.config["chunk_size"])
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    for chunk in chunks:
        if eager:
            # Same as delay_on_commit, but not thrown: a failed task marks the run interrupted
            # (see batch.process_items), and the caller reads that from the run, as with workers.
            # Started from a page, it runs on a thread so the page answers at once.
            work = partial(process_items.apply, (run.pk, chunk), throw=False)
            background.on_commit(work, f"run-{run.pk}")
        else:
            process_items.delay_on_commit(run.pk, chunk)
    return len(chunks)
