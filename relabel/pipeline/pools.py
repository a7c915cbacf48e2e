"""How many items one process works on at once, and the pool of threads that does it.

Within a task, items are processed by a bounded pool of threads sized by the endpoints'
concurrency limits, so a run is concurrent with or without a broker. Without one, the whole run
is one task in one process, whose threads share one interpreter lock: a large run is then split
over forked processes (relabel.pipeline.batch), one per CPU, sharing the limits. The rules
backend needs no network and runs in the calling thread.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection, connections

from relabel.models import Run, RunItem, Step
from relabel.pipeline.claims import LOAD_BATCH
from relabel.pipeline.item import Processing, process_item

MIN_ITEMS_PER_PROCESS = 200


def pool_size(config: dict[str, Any]) -> int:
    """Threads per process: enough to keep every endpoint's slots busy; 1 for the rules backend."""
    if config["backend"] == "rules":
        return 1
    endpoints = list(config["stages"].values()) + list(config["judges"])
    most = max(int(e.get("concurrency") or config["concurrency"]) for e in endpoints)
    # Twice the slots: while some threads write results or build prompts, the others keep every
    # slot busy; and a task of a broker's chunk (32 items for 16 slots) has all its items in
    # flight at once, so none starts late and leaves the slots idle at the end of the task.
    return 1 if most == 1 else 2 * most


def process_count(run: Run, items: int) -> int:
    """Processes for one task's items: more than one only for big in-process (eager) runs.

    A Celery worker is already one of several processes; without a broker the whole run is one
    task in one process, so a large run is split over forked processes the way Celery's prefork
    pool would split it over workers.
    """
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    if run.backend == "rules" or not eager or connection.in_atomic_block:
        return 1
    if threading.current_thread() is not threading.main_thread():
        return 1  # e.g. a request of the threaded development server: never fork from there
    configured = int(run.config.get("processes") or 0)
    if configured:
        return max(1, min(configured, items))
    return max(1, min(os.cpu_count() or 1, items // MIN_ITEMS_PER_PROCESS))


def share_config(config: dict[str, Any], parts: int) -> dict[str, Any]:
    """The configuration of one of ``parts`` processes: each endpoint's limit split between them."""
    config = copy.deepcopy(config)
    config["concurrency"] = max(1, -(-config["concurrency"] // parts))
    for entry in [*config["stages"].values(), *config["judges"]]:
        entry["concurrency"] = max(1, -(-int(entry["concurrency"]) // parts))
    return config


def process_in_threads(
    work: Processing, entries: Iterator[tuple[RunItem, list[Step]]], workers: int
) -> None:
    """Feeds ``entries`` to ``workers`` threads; the first failure stops them all and is raised."""
    # Bounded, so the items in memory stay a few batches however large the chunk.
    todo: queue.Queue[tuple[RunItem, list[Step]] | None] = queue.Queue(maxsize=2 * LOAD_BATCH)
    failures: list[BaseException] = []
    name = f"run{work.run.pk}"
    threads = [
        threading.Thread(target=_work, args=(work, todo, failures), name=f"{name}-{i}")
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for entry in entries:
            if failures:
                break
            todo.put(entry)
    except BaseException as exc:  # the soft time limit: finish the items in hand, take no more
        failures.append(exc)
    finally:
        for _ in threads:
            todo.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


def _work(work: Processing, todo: queue.Queue, failures: list[BaseException]) -> None:
    try:
        while (entry := todo.get()) is not None:
            if not failures:
                process_item(work, *entry)
    except BaseException as exc:  # a database outage: stop, and let the task retry
        failures.append(exc)
        while todo.get() is not None:  # drain, so the feeder never blocks
            pass
    finally:
        connections.close_all()  # this thread's own connections
