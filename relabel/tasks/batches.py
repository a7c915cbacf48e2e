"""The Celery task of a run through the Batch API: a check that reschedules itself.

``check_batches`` does one check (relabel.pipeline.batch_run.advance) and, while the run is not
done, sends the next one ``batch_poll_seconds`` later, so no worker waits for a batch. The chain
holds a ticket on the run: a check hands it on to its successor (``Run.pass_batch_ticket``), a
duplicate delivery finds it gone and stops, and a resume starts a new chain (any older one stops
at its next check). A check is idempotent: delivered twice, it reads, replays and sends nothing
twice (claims, and batches recorded before they are sent).
"""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from relabel.models import Run
from relabel.pipeline import batch_run
from relabel.tasks.options import RUN_TASK

__all__ = ["check_batches", "enqueue_batch_run"]

logger = logging.getLogger("agenther.pipeline")


@shared_task(**RUN_TASK)
def check_batches(self, run_id: int, ticket: str) -> None:
    try:
        wait = batch_run.advance(
            run_id, ticket, claim_key=self.request.id or "", interruptions=(SoftTimeLimitExceeded,)
        )
    except SoftTimeLimitExceeded:
        wait = 0.0  # out of time with trajectories left: the next check takes them on at once
    if wait is None:
        return
    successor = Run(pk=run_id).pass_batch_ticket(ticket)
    if successor:
        check_batches.apply_async((run_id, successor), countdown=wait)


def enqueue_batch_run(run: Run) -> int:
    """Starts the run's chain of checks once the transaction commits. Without a broker the checks
    run here, in a loop, until the run is done (as a synchronous run would)."""
    ticket = run.start_batch_chain()
    if settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(partial(drive_here, run.pk, ticket))
    else:
        check_batches.delay_on_commit(run.pk, ticket)
    return 1


def drive_here(run_id: int, ticket: str) -> None:
    """The checks without a broker. A failure is not thrown at whoever started the run (a page,
    the command): as with workers, it is on the run (interrupted, with the error), and a resume
    picks it up."""
    try:
        batch_run.drive(run_id, ticket)
    except Exception:
        logger.exception("batch run %s stopped", run_id)
