"""Celery tasks: thin adapters that take ids, re-fetch, and call a domain function.

The only package (with agenther_site.celery) that imports Celery: the pipeline and the pages
call the functions here (``enqueue_run``, ``submit_job``) and never a task directly. One module
per concern, imported here so that Celery's autodiscovery finds them all.
"""

from __future__ import annotations

from relabel.tasks.background import in_background
from relabel.tasks.batches import check_batches
from relabel.tasks.jobs import run_job, submit_job
from relabel.tasks.pipeline import enqueue_run, process_items

__all__ = [
    "check_batches",
    "enqueue_run",
    "in_background",
    "process_items",
    "run_job",
    "submit_job",
]
