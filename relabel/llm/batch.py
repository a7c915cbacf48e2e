"""The client of a run through the Batch API: the same stages, asked now and answered later.

A batch run replays each trajectory through the same pipeline (relabel.pipeline.item) as a
synchronous run, with ``BatchingClient`` in place of the plain client. Where the plain client
would send a request, this one looks the answer up among the run's batch results; when the
answer is not there yet it raises ``Deferred`` with the request, and the trajectory waits for
the next batch (relabel.pipeline.batch_run). So the stage logic exists once, and a replay with
all its answers in hand ends exactly where the synchronous run would.

Everything else is the plain client's: the response cache (a hit answers at once), the JSON
checks and the re-asks of a malformed reply (the re-ask is deferred in turn), the request body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from relabel.llm.client import Endpoint, LLMClient, LLMError, Request
from relabel.models import LLMCacheEntry, LLMCall


@dataclass(frozen=True)
class PendingRequest:
    """A request a replay needs answered: what goes into the batch file, and what it is for."""

    stage: str
    schema: str
    key: str
    endpoint: Endpoint
    body: dict[str, Any]
    estimated_tokens: int


class Deferred(BaseException):  # noqa: N818 (not an error: a control-flow signal)
    """The answers these requests will bring are not there yet: the trajectory waits.

    A BaseException, as GeneratorExit is: it is no failure, and no stage's ``except Exception``
    may take it for one.
    """

    def __init__(self, requests: list[PendingRequest]):
        super().__init__(f"{len(requests)} request(s) deferred to a batch")
        self.requests = requests


def ask_each[T](questions: Iterable[Callable[[], T]]) -> list[T]:
    """Every question's answer, in order. The questions are independent (a judge panel), so in a
    batch run all of them are asked before the trajectory waits, not one per batch."""
    answers, waiting = [], []
    for question in questions:
        try:
            answers.append(question())
        except Deferred as deferred:
            waiting += deferred.requests
    if waiting:
        raise Deferred(waiting)
    return answers


@dataclass(frozen=True)
class Answer:
    """A batch's answer to one request (its call was recorded when the results were read)."""

    content: str
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BatchingClient(LLMClient):
    """LLMClient whose transport is the run's batches; ``answers`` is keyed by cache key."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.answers: dict[str, Answer] = {}

    def _call_with_retries(self, request: Request) -> tuple[LLMCall, str | None]:
        answer = self.answers.get(request.key)
        endpoint = request.endpoint
        if answer is None:
            pending = PendingRequest(
                request.stage,
                request.prompt.key,
                request.key,
                endpoint,
                request.body,
                request.estimate,
            )
            raise Deferred([pending])
        if answer.error:
            raise LLMError(
                f"{request.stage}: {endpoint.model} at {endpoint.base_url}: {answer.error}"
            )
        call = LLMCall(
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
        )
        return call, answer.content

    def _keep(self, request: Request, call: LLMCall, entry: LLMCacheEntry | None = None) -> None:
        log = request.log
        if call.cached:
            # Every replay of a trajectory reads its earlier answers again: a cache hit is
            # recorded once, and never for an answer its batch's call already accounts for.
            calls = LLMCall.objects.filter(run_id=log.run_id, trajectory_id=log.trajectory_id)
            if not calls.filter(cache_key=request.key).exists():
                super()._keep(request, call)
            return
        # The call was recorded, once, when the batch's results were read: only the answer is
        # kept now, in the cache, so that a later replay or run is served from it.
        if entry is not None:
            LLMCacheEntry.objects.bulk_create([entry], ignore_conflicts=True)
