"""One task for every background job (imports, exports): it runs the job by its model and id.

The job model says what the work is (``BackgroundJob.performed_by``) and how long it may take, so
this module knows no app: the review side's exports run here without relabel importing them.
"""

from __future__ import annotations

from celery import shared_task
from django.apps import apps
from django.db import transaction

from relabel.models import BackgroundJob
from relabel.tasks import background

__all__ = ["run_job", "submit_job"]


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def run_job(self, label: str, job_id: int) -> None:
    """Runs job ``job_id`` of model ``label`` (e.g. ``relabel.ImportJob``). Idempotent: a job
    that has ended is left alone; one another worker holds is tried again when that worker's
    lease is over (so a worker that died is taken over, and a live one is never doubled)."""
    model = apps.get_model(label)
    if not issubclass(model, BackgroundJob):
        raise TypeError(f"{label} is not a background job")
    job = model.objects.filter(pk=job_id).first()
    if job is None:
        return
    wait = job.execute()
    if wait:
        raise self.retry(countdown=int(wait) + 1)


def submit_job(job: BackgroundJob) -> None:
    """Sends the job to a worker once the transaction that created it commits."""
    limits = {"soft_time_limit": job.SOFT_TIME_LIMIT, "time_limit": job.time_limit()}
    options = {name: seconds for name, seconds in limits.items() if seconds}
    args = (job._meta.label, job.pk)
    if background.wanted():  # no broker, started from a page: a thread of this process
        background.on_commit(lambda: run_job.apply(args), f"job-{job._meta.label}-{job.pk}")
        return
    transaction.on_commit(lambda: run_job.apply_async(args, **options))
