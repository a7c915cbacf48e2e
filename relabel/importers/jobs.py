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
            success_score=job.success_score,
        )
    except TrajectoryImportError as err:
        raise JobError(shown_path(job, str(err))) from None
    return {"summary": shown_summary(job, summary.as_dict())}


def shown_path(job: ImportJob, text: str) -> str:
    """The text with the server's paths replaced by what the user uploaded: the file itself, or
    ``archive.zip: member/path`` for a file inside an uploaded archive."""
    unpacked = str(Path(job.path).parent / "unpacked") + "/"
    return text.replace(unpacked, f"{job.original_name}: ").replace(job.path, job.original_name)


def shown_summary(job: ImportJob, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary, each file under the name the user knows (see shown_path)."""
    files = [{**f, "path": shown_path(job, f["path"])} for f in summary["files"]]
    return {**summary, "files": files}
