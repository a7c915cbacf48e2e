"""``manifest.json``: what an export holds and where it came from.

Counts per file and in total, the filters, the run's frozen configuration, the precision
estimate of the exported set with its interval, the sha256 of every file, when and by whom.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from relabel.models import Run
from review.exports import rows
from review.exports.options import ExportOptions
from review.precision.figures import run_figures

FILE = "manifest.json"
logger = logging.getLogger("agenther.exports")


def precision_estimate(run: Run) -> dict[str, Any]:
    """The precision of the exported set, the very figure ``manage.py precision --json`` and the
    precision page give (``export_precision``: ``available``, value and interval, or the reason
    and n when there are too few verdicts). A failing estimate is recorded as such: it never
    costs the export itself.
    """
    try:
        figures = run_figures(run)
    except Exception as exc:  # the estimate is advisory; log it and keep the export
        logger.exception("precision estimate of run %s failed", run.pk)
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}", "n": 0}
    return figures["export_precision"]


def run_record(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "name": run.name,
        "dataset": run.dataset.name,
        "backend": run.backend,
        "prompt_version": run.prompt_version,
        "status": run.status,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "config": run.config,
    }


def build(
    run: Run,
    options: ExportOptions,
    files: list[dict[str, Any]],
    *,
    created_by: str | None,
) -> dict[str, Any]:
    data_files = [f for f in files if f.get("rows") is not None]
    return {
        "format": options.format,
        "total_rows": sum(f["rows"] for f in data_files),
        "counts": {f["name"]: f["rows"] for f in data_files},
        "files": files,
        "filters": options.as_filters(),
        "run": run_record(run),
        "precision": precision_estimate(run),
        "consistency": rows.consistency_counts(run, options),
        "created_at": timezone.now().isoformat(),
        "created_by": created_by,
        "generator": "agenther-studio export",
    }
