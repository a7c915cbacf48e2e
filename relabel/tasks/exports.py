"""Celery tasks for exports."""

from __future__ import annotations

from celery import shared_task

from relabel.models import ExportJob

__all__: list[str] = ["export_run"]


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=3660)
def export_run(job_id: int) -> None:
    """Writes ExportJob ``job_id``'s files. Idempotent: a finished job is left alone, a job whose
    worker died is written again from the start into the same directory."""
    from review.exports.writer import run_export

    job = ExportJob.objects.select_related("run", "run__dataset", "created_by").filter(pk=job_id)
    job = job.first()
    if job is not None:
        run_export(job)
