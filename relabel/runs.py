"""A run's life: started under a frozen configuration, resumed, finished (``Run.finish_if_done``).

``start_run`` freezes the configuration into the run, creates one RunItem per trajectory and
enqueues the work once the transaction commits (workers only see committed rows). Without a
broker the tasks run in this process; with one, on the workers. Either way the caller follows
the run through its rows (relabel.pipeline.summary). A run with ``batch`` set goes through the
endpoints' Batch API (relabel.pipeline.batch_run) and resumes where its batches are.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from relabel.config import ConfigError, load_config, resolve_endpoints
from relabel.models import Dataset, Run, RunItem
from relabel.pipeline.batch_run import retry_errors
from relabel.tasks import enqueue_run

BATCH = 2000


def prepare_config(backend: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The validated configuration with every endpoint resolved; raises ConfigError."""
    config = load_config(backend=backend, overrides=config)
    if config["batch"] and config["backend"] != "openai":
        raise ConfigError("batch: the Batch API is the openai backend's (backend is rules)")
    return resolve_endpoints(
        config,
        default_base_url=settings.OPENAI_BASE_URL,
        default_model=settings.AGENTHER_DEFAULT_MODEL,
    )


def start_run(
    dataset: Dataset, *, backend: str = "rules", config: dict[str, Any] | None = None, user=None
) -> Run:
    """Creates a run of ``dataset`` under a frozen configuration and enqueues its work."""
    config = prepare_config(backend, config)
    with transaction.atomic():
        run = Run.objects.create(
            dataset=dataset,
            backend=config["backend"],
            config=config,
            prompt_version=config["prompt_version"],
            status=Run.Status.RUNNING,
            started_at=timezone.now(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        create_items(run)
        enqueue_run(run)
    run.refresh_from_db()
    return run


def create_items(run: Run) -> None:
    """One RunItem per trajectory of the run's dataset, written in batches; all pending."""
    ids = run.dataset.trajectories.order_by("id").values_list("id", flat=True)
    batch: list[RunItem] = []
    total = 0
    for trajectory_id in ids.iterator(chunk_size=BATCH):
        batch.append(RunItem(run=run, trajectory_id=trajectory_id))
        if len(batch) >= BATCH:
            RunItem.objects.bulk_create(batch)
            total, batch = total + len(batch), []
    RunItem.objects.bulk_create(batch)
    Run.objects.filter(pk=run.pk).update(pending_items=total + len(batch))


def resume_run(run: Run) -> Run:
    """Enqueues what is left of a run (pending and error items). A finished run is announced as
    finished again, so whatever an interrupted finish missed is filled in.

    Leases are cleared: resuming says the workers that held them are gone. Should one still be
    working, the conditional result write and Candidate's one-to-one keep it to one candidate.
    """
    with transaction.atomic():
        if run.config.get("batch"):
            retry_errors(run)  # their failed answers are dropped, so they are asked again
        left = RunItem.objects.for_run(run).unfinished()
        run.refresh_from_db(fields=["status"])
        if left.exists() or run.status == Run.Status.INTERRUPTED:
            left.update(lease_until=None)
            run.recount_pending()
            run.reopen()
            enqueue_run(run)
        elif run.status == Run.Status.FINISHED:
            run.announce_finished()
    run.refresh_from_db()
    return run
