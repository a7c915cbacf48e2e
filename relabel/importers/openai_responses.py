"""OpenAI Responses API conversations, as the OpenAI Agents SDK produces them: ``message``,
``function_call``, ``function_call_output`` and ``reasoning`` items (reasoning summaries are the
agent's thoughts).

Reads recorded API calls (VCR cassettes of ``/v1/responses``, ``{"request", "response"}``
pairs), a list of items (``RunResult.to_input_list()``), a request body (``{"instructions",
"input", "tools"}``, with an optional ``output`` list or ``response``), one per JSONL line or in
a list. Recorded calls are grouped into conversations by ``previous_response_id``, else by their
instructions and first input item; each conversation is one trajectory, ``<file stem>``
(``<file stem>:N`` when a file holds several: an agent used as a tool has a conversation of its
own).

The goal is the first user input (``--map goal=FIELD`` to take it from elsewhere). Success:
``--map success=FIELD``; else a last response whose ``status`` is ``failed``, ``incomplete`` or
``cancelled`` (or that carries an ``error``, or an HTTP status of 400 or more) is a failure;
else unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers import recordings
from relabel.importers.base import ImportOptions, Parsed, Skipped, TrajectoryImportError, text_of
from relabel.importers.dialects import openai_tools
from relabel.importers.recordings import Call
from relabel.importers.traces import (
    MAP_KEYS,
    Outcome,
    Transcript,
)

NAME = "openai-responses"
__all__ = ["MAP_KEYS", "NAME", "looks_like", "parse"]
ITEM_TYPES = {"function_call", "function_call_output", "reasoning", "custom_tool_call"}
FAILED = ("failed", "incomplete", "cancelled")


def looks_like(record: Any) -> str:
    """Why this record is Responses API data ("" when it is not)."""
    if recordings.is_cassette(record):
        if any(u.split("?")[0].endswith("/responses") for u in recordings.cassette_uris(record)):
            return "a VCR cassette of OpenAI Responses API calls"
        return ""
    if isinstance(record, dict) and isinstance(record.get("request"), dict):
        request = record["request"]
        if str(request.get("uri", request.get("url", ""))).split("?")[0].endswith("/responses"):
            return "a recorded OpenAI Responses request/response pair"
    if isinstance(record, dict) and record.get("object") == "response":
        return "an OpenAI Responses API response object"
    if isinstance(record, dict) and (_typed(record.get("input")) or _typed(record.get("output"))):
        return "OpenAI Responses API input/output items"
    if _typed(record):
        return "a list of OpenAI Responses API items (function_call / function_call_output)"
    return ""


def _typed(items: Any) -> bool:
    return isinstance(items, list) and any(
        isinstance(i, dict) and i.get("type") in ITEM_TYPES for i in items[:200]
    )


def parse(path: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    recorded: list[Call] = []
    conversations: list[tuple[str, Any, list[Call]]] = []
    for where, record in recordings.load(path):
        if recordings.is_cassette(record):
            recorded += [c for c in recordings.calls(record, path, where) if "input" in c.request]
        elif isinstance(record, dict) and "request" in record:
            recorded.append(recordings.pair(record, path, where))
        else:
            conversations.append((where, record, [_conversation_call(record, path, where)]))
    for group in _by_conversation(recorded):
        conversations.append((group[0].where, None, group))
    many = len(conversations) > 1
    return [
        _parse_conversation(
            path, f"{path.stem}:{n}" if many else path.stem, where, record, group, options
        )
        for n, (where, record, group) in enumerate(conversations, 1)
    ]


def _conversation_call(record: Any, path: Path, where: str) -> Call:
    if isinstance(record, list):
        return Call(where=where, uri="", request={"input": record}, response=None)
    if not isinstance(record, dict):
        raise TrajectoryImportError(path, "must be a list of items or an object", record=where)
    if record.get("object") == "response":
        return Call(where=where, uri="", request={"input": []}, response=record)
    if "input" not in record and "output" not in record:
        raise TrajectoryImportError(path, "missing the input items", record=where, field="input")
    response = record.get("response")
    if not isinstance(response, dict) and isinstance(record.get("output"), list):
        response = {"output": record["output"], "status": record.get("status")}
    return Call(where=where, uri="", request=record, response=response)


def _by_conversation(calls: list[Call]) -> list[list[Call]]:
    """Calls chained by ``previous_response_id`` go together; the others by how they start."""
    group_of: dict[str, Any] = {}

    def key(call: Call) -> Any:
        previous = call.request.get("previous_response_id")
        found = group_of.get(str(previous)) if previous else None
        found = found or (text_of(call.request.get("instructions")), _start(call.request))
        if call.response and call.response.get("id"):
            group_of[str(call.response["id"])] = found
        return found

    return recordings.group(calls, key)


def _start(request: dict[str, Any]) -> str:
    items = request.get("input")
    return recordings.first_message_key(items if isinstance(items, list) else [items])


def _inputs(request: dict[str, Any]) -> list[Any]:
    items = request.get("input")
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return items if isinstance(items, list) else []


def _parse_conversation(
    path: Path, external_id: str, where: str, record: Any, calls: list[Call], options: ImportOptions
) -> Parsed | Skipped:
    where = f"{where} (id {external_id!r})"
    transcript = Transcript()
    for call in calls:
        request, response = call.request, call.response or {}
        instructions = request.get("instructions") or response.get("instructions")
        transcript.system_prompt = transcript.system_prompt or text_of(instructions)
        transcript.tools = transcript.tools or openai_tools(request.get("tools"))
        transcript.exchange(_inputs(request), response.get("output") or [], "")
    last = calls[-1]
    recorded = recordings.Recorded(path, external_id, where, record, calls, options)
    return recordings.recorded_trajectory(
        recorded,
        transcript,
        _failed_call(last),
        NAME,
        status=(last.response or {}).get("status"),
        response_ids=[c.response.get("id") for c in calls if c.response],
    )


def _failed_call(call: Call) -> Outcome | None:
    response = call.response or {}
    error = response.get("error")
    status = response.get("status")
    if call.status >= 400 or error:
        message = error.get("message") if isinstance(error, dict) else error
        reason = f"the last call failed: {message or f'HTTP {call.status}'}"
        return Outcome(False, None, f"status={status or call.status}", reason, "error")
    if status in FAILED:
        details = response.get("incomplete_details") or {}
        why = details.get("reason") if isinstance(details, dict) else None
        reason = f"the last response is {status}" + (f" ({why})" if why else "")
        return Outcome(False, None, f"status={status}", reason, "error")
    return None
