"""Writes an export into a directory, one row a line, with progress.

``export_to_directory`` is what the command and the background job share; ``export_job`` is what
an ExportJob does (review.models; ``BackgroundJob`` claims it and records how it ended).
Each file is written as ``<name>.part`` and renamed when complete, so a reader never mistakes a
half-written file for an export; the manifest comes last.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from relabel.models import JobError, Run
from review.exports import dpo, manifest, sft, sharegpt, verdicts
from review.exports.options import ExportError, ExportOptions
from review.models import ExportJob

logger = logging.getLogger("agenther.exports")
Progress = Callable[[int, int], None]
PROGRESS_EVERY_ROWS = 200

BUILDERS = {"sft": sft, "dpo": dpo, "sharegpt": sharegpt, "verdicts": verdicts}
# Every name an export may write: what --overwrite removes, and all a download may serve.
KNOWN_FILES = {
    sft.FILE,
    sft.SUCCESS_FILE,
    dpo.HINDSIGHT_FILE,
    dpo.SHARED_FILE,
    sharegpt.FILE,
    sharegpt.SUCCESS_FILE,
    sharegpt.INFO_FILE,
    verdicts.FILE,
    verdicts.CSV_FILE,
    manifest.FILE,
}


def prepare_directory(out: Path, *, overwrite: bool) -> None:
    """Creates ``out``, refusing a file or another export unless told to replace it."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(name for name in KNOWN_FILES if (out / name).exists())
    if existing and not overwrite:
        raise ExportError(
            f"--out {out} already holds an export ({', '.join(existing)}): "
            "choose an empty directory or pass --overwrite"
        )
    for name in existing:
        (out / name).unlink()


def _jsonl_lines(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode()


def _csv_row(cells: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode()


def _csv_lines(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield _csv_row(verdicts.csv_cells(record))


def write_file(path: Path, records: Iterator[dict[str, Any]], on_row: Callable[[], None]) -> dict:
    """Writes ``records`` line by line; returns {name, rows, bytes, sha256}."""
    is_csv = path.suffix == ".csv"
    lines = _csv_lines(records) if is_csv else _jsonl_lines(records)
    digest, count, size = hashlib.sha256(), 0, 0
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        if is_csv:
            header = _csv_row(verdicts.COLUMNS)
            f.write(header)
            digest.update(header)
            size += len(header)
        for line in lines:
            f.write(line)
            digest.update(line)
            count += 1
            size += len(line)
            on_row()
    os.replace(part, path)
    return {"name": path.name, "rows": count, "bytes": size, "sha256": digest.hexdigest()}


def write_json(path: Path, value: Any) -> dict[str, Any]:
    data = (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)
    return {
        "name": path.name,
        "rows": None,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


class _Counter:
    """Calls ``progress`` every PROGRESS_EVERY_ROWS rows, so a job's row is not hammered."""

    def __init__(self, total: int, progress: Progress | None):
        self.done, self.total, self.progress = 0, total, progress

    def tick(self) -> None:
        self.done += 1
        if self.progress and self.done % PROGRESS_EVERY_ROWS == 0:
            self.progress(self.done, max(self.total, self.done))

    def finish(self) -> None:
        if self.progress:
            self.progress(self.done, self.done)


def export_to_directory(
    run: Run,
    options: ExportOptions,
    out: Path,
    *,
    created_by: str | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes the export of ``run`` into ``out`` and returns its manifest."""
    prepare_directory(out, overwrite=overwrite)
    plan = BUILDERS[options.format].files(run, options)
    counter = _Counter(sum(expected for _, expected, _ in plan), progress)
    if progress:
        progress(0, counter.total)
    written = [
        write_file(out / name, records, counter.tick) | manifest.figures_of(records)
        for name, _, records in plan
    ]
    if options.format == "sharegpt":
        info = sharegpt.dataset_info(options.include_successes)
        written.append(write_json(out / sharegpt.INFO_FILE, info))
    counter.finish()
    result = manifest.build(run, options, written, created_by=created_by)
    write_json(out / manifest.FILE, result)
    return result


def job_directory(job: ExportJob) -> Path:
    return Path(settings.EXPORT_ROOT) / f"job-{job.pk}"


def export_job(job: ExportJob) -> dict[str, Any]:
    """What an ExportJob does once a worker has claimed it: the export, written (again, from the
    start, should a worker have died mid-way) into EXPORT_ROOT/job-<id>; returns the job's
    result fields."""
    directory = job_directory(job)
    ExportJob.objects.filter(pk=job.pk).update(directory=str(directory))
    by = job.created_by.get_username() if job.created_by else None
    try:
        options = ExportOptions.from_filters(job.format, job.filters)
        result = export_to_directory(
            job.run, options, directory, created_by=by, progress=job.report_progress, overwrite=True
        )
    except ExportError as exc:
        raise JobError(str(exc)) from None
    total = result["total_rows"]
    return {"directory": str(directory), "manifest": result, "progress": total, "total": total}
