"""Celery tasks for the pipeline: thin adapters over relabel.pipeline.runner.

``process_items`` is idempotent (items are claimed with a conditional UPDATE and their result is
written only once), which is what makes ``acks_late`` safe: a task redelivered after its worker
died does again only what was not done. Database outages are retried with backoff; failures of
one trajectory (endpoint down, malformed output) are recorded on that trajectory instead.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from relabel.pipeline import runner

__all__ = ["process_items"]


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
)
def process_items(self, run_id: int, item_ids: list[int]) -> None:
    try:
        runner.process_items(run_id, item_ids, claim_key=self.request.id or "")
    except SoftTimeLimitExceeded:
        # Out of time with items left: hand them to a new task rather than to a resume.
        left = runner.unclaimed(item_ids)
        if left:
            process_items.delay(run_id, left)
