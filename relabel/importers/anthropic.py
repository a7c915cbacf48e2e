"""Anthropic Messages conversations: ``tool_use`` / ``tool_result`` content blocks, thinking
blocks as the agent's thoughts.

Reads recorded API calls (VCR cassettes in YAML or JSON, ``{"request", "response"}`` pairs,
one per JSONL line or in a list), a request body (``{"system", "messages", "tools"}``, with an
optional ``response``), or a bare list of messages. Recorded calls are grouped into
conversations by their system prompt and first message (each call resends the history); each
conversation is one trajectory, ``<file stem>`` (``<file stem>:N`` when a file holds several).

The goal is the first user message (``--map goal=FIELD`` to take it from elsewhere). Success:
``--map success=FIELD``; else a failed last call (HTTP status 400 or more, an ``error``
response) or a last response that stopped on ``max_tokens`` or ``refusal`` is a failure; else
unknown. A ``tool_result`` with ``is_error`` is an observation (marked ``[error]``), not the
run's failure: agents recover from those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers import recordings
from relabel.importers.base import ImportOptions, Parsed, Skipped, TrajectoryImportError, text_of
from relabel.importers.dialects import ANTHROPIC_BLOCKS, openai_tools
from relabel.importers.recordings import Call
from relabel.importers.traces import (
    MAP_KEYS,
    Outcome,
    Transcript,
)

NAME = "anthropic"
__all__ = ["MAP_KEYS", "NAME", "looks_like", "parse"]
DISTINCT_BLOCKS = ANTHROPIC_BLOCKS - {"text"}  # text blocks look the same in OpenAI messages
FAILED_STOPS = ("max_tokens", "refusal")


def looks_like(record: Any) -> str:
    """Why this record is Anthropic Messages data ("" when it is not)."""
    if recordings.is_cassette(record):
        uris = recordings.cassette_uris(record)
        if any("anthropic.com" in u or u.split("?")[0].endswith("/v1/messages") for u in uris):
            return "a VCR cassette of Anthropic Messages API calls"
        return ""
    if isinstance(record, dict) and isinstance(record.get("request"), dict):
        request = record["request"]
        body = request.get("body", request.get("parsed_body", request))
        if "anthropic.com" in str(request.get("uri", "")) or _blocks_in(body):
            return "a recorded Anthropic Messages request/response pair"
    if _blocks_in(record):
        return "an Anthropic Messages conversation (tool_use / tool_result / thinking blocks)"
    return ""


def _blocks_in(value: Any) -> bool:
    messages = value.get("messages") if isinstance(value, dict) else value
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(b, dict) and b.get("type") in DISTINCT_BLOCKS
        for m in messages[:50]
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for b in m["content"]
    )


def parse(path: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    recorded: list[Call] = []
    conversations: list[tuple[str, Any, list[Call]]] = []
    for where, record in recordings.load(path):
        if recordings.is_cassette(record):
            recorded += [c for c in recordings.calls(record, path, where) if _is_messages_call(c)]
        elif isinstance(record, dict) and "request" in record:
            recorded.append(recordings.pair(record, path, where))
        elif (
            isinstance(record, list)
            and record
            and all(isinstance(r, dict) and "request" in r for r in record)
        ):
            recorded += [recordings.pair(r, path, f"{where}[{i}]") for i, r in enumerate(record)]
        else:
            conversations.append((where, record, [_conversation_call(record, path, where)]))
    for group in recordings.group(recorded, _conversation_key):
        conversations.append((group[0].where, None, group))
    many = len(conversations) > 1
    return [
        _parse_conversation(
            path, f"{path.stem}:{n}" if many else path.stem, where, record, group, options
        )
        for n, (where, record, group) in enumerate(conversations, 1)
    ]


def _is_messages_call(call: Call) -> bool:
    """Messages calls only (not count_tokens, not a models listing)."""
    return isinstance(call.request.get("messages"), list) and "count_tokens" not in call.uri


def _conversation_call(record: Any, path: Path, where: str) -> Call:
    """A request body (with an optional ``response``) or a list of messages, as one call."""
    if isinstance(record, list):
        record = {"messages": record}
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrajectoryImportError(
            path, "must be a list of messages", record=where, field="messages"
        )
    response = record.get("response")
    return Call(
        where=where,
        uri="",
        request=record,
        response=response if isinstance(response, dict) else None,
    )


def _conversation_key(call: Call) -> tuple[str, str]:
    return text_of(call.request.get("system")), recordings.first_message_key(
        call.request["messages"]
    )


def _parse_conversation(
    path: Path, external_id: str, where: str, record: Any, calls: list[Call], options: ImportOptions
) -> Parsed | Skipped:
    where = f"{where} (id {external_id!r})"
    transcript = Transcript()
    for call in calls:
        request = call.request
        transcript.system_prompt = transcript.system_prompt or text_of(request.get("system"))
        transcript.tools = transcript.tools or openai_tools(request.get("tools"))
        response = call.response if call.response and call.response.get("type") != "error" else None
        transcript.exchange(request["messages"], [response] if response else [], "")
    last = calls[-1]
    recorded = recordings.Recorded(path, external_id, where, record, calls, options)
    return recordings.recorded_trajectory(
        recorded,
        transcript,
        _failed_call(last),
        NAME,
        stop_reason=(last.response or {}).get("stop_reason"),
        usage=_usage(calls),
    )


def _failed_call(call: Call) -> Outcome | None:
    response = call.response or {}
    if call.status >= 400 or response.get("type") == "error":
        error = response.get("error") if isinstance(response.get("error"), dict) else {}
        message = error.get("message") or f"HTTP {call.status}"
        return Outcome(
            False, None, f"status={call.status}", f"the last call failed: {message}", "error"
        )
    stop = response.get("stop_reason")
    if stop in FAILED_STOPS:
        return Outcome(
            False, None, f"stop_reason={stop}", f"the last response stopped on {stop}", "error"
        )
    return None


def _usage(calls: list[Call]) -> dict[str, int]:
    usage = {"input_tokens": 0, "output_tokens": 0}
    for call in calls:
        for key in usage:
            value = ((call.response or {}).get("usage") or {}).get(key)
            usage[key] += value if isinstance(value, int) else 0
    return usage
