"""A file uploaded through the UI: what an ImportJob does once a worker has claimed it, and the
clean-up after it (nothing of a refused upload stays on the server)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from relabel.importers import TrajectoryImportError, import_paths
from relabel.models import ImportJob, JobError


def import_upload(job: ImportJob) -> dict[str, Any]:
    """Imports the uploaded file (an archive is unpacked beside it, within the limits, and that
    copy removed afterwards); returns the job's result. A failed import removes the upload's
    folder. Safe to run twice: a re-run after a lost worker finds what was saved as duplicates.
    """
    path = Path(job.path)
    try:
        summary = import_paths(
            [path],
            job.dataset_name,
            fmt=job.format,
            mapping=job.mapping,
            progress=job.report_progress,
            success_score=job.success_score,
            workdir=path.parent,
        )
    except TrajectoryImportError as err:
        discard_upload(path)
        raise JobError(shown_path(job, str(err))) from None
    except Exception:
        discard_upload(path)
        raise
    return {"summary": shown_summary(job, summary.as_dict())}


def discard_upload(path: Path) -> None:
    """Removes the folder of one upload (UPLOAD_ROOT/<id>/), and never anything else."""
    folder = path.parent
    if folder.parent.resolve() == Path(settings.UPLOAD_ROOT).resolve():
        shutil.rmtree(folder, ignore_errors=True)


def shown_path(job: ImportJob, text: str) -> str:
    """The text with the server's path of the upload replaced by the name the user uploaded
    (a file inside an uploaded archive reads ``archive.zip: member/path``)."""
    return text.replace(job.path, job.original_name)


def shown_summary(job: ImportJob, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary, each file under the name the user knows (see shown_path)."""
    files = [{**f, "path": shown_path(job, f["path"])} for f in summary["files"]]
    return {**summary, "files": files}
