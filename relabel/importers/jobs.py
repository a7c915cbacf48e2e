"""The import behind an upload: what an ImportJob does once a worker has claimed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers import TrajectoryImportError, import_paths
from relabel.importers.archives import unpack
from relabel.models import ImportJob, JobError


def import_upload(job: ImportJob) -> dict[str, Any]:
    """Unpacks the uploaded file if it is an archive and imports it; returns the job's result.

    Safe to run twice: a re-run after a lost worker finds what was already saved as duplicates.
    """
    try:
        paths = [unpack(Path(job.path))]
        summary = import_paths(
            paths,
            job.dataset_name,
            fmt=job.format,
            mapping=job.mapping,
            progress=job.report_progress,
        )
    except TrajectoryImportError as err:
        raise JobError(shown_error(job, err)) from None
    return {"summary": summary.as_dict()}


def shown_error(job: ImportJob, err: TrajectoryImportError) -> str:
    """The error with the server's paths replaced by what the user uploaded: the file itself, or
    ``archive.zip: member/path`` for a file inside an uploaded archive."""
    unpacked = str(Path(job.path).parent / "unpacked") + "/"
    text = str(err).replace(unpacked, f"{job.original_name}: ")
    return text.replace(job.path, job.original_name)
