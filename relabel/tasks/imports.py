"""Celery tasks for imports: the UI's uploads, imported in the background."""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task
from django.utils import timezone

from relabel.importers import TrajectoryImportError
from relabel.importers.uploads import import_upload_file
from relabel.models import ImportJob

__all__ = ["import_upload"]

logger = logging.getLogger("agenther")


@shared_task(ignore_result=True, acks_late=True)
def import_upload(job_id: int) -> None:
    """Imports an uploaded file for its ImportJob and records the summary or the error.

    Safe to run twice: a finished job is left alone, and a re-run after a lost worker finds what
    was already saved as duplicates.
    """
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status == ImportJob.Status.DONE:
        return
    job.status = ImportJob.Status.RUNNING
    job.error = ""
    job.save(update_fields=["status", "error"])

    def progress(done: int, total: int) -> None:
        job.progress, job.total = done, total
        job.save(update_fields=["progress", "total"])

    try:
        summary = import_upload_file(
            Path(job.path), job.dataset_name, fmt=job.format, mapping=job.mapping, progress=progress
        )
    except TrajectoryImportError as err:
        # The file sits on the server under another name: show the user the one they uploaded.
        _finish(job, ImportJob.Status.FAILED, error=shown_error(job, err))
    except Exception as err:  # a bug, not bad input: the job must still end, and say so
        logger.exception("import job %s failed", job.pk)
        _finish(
            job, ImportJob.Status.FAILED, error=f"unexpected error: {type(err).__name__}: {err}"
        )
    else:
        job.summary = summary.as_dict()
        _finish(job, ImportJob.Status.DONE)


def shown_error(job: ImportJob, err: TrajectoryImportError) -> str:
    """The error with the server's paths replaced by what the user uploaded: the file itself, or
    ``archive.zip: member/path`` for a file inside an uploaded archive."""
    unpacked = str(Path(job.path).parent / "unpacked") + "/"
    text = str(err).replace(unpacked, f"{job.original_name}: ")
    return text.replace(job.path, job.original_name)


def _finish(job: ImportJob, status: str, error: str = "") -> None:
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "summary", "finished_at"])
