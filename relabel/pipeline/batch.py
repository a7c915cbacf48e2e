"""A batch of a run's items, as one task takes it: claim them, process them in a pool of
threads (or, for a big run without a broker, of processes), then finish the run if it is done.
"""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

from django.db import DatabaseError, connections

from relabel.backends import get_backend
from relabel.llm.client import reset_clients
from relabel.models import Run
from relabel.pipeline.claims import load_items, release_claims
from relabel.pipeline.item import Processing, process_item
from relabel.pipeline.pools import pool_size, process_count, process_in_threads, share_config

Interruptions = tuple[type[BaseException], ...]


def process_items(
    run_id: int, item_ids: list[int], claim_key: str = "", interruptions: Interruptions = ()
) -> None:
    """Processes the given items of a run (those still unclaimed), then finishes the run if done.

    ``claim_key`` (the Celery task's id) makes the claims' tokens the same each time the task is
    delivered. ``interruptions`` are exceptions that stop the task without marking the run
    interrupted (the task layer's own, e.g. its soft time limit).
    """
    run = Run.objects.get(pk=run_id)
    parts = process_count(run, len(item_ids))
    claim_key = claim_key or uuid.uuid4().hex
    try:
        if parts > 1:
            process_in_processes(run, item_ids, parts, claim_key)
        else:
            process_here(run, item_ids, run.config, claim_key, interruptions)
    except (DatabaseError, *interruptions):
        raise  # the task retries, or the next task takes over: the run is still running
    except Exception as exc:
        # Not one trajectory's failure (those are recorded on the item) but the task's: say so
        # on the run, which a resume picks up again.
        run.interrupt(f"{type(exc).__name__}: {exc}")
        raise
    run.finish_if_done()


def process_here(
    run: Run,
    item_ids: list[int],
    config: dict[str, Any],
    claim_key: str,
    interruptions: Interruptions = (),
) -> None:
    work = Processing(run, get_backend(run.backend, config), interruptions)
    workers = min(pool_size(config), len(item_ids))
    tokens: list[str] = []
    try:
        if workers <= 1:
            for item, steps in load_items(item_ids, claim_key, tokens):
                process_item(work, item, steps)
        else:
            process_in_threads(work, load_items(item_ids, claim_key, tokens), workers)
    except BaseException:
        release_claims(run, tokens)
        raise


def process_in_processes(run: Run, item_ids: list[int], parts: int, claim_key: str) -> None:
    config = share_config(run.config, parts)
    connections.close_all()  # each process opens its own
    context = multiprocessing.get_context("fork")
    shares = [item_ids[i::parts] for i in range(parts)]
    processes = [
        context.Process(target=_child, args=(run.pk, share, config, f"{claim_key}/{n}"))
        for n, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = sum(process.exitcode != 0 for process in processes)
    if failed:
        raise RuntimeError(f"{failed} of {parts} processes of run {run.pk} failed; resume it")


def _child(run_id: int, item_ids: list[int], config: dict[str, Any], claim_key: str) -> None:
    reset_clients()  # never share the parent's HTTP connections
    try:
        process_here(Run.objects.get(pk=run_id), item_ids, config, claim_key)
    finally:
        connections.close_all()
