"""A run through the Batch API: the same stages as a synchronous run, each round of requests sent
as one batch per endpoint and model, and no worker waiting while the endpoint works.

``advance`` is one check of a run; a self-rescheduling task (relabel.tasks.batches) calls it every
``batch_poll_seconds``, or, without a broker, ``drive`` calls it in a loop. A check

1. reads the results of every batch the endpoint has finished: each request's answer (or error)
   is stored on the request, and recorded as an LLMCall priced at the batch rate;
2. replays every pending trajectory that waits for no batch through the pipeline
   (relabel.pipeline.item.process_item) with relabel.llm.batch.BatchingClient: a trajectory whose
   answers are all in is finished and stored exactly as in a synchronous run; one that needs
   more asks for it (``Deferred``): its stages chain, one batch per round;
3. sends what was asked as new batches (recorded first, with which item and stage each request
   is for, so a check that dies midway loses nothing and sends nothing twice);
4. finishes the run when nothing is pending, or says when to check again.

A request whose answer is an error makes its trajectory an error (the others go on), which
``relabel --resume`` asks again (``retry_errors``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import openai
from django.db import DatabaseError, transaction
from django.utils import timezone

from relabel.backends.openai import OpenAIBackend
from relabel.llm import batch_api
from relabel.llm.batch import Answer, BatchingClient, Deferred, PendingRequest
from relabel.llm.client import Endpoint, parse_reply
from relabel.llm.prompts import SCHEMAS
from relabel.models import Batch, BatchRequest, LLMCall, Run, RunItem, Step
from relabel.pipeline.claims import LOAD_BATCH, lease_seconds, load_items, release_claims
from relabel.pipeline.item import Processing, process_item

logger = logging.getLogger("agenther.pipeline")

Interruptions = tuple[type[BaseException], ...]
READY_PER_CHECK = 2000  # trajectories replayed by one check; more are left to the next one
MAX_SEND_BACKOFF = 30.0
Asked = list[tuple[RunItem, PendingRequest]]


def advance(
    run_id: int, ticket: str, claim_key: str = "", interruptions: Interruptions = ()
) -> float | None:
    """One check of a batch run: seconds until the next, or None when the run is done (or this
    check's chain was superseded by a resume)."""
    run = Run.objects.get(pk=run_id)
    if run.batch_ticket != ticket or run.status != Run.Status.RUNNING:
        return None
    client = BatchingClient(run.config)
    try:
        collect_results(run, client)
        recover_unsent(run, client)
        asked, more = replay_ready(run, client, claim_key or ticket, interruptions)
        submit(run, client, asked)
    except (DatabaseError, *interruptions):
        raise  # the task retries, or the next check goes on: the run is still running
    except Exception as exc:
        run.interrupt(f"{type(exc).__name__}: {exc}")
        raise
    if run.finish_if_done():
        return None
    return 0.0 if more else float(run.config["batch_poll_seconds"])


def drive(run_id: int, ticket: str) -> None:
    """Without a broker: checks the run until it is done, sleeping between checks."""
    while (wait := advance(run_id, ticket)) is not None:
        time.sleep(wait)


def endpoint_of(batch: Batch) -> Endpoint:
    return Endpoint.from_config(batch.endpoint)


# -- 1. results --------------------------------------------------------------------------------


def collect_results(run: Run, client: BatchingClient) -> None:
    """Reads every submitted batch the endpoint has finished; one that cannot be checked now
    (endpoint unreachable) is checked again next time."""
    for batch in run.batches.filter(state=Batch.State.SUBMITTED).order_by("id"):
        try:
            remote = batch_api.retrieve(endpoint_of(batch), client.timeout, batch.remote_id)
            if remote.status in batch_api.FINISHED:
                found = batch_api.results(endpoint_of(batch), client.timeout, remote)
                store_results(batch, remote, found, client)
            elif remote.status != batch.remote_status:
                Batch.objects.filter(pk=batch.pk).update(remote_status=remote.status)
        except openai.OpenAIError as exc:
            logger.info("batch %s of run %s: not checked: %s", batch.pk, run.pk, exc)
            Batch.objects.filter(pk=batch.pk).update(error=f"{type(exc).__name__}: {exc}"[:2000])


def store_results(
    batch: Batch, remote: Any, found: dict[str, batch_api.Result], client: BatchingClient
) -> None:
    """Each request's answer and its call, in one transaction with the batch marked done (a
    batch read twice, by two checks at once, is stored once)."""
    with transaction.atomic():
        locked = Batch.objects.select_for_update().filter(pk=batch.pk, state=batch.state).first()
        if locked is None:
            return
        requests = list(batch.requests.select_related("item"))
        calls = [answer_call(batch, r, found.get(r.custom_id), remote, client) for r in requests]
        LLMCall.objects.bulk_create(calls)
        for request, call in zip(requests, calls, strict=True):
            result = found.get(request.custom_id)
            request.answered, request.call = True, call
            request.content = result.content if result else ""
            request.error = result.error if result else batch_api.missing(remote)
        BatchRequest.objects.bulk_update(requests, ["answered", "content", "error", "call"])
        Batch.objects.filter(pk=batch.pk).update(
            state=Batch.State.DONE,
            remote_status=remote.status,
            output_file_id=remote.output_file_id or "",
            error_file_id=remote.error_file_id or "",
            finished_at=timezone.now(),
            lease_until=None,
        )


def answer_call(
    batch: Batch,
    request: BatchRequest,
    result: batch_api.Result | None,
    remote: Any,
    client: BatchingClient,
) -> LLMCall:
    """The LLMCall of one request's answer: the endpoint's usage at the batch rate, or the error
    (billed nothing); a reply that is not the stage's JSON is billed and marked malformed."""
    started = batch.submitted_at or batch.created_at
    fields: dict[str, Any] = {"error": result.error if result else batch_api.missing(remote)}
    if result and not result.error:
        endpoint = endpoint_of(batch)
        estimate = request.estimated_prompt_tokens
        fields = client.usage_fields(endpoint, result.usage, estimate, result.content, batch=True)
        _, problem = parse_reply(result.content, SCHEMAS[request.schema])
        fields["error"] = f"malformed: {problem}"[:2000] if problem else ""
    return LLMCall(
        run_id=batch.run_id,
        trajectory_id=request.item.trajectory_id,
        stage=request.stage,
        model=batch.model,
        endpoint=batch.endpoint["base_url"],
        cache_key=request.cache_key,
        estimated_prompt_tokens=request.estimated_prompt_tokens,
        latency_ms=int((timezone.now() - started).total_seconds() * 1000),
        **fields,
    )


def recover_unsent(run: Run, client: BatchingClient) -> None:
    """A batch whose check died while sending it: adopted if the endpoint has it, else dropped
    (its trajectories are replayed and ask again; nothing was sent, nothing is lost)."""
    stale = run.batches.filter(state=Batch.State.PREPARING, lease_until__lt=timezone.now())
    for batch in stale:
        try:
            remote = batch_api.find(endpoint_of(batch), client.timeout, batch.pk)
        except openai.OpenAIError:
            continue  # cannot tell yet: try again at the next check
        if remote is None:
            batch.delete()
        else:
            mark_submitted(batch, remote)


# -- 2. replays --------------------------------------------------------------------------------


def ready_ids(run: Run) -> list[int]:
    """Pending items that wait for no batch (nor, by their lease, for another check)."""
    waiting = BatchRequest.objects.filter(batch__run=run, batch__state__in=Batch.OPEN)
    ready = RunItem.objects.for_run(run).pending().claimable(timezone.now())
    ready = ready.exclude(pk__in=waiting.values("item_id"))
    return list(ready.order_by("id").values_list("id", flat=True)[: READY_PER_CHECK + 1])


def replay_ready(
    run: Run, client: BatchingClient, claim_key: str, interruptions: Interruptions
) -> tuple[Asked, bool]:
    """Replays the ready items; returns what they asked for, and whether more are ready."""
    ids = ready_ids(run)
    more, ids = len(ids) > READY_PER_CHECK, ids[:READY_PER_CHECK]
    work = Processing(run, OpenAIBackend(run.config, client=client), interruptions)
    asked: Asked = []
    tokens: list[str] = []
    try:
        for i in range(0, len(ids), LOAD_BATCH):
            entries = list(load_items(ids[i : i + LOAD_BATCH], f"{claim_key}/{i}", tokens))
            client.answers = answers_for([item.pk for item, _ in entries])
            for item, steps in entries:
                asked += replay(work, item, steps)
    except BaseException:
        release_claims(run, tokens)
        raise
    return asked, more


def replay(work: Processing, item: RunItem, steps: list[Step]) -> Asked:
    try:
        process_item(work, item, steps)
    except Deferred as deferred:
        # Two judges with one model ask the same question: both are asked, as synchronously.
        unique = {(request.stage, request.key): request for request in deferred.requests}
        return [(item, request) for request in unique.values()]
    return []


def answers_for(item_ids: list[int]) -> dict[str, Answer]:
    """The answered requests of these items, by cache key."""
    rows = BatchRequest.objects.filter(item_id__in=item_ids, answered=True).select_related("call")
    return {
        row.cache_key: Answer(
            content=row.content,
            error=row.error,
            prompt_tokens=row.call.prompt_tokens if row.call else 0,
            completion_tokens=row.call.completion_tokens if row.call else 0,
        )
        for row in rows
    }


# -- 3. sending --------------------------------------------------------------------------------


def submit(run: Run, client: BatchingClient, asked: Asked) -> None:
    """Sends what the replays asked: one batch per endpoint and model, split at
    ``batch_max_requests``."""
    groups: dict[Endpoint, Asked] = defaultdict(list)
    for item, request in asked:
        groups[request.endpoint].append((item, request))
    size = int(run.config["batch_max_requests"])
    for endpoint, requests in groups.items():
        for i in range(0, len(requests), size):
            batch, lines = record_batch(run, endpoint, requests[i : i + size])
            send(batch, lines, client)


def record_batch(run: Run, endpoint: Endpoint, asked: Asked) -> tuple[Batch, list[str]]:
    """The batch and its requests, recorded before anything is sent; its items stop holding a
    claim (they wait for the batch now)."""
    with transaction.atomic():
        batch = Batch.objects.create(
            run=run,
            endpoint=asdict(endpoint),
            model=endpoint.model,
            size=len(asked),
            lease_until=timezone.now() + timedelta(seconds=lease_seconds()),
        )
        rows = BatchRequest.objects.bulk_create(
            BatchRequest(
                batch=batch,
                item=item,
                stage=request.stage[:30],
                schema=request.schema,
                cache_key=request.key,
                estimated_prompt_tokens=request.estimated_tokens,
            )
            for item, request in asked
        )
        RunItem.objects.filter(pk__in={item.pk for item, _ in asked}).update(lease_until=None)
    lines = [
        batch_api.request_line(row.custom_id, request.body)
        for row, (_, request) in zip(rows, asked, strict=True)
    ]
    return batch, lines


def send(batch: Batch, lines: list[str], client: BatchingClient) -> None:
    """Uploads the file and creates the remote batch, retrying transient failures; a batch the
    endpoint refuses for good answers each of its requests with the reason."""
    attempt = 0
    while True:
        try:
            remote = batch_api.submit(endpoint_of(batch), client.timeout, lines, batch.pk)
        except openai.OpenAIError as exc:
            if attempt >= client.max_retries:
                refuse(batch, f"the Batch API refused the batch: {type(exc).__name__}: {exc}")
                return
            time.sleep(min(MAX_SEND_BACKOFF, client.backoff * 2**attempt))
            attempt += 1
            continue
        mark_submitted(batch, remote)
        return


def mark_submitted(batch: Batch, remote: Any) -> None:
    Batch.objects.filter(pk=batch.pk).update(
        state=Batch.State.SUBMITTED,
        remote_id=remote.id,
        remote_status=remote.status,
        input_file_id=remote.input_file_id or "",
        submitted_at=timezone.now(),
        lease_until=None,
    )


def refuse(batch: Batch, error: str) -> None:
    with transaction.atomic():
        batch.requests.update(answered=True, error=error[:2000])
        Batch.objects.filter(pk=batch.pk).update(
            state=Batch.State.DONE, error=error[:2000], finished_at=timezone.now()
        )


# -- resuming ----------------------------------------------------------------------------------


def retry_errors(run: Run) -> int:
    """Before a resume: the items that ended in an error are pending again, without the answers
    that made them fail (errors and malformed replies), so their replay asks again."""
    failed = RunItem.objects.for_run(run).filter(status=RunItem.Status.ERROR)
    bad = BatchRequest.objects.filter(item__in=failed, answered=True)
    bad.exclude(error="").delete()
    bad.filter(call__error__startswith="malformed").delete()
    retried = failed.update(status=RunItem.Status.PENDING, error="")
    run.recount_pending()
    return retried
