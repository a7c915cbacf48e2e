"""Runs: start, process, resume, finish, summarise.

``start_run`` freezes the configuration into the run, creates one RunItem per trajectory and
enqueues the work (``delay_on_commit``: workers only see committed rows). A task takes a chunk of
item ids and claims them a batch at a time with one conditional UPDATE (a lease and a claim
token); only the holder of the claim on an unfinished item writes its result, with a second
conditional UPDATE, so a task delivered twice, or a resumed run, never makes a second candidate
(Candidate is also one-to-one with RunItem).

Within a task, the items are processed by a bounded pool of threads sized by the endpoints'
concurrency limits, so a run is concurrent with or without a broker. Without one, tasks run
in-process and one task takes the whole run; a large run is then split over forked processes,
one per CPU, sharing the limits (threads alone are bound by one interpreter lock). The rules
backend needs no network and runs in the calling thread.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from relabel.backends import Backend, ItemContext, get_backend
from relabel.config import ConfigError, load_config, resolve_endpoints
from relabel.llm.client import CallLog, reset_clients
from relabel.models import Candidate, Dataset, LLMCall, Run, RunItem, Step
from relabel.pipeline.detect import detect_failure
from relabel.pipeline.extract import extract_outcome
from relabel.pipeline.gate import aggregate, gate
from relabel.pipeline.hindsight import relabel_attempts
from relabel.pipeline.judges import run_panel

logger = logging.getLogger("agenther.pipeline")

BATCH = 2000
LOAD_BATCH = 64
MIN_ITEMS_PER_PROCESS = 200
DONE_STATUSES = [*RunItem.FINAL_STATUSES, RunItem.Status.ERROR]


def lease_seconds() -> int:
    # A worker cannot hold an item longer than a task may live.
    return int(settings.CELERY_TASK_TIME_LIMIT)


def prepare_config(backend: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The validated configuration with every endpoint resolved; raises ConfigError."""
    config = load_config(backend=backend, overrides=config)
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
        ids = dataset.trajectories.order_by("id").values_list("id", flat=True)
        batch: list[RunItem] = []
        for trajectory_id in ids.iterator(chunk_size=BATCH):
            batch.append(RunItem(run=run, trajectory_id=trajectory_id))
            if len(batch) >= BATCH:
                RunItem.objects.bulk_create(batch)
                batch = []
        RunItem.objects.bulk_create(batch)
        enqueue(run)
    run.refresh_from_db()
    return run


def resume_run(run: Run) -> Run:
    """Enqueues what is left of a run (pending and error items); a finished run is left as is.

    Leases are cleared: resuming says the workers that held them are gone. Should one still be
    working, the conditional result write and Candidate's one-to-one keep it to one candidate.
    """
    with transaction.atomic():
        left = RunItem.objects.for_run(run).pending()
        run.refresh_from_db(fields=["status"])
        if left.exists() or run.status == Run.Status.INTERRUPTED:
            left.update(lease_until=None)
            Run.objects.filter(pk=run.pk).update(
                status=Run.Status.RUNNING, finished_at=None, error=""
            )
            enqueue(run)
        elif run.status == Run.Status.FINISHED:
            from review.queue import populate_queue

            populate_queue(run)  # idempotent: fills in whatever an interrupted finish missed
    run.refresh_from_db()
    return run


def is_eager() -> bool:
    from relabel.tasks.pipeline import process_items

    return bool(process_items.app.conf.task_always_eager)


def enqueue(run: Run) -> int:
    """Sends the run's unfinished items to the workers in chunks; returns how many tasks."""
    from relabel.tasks.pipeline import process_items

    ids = list(RunItem.objects.for_run(run).pending().order_by("id").values_list("id", flat=True))
    if not ids:
        transaction.on_commit(lambda: finish_if_done(run.pk))
        return 0
    size = len(ids) if is_eager() else int(run.config["chunk_size"])
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    for chunk in chunks:
        if is_eager():
            # Same as delay_on_commit, but not thrown: a failed task marks the run interrupted
            # (see process_items), and the caller reads that from the run, as with workers.
            transaction.on_commit(partial(process_items.apply, (run.pk, chunk), throw=False))
        else:
            process_items.delay_on_commit(run.pk, chunk)
    return len(chunks)


# -- processing ------------------------------------------------------------------------------


def pool_size(config: dict[str, Any]) -> int:
    """Threads per process: enough to keep every endpoint's slots busy; 1 for the rules backend."""
    if config["backend"] == "rules":
        return 1
    endpoints = list(config["stages"].values()) + list(config["judges"])
    most = max(int(e.get("concurrency") or config["concurrency"]) for e in endpoints)
    # More threads than slots: while some threads write results or build prompts, the others
    # keep every slot busy.
    return 1 if most == 1 else most + max(1, most // 2)


def process_count(run: Run, items: int) -> int:
    """Processes for one task's items: more than one only for big in-process (eager) runs.

    A Celery worker is already one of several processes; without a broker the whole run is one
    task in one process, whose threads share one interpreter lock, so a large run is split over
    forked processes the way Celery's prefork pool would split it over workers.
    """
    if run.backend == "rules" or not is_eager() or connection.in_atomic_block:
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


def process_items(run_id: int, item_ids: list[int], claim_key: str = "") -> None:
    """Processes the given items of a run (those still unclaimed), then finishes the run if done.

    ``claim_key`` (the Celery task's id) makes the claims' tokens the same each time the task is
    delivered: a task redelivered after its worker died takes its own items back at once,
    instead of waiting for their leases to run out.
    """
    run = Run.objects.get(pk=run_id)
    parts = process_count(run, len(item_ids))
    claim_key = claim_key or uuid.uuid4().hex
    try:
        if parts > 1:
            _process_in_processes(run, item_ids, parts, claim_key)
        else:
            process_here(run, item_ids, run.config, claim_key)
    except (DatabaseError, SoftTimeLimitExceeded):
        raise  # the task retries, or the next task takes over: the run is still running
    except Exception as exc:
        # Not one trajectory's failure (those are recorded on the item) but the task's: say so
        # on the run, which resume_run picks up again.
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.INTERRUPTED, error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        raise
    finish_if_done(run.pk)


def process_here(run: Run, item_ids: list[int], config: dict[str, Any], claim_key: str) -> None:
    backend = get_backend(run.backend, config)
    workers = min(pool_size(config), len(item_ids))
    tokens: list[str] = []
    try:
        if workers <= 1:
            for item, steps in load_items(item_ids, claim_key, tokens):
                process_item(run, backend, item, steps)
        else:
            entries = load_items(item_ids, claim_key, tokens)
            _process_in_threads(run, backend, entries, workers)
    except BaseException:
        release_claims(run, tokens)
        raise


def _process_in_processes(run: Run, item_ids: list[int], parts: int, claim_key: str) -> None:
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


def release_claims(run: Run, tokens: list[str]) -> None:
    """Best effort, when a task stops early: its unfinished items need not wait for the lease."""
    try:
        for i in range(0, len(tokens), 500):
            RunItem.objects.filter(run=run, claim_token__in=tokens[i : i + 500]).pending().update(
                lease_until=None
            )
    except DatabaseError:
        pass


def load_items(
    item_ids: list[int], claim_key: str, tokens: list[str]
) -> Iterator[tuple[RunItem, list[Step]]]:
    """Claims the unfinished items among ``item_ids`` batch by batch, and yields those this
    task now holds with their trajectories and steps: three queries a batch, none per item.
    Each claim's token is appended to ``tokens``."""
    for i in range(0, len(item_ids), LOAD_BATCH):
        batch = item_ids[i : i + LOAD_BATCH]
        token = claim(batch, claim_token(claim_key, i))
        if not token:
            continue
        tokens.append(token)
        items = list(
            RunItem.objects.filter(pk__in=batch, claim_token=token).select_related("trajectory")
        )
        steps: dict[int, list[Step]] = {item.trajectory_id: [] for item in items}
        # Prompts use the stored excerpts; the compressed full observations stay in the database.
        rows = Step.objects.filter(trajectory_id__in=steps).defer("observation_full")
        for step in rows.order_by("trajectory_id", "index"):
            steps[step.trajectory_id].append(step)
        for item in items:
            yield item, steps[item.trajectory_id]


def _process_in_threads(
    run: Run, backend: Backend, entries: Iterator[tuple[RunItem, list[Step]]], workers: int
) -> None:
    # Bounded, so the items in memory stay a few batches however large the chunk.
    todo: queue.Queue[tuple[RunItem, list[Step]] | None] = queue.Queue(maxsize=2 * LOAD_BATCH)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            while (entry := todo.get()) is not None:
                if not failures:
                    process_item(run, backend, *entry)
        except BaseException as exc:  # a database outage: stop, and let the task retry
            failures.append(exc)
            while todo.get() is not None:  # drain, so the feeder never blocks
                pass
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=work, name=f"run{run.pk}-{i}") for i in range(workers)]
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


def unclaimed(item_ids: list[int]) -> list[int]:
    """The items among ``item_ids`` nobody has started (pending, lease free)."""
    rows = RunItem.objects.filter(pk__in=item_ids, status=RunItem.Status.PENDING)
    return list(rows.claimable(timezone.now()).order_by("pk").values_list("pk", flat=True))


def claim_token(claim_key: str, batch: int) -> str:
    return hashlib.sha1(f"{claim_key}:{batch}".encode()).hexdigest()


def claim(item_ids: list[int], token: str = "") -> str:
    """Leases the claimable items among ``item_ids`` with one conditional UPDATE; returns the
    claim's token ("" when another worker holds them all, or they are done). Items already
    held under ``token`` are claimable again (the same task, redelivered)."""
    now = timezone.now()
    token = token or uuid.uuid4().hex
    claimed = (
        RunItem.objects.filter(pk__in=item_ids)
        .claimable(now, token)
        .update(
            lease_until=now + timedelta(seconds=lease_seconds()),
            claim_token=token,
            attempts=F("attempts") + 1,
            error="",
        )
    )
    return token if claimed else ""


def process_item(run: Run, backend: Backend, item: RunItem, steps: list[Step]) -> str | None:
    """Runs the stages on one claimed item and stores the result; returns its status.

    A stage failing for good (an endpoint down after retries, malformed output) marks this item
    as an error with the reason; the run goes on. Database errors propagate (the task retries).
    """
    trajectory = item.trajectory
    log = CallLog(run_id=run.pk, trajectory_id=trajectory.pk)
    ctx = ItemContext(trajectory, steps, run.config, log)
    try:
        fields, candidate = relabel_item(backend, ctx)
    except (DatabaseError, SoftTimeLimitExceeded):
        release(item.pk, log)
        raise
    except Exception as exc:
        # Recorded on the item (visible, retryable); a warning on stderr would only clutter
        # command output, `--json` above all.
        logger.info("run %s, trajectory %s: %s", run.pk, trajectory.pk, exc)
        fields = {"status": RunItem.Status.ERROR, "error": f"{type(exc).__name__}: {exc}"[:4000]}
        candidate = None
    return save_result(run, item, log, fields, candidate)


def release(item_id: int, log: CallLog) -> None:
    """Best effort after a database error: keep the calls paid for, free the item."""
    try:
        log.flush()
        RunItem.objects.filter(pk=item_id).update(lease_until=None, claim_token="")
    except DatabaseError:
        pass


def save_result(
    run: Run,
    item: RunItem,
    log: CallLog,
    fields: dict[str, Any],
    candidate: dict[str, Any] | None,
) -> str | None:
    with transaction.atomic():
        log.flush()
        # Only the holder of the claim on an unfinished item writes its result: a duplicate
        # delivery, or a worker whose lease expired and was taken over, writes nothing.
        updated = (
            RunItem.objects.filter(pk=item.pk, claim_token=item.claim_token)
            .pending()
            .update(**fields, lease_until=None, updated_at=timezone.now())
        )
        if not updated:
            return None
        if candidate is not None:
            Candidate.objects.create(item=item, run=run, trajectory=item.trajectory, **candidate)
    return fields["status"]


def relabel_item(backend: Backend, ctx: ItemContext) -> tuple[dict[str, Any], dict | None]:
    """The four stages on one trajectory: RunItem fields, and the Candidate's fields (or None)."""
    detection = detect_failure(backend, ctx)
    fields: dict[str, Any] = {
        "is_failure": detection.is_failure,
        "failure_type": detection.failure_type,
        "severity": detection.severity,
        "weight": detection.weight,
        "recoverable": detection.recoverable,
        "detection": detection.raw,
        "error": "",
    }
    if not detection.is_failure:
        return {**fields, "status": RunItem.Status.SUCCESS, "reason": "benchmark success"}, None
    if detection.discarded:
        return {
            **fields,
            "status": RunItem.Status.DISCARDED,
            "reason": detection.discard_reason,
        }, None
    ctx.memo["severity"] = detection.severity
    outcome = extract_outcome(backend, ctx)
    ctx.memo["outcome"] = outcome
    chosen, attempts = relabel_attempts(backend, ctx, outcome)
    if chosen is None:
        last = attempts[-1]["refused"] if attempts else "no attempt"
        reason = f"no acceptable goal after {len(attempts)} attempts (last: {last})"
        outcome = {**outcome, "relabel_attempts": attempts}
        return {
            **fields,
            "outcome": outcome,
            "status": RunItem.Status.NO_CANDIDATE,
            "reason": reason,
        }, None
    verdicts = run_panel(backend, ctx, chosen["goal"])
    aggregation = aggregate(chosen["confidence"], verdicts, ctx.config["aggregation"])
    decision, why = gate(
        aggregation, float(ctx.config["accept_threshold"]), float(ctx.config["reject_threshold"])
    )
    candidate = {
        "hindsight_goal": chosen["goal"],
        "final_goal": chosen["goal"],
        "rationale": chosen["rationale"],
        "generator_confidence": chosen["confidence"],
        "confidence": aggregation["value"],
        "aggregation": aggregation,
        "judges": verdicts,
        "attempts": attempts,
        "gate": decision,
        "gate_reason": why,
    }
    fields = {**fields, "outcome": outcome, "status": RunItem.Status.CANDIDATE, "reason": ""}
    return fields, candidate


def finish_if_done(run_id: int) -> bool:
    """Marks the run finished when no item is left, and fills the review queue once."""
    if RunItem.objects.filter(run_id=run_id).exclude(status__in=DONE_STATUSES).exists():
        return False
    from review.queue import populate_queue

    # One transaction: a run is never seen finished with its review queue still missing.
    with transaction.atomic():
        finished = Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(
            status=Run.Status.FINISHED, finished_at=timezone.now()
        )
        if finished:
            populate_queue(Run.objects.get(pk=run_id))
    return bool(finished)


# -- summary ---------------------------------------------------------------------------------


def run_summary(run: Run) -> dict[str, Any]:
    """The run's counts, tokens and cost, in a handful of aggregate queries."""
    run.refresh_from_db(fields=["status", "started_at", "finished_at"])
    items = RunItem.objects.filter(run=run).aggregate(
        total=Count("id"),
        successes=Count("id", filter=Q(trajectory__success=True)),
        discarded=Count("id", filter=Q(status=RunItem.Status.DISCARDED)),
        errors=Count("id", filter=Q(status=RunItem.Status.ERROR)),
        done=Count("id", filter=Q(status__in=DONE_STATUSES)),
    )
    candidates = Candidate.objects.filter(run=run).aggregate(
        total=Count("id"),
        auto=Count("id", filter=Q(gate=Candidate.Gate.AUTO_ACCEPTED)),
        review=Count("id", filter=Q(gate=Candidate.Gate.NEEDS_REVIEW)),
        rejected=Count("id", filter=Q(gate=Candidate.Gate.REJECTED)),
        approved=Count(
            "id",
            filter=Q(
                review_state__in=[Candidate.ReviewState.ACCEPTED, Candidate.ReviewState.EDITED]
            )
            | (
                Q(gate=Candidate.Gate.AUTO_ACCEPTED)
                & ~Q(review_state=Candidate.ReviewState.REJECTED)
            ),
        ),
    )
    calls = LLMCall.objects.filter(run=run).aggregate(
        n=Count("id"),
        cached=Count("id", filter=Q(cached=True)),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        cost=Sum("cost_usd"),
    )
    cost = float(calls["cost"] or 0)
    end = run.finished_at or timezone.now()
    wall = (end - run.started_at).total_seconds() if run.started_at else 0.0
    return {
        "run": run.pk,
        "status": run.status,
        "trajectories": items["total"],
        "successes": items["successes"],
        "failures": items["total"] - items["successes"],
        "candidates": candidates["total"],
        "auto_accepted": candidates["auto"],
        "needs_review": candidates["review"],
        "rejected": candidates["rejected"],
        "discarded": items["discarded"],
        "errors": items["errors"],
        "llm_calls": calls["n"],
        "cached_calls": calls["cached"],
        "prompt_tokens": calls["prompt"] or 0,
        "completion_tokens": calls["completion"] or 0,
        "cost_usd": round(cost, 6),
        "cost_per_accepted_pair": round(cost / candidates["approved"], 6)
        if candidates["approved"]
        else None,
        "wall_seconds": round(wall, 3),
        "done": items["done"],
        "total": items["total"],
    }


def wait_for(run: Run, *, poll: float = 1.0, timeout: float | None = None, on_progress=None):
    """Blocks until the run is no longer running; ``on_progress(summary)`` after each poll."""
    started = time.monotonic()
    while True:
        summary = run_summary(run)
        if on_progress:
            on_progress(summary)
        if summary["status"] != Run.Status.RUNNING:
            return summary
        if timeout is not None and time.monotonic() - started > timeout:
            return summary
        time.sleep(poll)


__all__ = [
    "ConfigError",
    "finish_if_done",
    "prepare_config",
    "process_items",
    "resume_run",
    "run_summary",
    "start_run",
    "wait_for",
]
