"""The one LLM client wrapper: cache, accounting, retries with backoff, per-endpoint concurrency.

Every stage of the openai backend calls ``LLMClient.complete_json``. It

- serves identical requests (same model, messages and parameters) from LLMCacheEntry, recorded as
  cached calls that cost nothing;
- holds at most ``concurrency`` requests in flight per endpoint (per process), releasing the slot
  while it backs off;
- retries timeouts, connection errors, 429 and 5xx with exponential backoff and jitter (honouring
  Retry-After), and re-asks when the reply is not JSON matching the stage's schema;
- records every HTTP attempt as an LLMCall (tokens from the endpoint's usage, our own estimate
  beside them, cost from the run's price table, latency, error).

Each call is written (with its cache entry) the moment it returns, so a worker killed in the
middle of a trajectory loses no call it paid for: the cost figures count it and a resume is
served from the cache. The cache key is the whole request as sent (model, messages, temperature,
reply budget, response format with its schema) plus the endpoint (name and URL) and the prompt
version, so two servers with the same model name never answer for each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import openai
from django.db import connection, transaction
from openai.types.chat import ChatCompletion

from relabel.endpoints import endpoint_at, key_for
from relabel.llm.pricing import cost_usd, price_table
from relabel.llm.prompts import PROMPT_VERSION, Prompt, with_schema_text
from relabel.llm.schema import schema_errors
from relabel.models import LLMCacheEntry, LLMCall
from relabel.tokens import estimate_tokens

logger = logging.getLogger("agenther.llm")

RETRYABLE_STATUS = {408, 409, 425, 429}
MAX_BACKOFF_SECONDS = 30.0


class LLMError(Exception):
    """A call that failed for good (after its retries)."""


class MalformedOutput(LLMError):
    """The endpoint kept answering with something that is not the stage's JSON."""


@dataclass(frozen=True)
class Endpoint:
    """Where one stage or judge sends its requests (a resolved entry of the run's config)."""

    model: str
    base_url: str
    concurrency: int = 16
    json_mode: str = "json_schema"
    name: str = ""  # the declared endpoint; "" for a URL no operator declared (no key)

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> Endpoint:
        fields = {
            k: entry[k] for k in ("model", "base_url", "concurrency", "json_mode") if k in entry
        }
        name = entry.get("endpoint")
        if name is None:  # a run frozen before endpoints were declared: its URL says which
            found = endpoint_at(entry["base_url"])
            name = found.name if found else ""
        return cls(name=name, **fields)

    @property
    def api_key(self) -> str:
        # Local servers (vLLM, Ollama, the test server) accept any key, but the openai client
        # wants one, and given none it would read OPENAI_API_KEY from the environment itself.
        return key_for(self.name, self.base_url) or "no-key"


@dataclass
class CallLog:
    """The calls made for one trajectory; each is written the moment it is recorded."""

    run_id: int | None
    trajectory_id: int | None
    calls: list[LLMCall] = field(default_factory=list)

    def record(self, call: LLMCall, cache_entry: LLMCacheEntry | None = None) -> None:
        # One transaction: a call that paid for an answer is never written without its cache
        # entry, so whatever stops the worker next, a resume gets that answer for free.
        with transaction.atomic():
            call.save(force_insert=True)
            if cache_entry is not None:
                LLMCacheEntry.objects.bulk_create([cache_entry], ignore_conflicts=True)
        self.calls.append(call)


_registry_lock = threading.Lock()
_clients: dict[tuple[str, str, float], openai.OpenAI] = {}
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_json_object_only: set[str] = set()


def reset_clients() -> None:
    """Forget this process's clients and slots (in a forked child: they are the parent's)."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _clients.clear()
    _slots.clear()


def endpoint_slots(endpoint: Endpoint) -> threading.BoundedSemaphore:
    with _registry_lock:
        key = (endpoint.base_url, endpoint.concurrency)
        if key not in _slots:
            _slots[key] = threading.BoundedSemaphore(endpoint.concurrency)
        return _slots[key]


def openai_client(endpoint: Endpoint, timeout: float) -> openai.OpenAI:
    # One client (one HTTP connection pool) per endpoint and process, shared by all threads.
    key = (endpoint.base_url, endpoint.api_key, timeout)
    with _registry_lock:
        if key not in _clients:
            _clients[key] = openai.OpenAI(
                base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=timeout, max_retries=0
            )
        return _clients[key]


def cache_key(endpoint: Endpoint, body: dict[str, Any], prompt_version: str) -> str:
    """Everything that changes the answer: the request as sent, where it goes, which prompts."""
    blob = json.dumps(
        {
            "endpoint": endpoint.name,
            "base_url": endpoint.base_url.rstrip("/"),
            "prompt_version": prompt_version,
            "request": body,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_response(key: str) -> dict[str, Any] | None:
    """The cached response for ``key``, if any.

    Plain SQL on purpose: this runs before every call, and the ORM's query building costs
    several times what the indexed lookup itself does.
    """
    table = connection.ops.quote_name(LLMCacheEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT response FROM {table} WHERE key = %s", [key])
        row = cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, str | bytes) else value


def parse_reply(content: str | None, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The reply as a dict, or None and what is wrong with it."""
    if not content:
        return None, "the reply was empty"
    text = content.strip()
    if text.startswith("```"):
        # Some servers wrap JSON in a code fence even in JSON mode.
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    errors = schema_errors(value, schema)
    if errors:
        return None, "; ".join(errors[:5])
    return value, ""


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


@dataclass
class Request:
    """One request of a stage, and what its records need."""

    endpoint: Endpoint
    stage: str
    body: dict[str, Any]
    key: str
    estimate: int
    log: CallLog
    prompt: Prompt
    messages: list[dict[str, Any]]


class LLMClient:
    """Makes a run's calls. One instance per run and process; safe to share between threads."""

    def __init__(self, config: dict[str, Any]):
        self.prices = price_table(config)
        self.timeout = float(config["request_timeout"])
        self.max_retries = int(config["max_retries"])
        self.backoff = float(config["retry_backoff"])
        self.malformed_retries = int(config["malformed_retries"])
        self.max_completion_tokens = int(config["max_completion_tokens"])
        self.prompt_version = str(config.get("prompt_version", PROMPT_VERSION))

    def complete_json(
        self,
        endpoint: Endpoint,
        prompt: Prompt,
        *,
        temperature: float,
        log: CallLog,
        stage: str | None = None,
    ) -> dict[str, Any]:
        """The stage's reply as a dict matching ``prompt.schema``; raises LLMError."""
        stage = stage or prompt.stage
        messages = prompt.messages
        problem = ""
        for _ in range(self.malformed_retries + 1):
            request = self._request(endpoint, prompt, messages, temperature, log, stage)
            value, content, problem = self._complete_once(request, prompt)
            if value is not None:
                return value
            # Ask again with the reason: an identical request would often get the same answer.
            messages = [
                *prompt.messages,
                {"role": "assistant", "content": (content or "")[:2000]},
                {
                    "role": "user",
                    "content": f"That reply was not usable: {problem}. Reply again with one "
                    "JSON object only, matching the schema.",
                },
            ]
        raise MalformedOutput(f"{stage}: malformed output from {endpoint.model}: {problem}")

    def _request(
        self,
        endpoint: Endpoint,
        prompt: Prompt,
        messages: list[dict[str, Any]],
        temperature: float,
        log: CallLog,
        stage: str,
    ) -> Request:
        body = self.request_body(endpoint, messages, prompt, temperature, self._json_mode(endpoint))
        estimate = prompt.estimated_tokens
        if messages is not prompt.messages:  # a repair turn was added
            estimate += sum(estimate_tokens(m["content"]) for m in messages[len(prompt.messages) :])
        key = cache_key(endpoint, body, self.prompt_version)
        return Request(endpoint, stage, body, key, estimate, log, prompt, messages)

    def _complete_once(
        self, request: Request, prompt: Prompt
    ) -> tuple[dict[str, Any] | None, str | None, str]:
        hit = cached_response(request.key)
        if hit is not None:
            value, problem = parse_reply(hit.get("content"), prompt.schema)
            if value is not None:
                self._keep(request, self._record(request, cached=True))
                return value, hit.get("content"), ""
        call, content = self._call_with_retries(request)
        value, problem = parse_reply(content, prompt.schema)
        if value is None:
            call.error = f"malformed: {problem}"[:2000]
            self._keep(request, call)
            return None, content, problem
        usage = {"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens}
        entry = LLMCacheEntry(
            key=request.key,
            model=request.endpoint.model,
            response={"content": content, "usage": usage},
        )
        self._keep(request, call, entry)
        return value, content, ""

    def _keep(self, request: Request, call: LLMCall, entry: LLMCacheEntry | None = None) -> None:
        """Records a call answered by the endpoint (with the cache entry of a usable answer) or
        by the cache."""
        request.log.record(call, entry)

    def _json_mode(self, endpoint: Endpoint) -> str:
        if endpoint.base_url in _json_object_only:
            return "json_object"
        return endpoint.json_mode

    def request_body(
        self,
        endpoint: Endpoint,
        messages: list[dict[str, Any]],
        prompt: Prompt,
        temperature: float,
        json_mode: str,
    ) -> dict[str, Any]:
        """The chat-completions body, as sent (and as the Batch API's request lines carry it).
        In JSON-object mode the schema goes into the prompt as text."""
        if json_mode == "json_object":
            messages = with_schema_text(messages, prompt)
        return {
            "model": endpoint.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self.max_completion_tokens,
            "response_format": self._response_format(prompt, json_mode),
        }

    def _response_format(self, prompt: Prompt, json_mode: str) -> dict[str, Any]:
        if json_mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": prompt.schema_name, "schema": prompt.schema, "strict": True},
        }

    def _plain_json(self, request: Request) -> None:
        """The endpoint has no JSON-schema mode: plain JSON mode from now on, for this request
        too (and its cache key, which must say what was asked)."""
        _json_object_only.add(request.endpoint.base_url)
        temperature = request.body["temperature"]
        request.body = self.request_body(
            request.endpoint, request.messages, request.prompt, temperature, "json_object"
        )
        request.key = cache_key(request.endpoint, request.body, self.prompt_version)

    def _call_with_retries(self, request: Request) -> tuple[LLMCall, str | None]:
        """The answered call (not yet recorded: the caller knows whether it is usable) and its
        content; every failed attempt is recorded at once."""
        endpoint = request.endpoint
        client = openai_client(endpoint, self.timeout)
        slots = endpoint_slots(endpoint)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                with slots:
                    started = time.monotonic()  # the endpoint's latency, not our queue's
                    # client.post is the openai client's documented way to send a body as is:
                    # chat.completions.create walks every message and schema through its type
                    # transforms first, which costs more CPU than the whole rest of a call.
                    response = client.post(
                        "/chat/completions", cast_to=ChatCompletion, body=request.body
                    )
            except openai.BadRequestError as exc:
                if request.body["response_format"]["type"] == "json_schema" and (
                    "response_format" in str(exc)
                ):
                    self._plain_json(request)
                    continue
                self._record_failure(request, started, exc)
                raise LLMError(
                    f"{request.stage}: {endpoint.model} refused the request: {exc}"
                ) from exc
            except openai.OpenAIError as exc:
                self._record_failure(request, started, exc)
                if not _is_retryable(exc) or attempt >= self.max_retries:
                    raise LLMError(
                        f"{request.stage}: {endpoint.model} at {endpoint.base_url} failed after "
                        f"{attempt + 1} attempt(s): {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(self._delay(attempt, exc))
                attempt += 1
                continue
            return self._answered(request, started, response), self._content(response)

    @staticmethod
    def _content(response: Any) -> str | None:
        try:
            return response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            return None

    def _delay(self, attempt: int, exc: Exception) -> float:
        delay = self.backoff * (2**attempt) * (0.5 + random.random())
        hinted = _retry_after(exc)
        if hinted is not None:
            delay = max(delay, hinted)
        return min(delay, MAX_BACKOFF_SECONDS)

    def _record(self, request: Request, *, cached: bool = False, **fields: Any) -> LLMCall:
        log = request.log
        return LLMCall(
            run_id=log.run_id,
            trajectory_id=log.trajectory_id,
            stage=request.stage[:30],
            model=request.endpoint.model,
            endpoint=request.endpoint.base_url,
            cache_key=request.key,
            cached=cached,
            estimated_prompt_tokens=request.estimate,
            **fields,
        )

    def _record_failure(self, request: Request, started: float, exc: Exception) -> None:
        latency = int((time.monotonic() - started) * 1000)
        error = f"{type(exc).__name__}: {exc}"[:2000]
        request.log.record(self._record(request, latency_ms=latency, error=error))

    def _answered(self, request: Request, started: float, response: Any) -> LLMCall:
        figures = self.usage_fields(
            request.endpoint,
            getattr(response, "usage", None),
            request.estimate,
            self._content(response),
        )
        latency = int((time.monotonic() - started) * 1000)
        return self._record(request, **figures, latency_ms=latency)

    def usage_fields(
        self,
        endpoint: Endpoint,
        usage: Any,
        estimate: int,
        content: str | None,
        *,
        batch: bool = False,
    ) -> dict[str, Any]:
        """An answered call's LLMCall fields from the endpoint's usage (an object or, in a Batch
        API results file, a dict): tokens, cached tokens and cost."""
        prompt_tokens, completion_tokens, cached_tokens = usage_figures(usage)
        if prompt_tokens is None:
            # No usage figures from this server: bill our estimate rather than nothing.
            prompt_tokens = estimate
            completion_tokens = estimate_tokens(content or "")
        completion_tokens = completion_tokens or 0
        cost = cost_usd(
            self.prices,
            endpoint.model,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            batch=batch,
        )
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached_tokens": cached_tokens,
            "cost_usd": cost,
        }


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def usage_figures(usage: Any) -> tuple[int | None, int | None, int]:
    """(prompt, completion, cached) tokens of a usage object or dict; cached is
    ``prompt_tokens_details.cached_tokens`` when the endpoint reports it, else 0."""
    if usage is None:
        return None, None, 0
    details = _field(usage, "prompt_tokens_details")
    cached = _field(details, "cached_tokens") if details is not None else None
    return _field(usage, "prompt_tokens"), _field(usage, "completion_tokens"), int(cached or 0)
