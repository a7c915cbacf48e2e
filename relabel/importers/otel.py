"""OpenTelemetry GenAI spans: one trace is one trajectory.

Reads the span JSON of the OTel SDK (``{"spans": [...]}``, a list of spans, or one span per
JSONL line, as any-agent and the console exporter write them), OTLP/JSON as collectors export it
(``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``, one such object per JSONL line
too), and a bare span attribute map. Spans are grouped by trace id and read in time order:

- ``invoke_agent`` (the root): the agent's name, the goal when its input is recorded;
- ``chat`` / ``call_llm`` / ``text_completion`` / ``generate_content``: a model call, whose input
  and output messages become the agent's turns and tool calls (``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` with ``parts``; the older conventions too: the
  ``gen_ai.*.message`` and ``gen_ai.choice`` events, the flat ``gen_ai.prompt.N.*`` /
  ``gen_ai.completion.N.*`` attributes, any-agent's ``gen_ai.output``);
- ``execute_tool``: the observation answering the call (``gen_ai.tool.call.id``, else the oldest
  pending call of ``gen_ai.tool.name``), its arguments and result
  (``gen_ai.tool.call.arguments`` / ``.result``, or ``gen_ai.tool.args`` / ``gen_ai.output``).

The goal is the first user message; a trace with none (a lone ``execute_tool`` span) is skipped
with that reason. Success: ``--map success=ATTRIBUTE`` (an attribute of the root span, or a
dotted path into it); else an error status on the root span or on the last model call or tool
execution is a failure (intermediate tool errors the agent went past are kept in
``metadata.errors``); else the outcome is unknown.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    TrajectoryImportError,
    load_json,
    read_records,
    text_of,
)
from relabel.importers.dialects import decode, openai_messages, openai_tools
from relabel.importers.traces import (
    MAP_KEYS,
    TraceRun,
    Transcript,
    decide,
    explicit_goal,
    explicit_outcome,
    json_safe,
    signal_outcome,
    trajectory,
)

NAME = "otel"
__all__ = ["MAP_KEYS", "NAME", "looks_like", "parse"]
MODEL_CALLS = {"chat", "call_llm", "text_completion", "generate_content", "completion", "llm"}
OLD_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
OTLP_STATUS = {0: "unset", 1: "ok", 2: "error"}
MESSAGE_ATTRIBUTES = ("gen_ai.input.", "gen_ai.prompt", "gen_ai.output.", "gen_ai.completion")


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start: float
    attributes: dict[str, Any]
    status: str = "unset"
    status_message: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw: Any = None

    @property
    def operation(self) -> str:
        op = self.attributes.get("gen_ai.operation.name")
        return str(op or self.name.split(" ", 1)[0]).lower()


def looks_like(record: Any) -> str:
    """Why this record is OTel GenAI data ("" when it is not)."""
    if isinstance(record, dict) and "resourceSpans" in record:
        return "OTLP/JSON: a resourceSpans object"
    if isinstance(record, dict) and isinstance(record.get("spans"), list):
        return "OTel SDK span JSON: a spans list" if _has_gen_ai(record["spans"]) else ""
    if isinstance(record, dict) and _is_sdk_span(record):
        return "OTel SDK span JSON: one span" if _has_gen_ai([record]) else ""
    if isinstance(record, dict) and any(str(k).startswith("gen_ai.") for k in record):
        return "a span's gen_ai.* attribute map"
    return ""


def _is_sdk_span(record: dict[str, Any]) -> bool:
    return "attributes" in record and ("context" in record or "span_id" in record)


def _has_gen_ai(spans: list[Any]) -> bool:
    for span in spans[:200]:
        attributes = span.get("attributes") if isinstance(span, dict) else None
        if isinstance(attributes, dict) and any(str(k).startswith("gen_ai.") for k in attributes):
            return True
        if isinstance(attributes, list) and any(
            str(a.get("key", "")).startswith("gen_ai.") for a in attributes if isinstance(a, dict)
        ):
            return True
    return False


def parse(path: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    records = _records(path)
    spans: list[Span] = []
    finals: dict[str, str] = {}
    for where, record in records:
        for item in record if isinstance(record, list) else [record]:
            found = _from_record(item, path, where, len(spans))
            spans += found
            if isinstance(item, dict) and item.get("final_output") is not None and found:
                finals[found[0].trace_id] = text_of(item["final_output"])  # any-agent's answer
    if not spans:
        raise TrajectoryImportError(path, "no span in this file")
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return [
        _parse_trace(path, n, trace, options, finals.get(trace_id, ""))
        for n, (trace_id, trace) in enumerate(traces.items(), 1)
    ]


# --- reading spans ----------------------------------------------------------------------------


def _records(path: Path) -> list[tuple[str, Any]]:
    """JSONL lines, or the whole file as one record (a list of spans is one trace's spans)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return list(read_records(path))
    return [("record 1", load_json(path))]


def _from_record(record: Any, path: Path, where: str, offset: int) -> list[Span]:
    if not isinstance(record, dict):
        raise TrajectoryImportError(path, "a span must be a JSON object", record=where)
    if "resourceSpans" in record:
        return _otlp(record, path, where)
    if isinstance(record.get("spans"), list):
        return [_sdk_span(s, path, where, i) for i, s in enumerate(record["spans"])]
    if _is_sdk_span(record):
        return [_sdk_span(record, path, where, 0)]
    # A bare attribute map: one span of a trace of its own.
    return [Span(f"{path.stem}:{offset + 1}", "1", "", "", 0.0, dict(record), raw=record)]


def _sdk_span(raw: Any, path: Path, where: str, i: int) -> Span:
    if not isinstance(raw, dict) or not isinstance(raw.get("attributes", {}), dict):
        raise TrajectoryImportError(path, "not an OTel span", record=where, field=f"spans[{i}]")
    context = raw.get("context") or {}
    parent = raw.get("parent") or {}
    status = raw.get("status") or {}
    return Span(
        trace_id=_hex(context.get("trace_id", raw.get("trace_id")), 32) or path.stem,
        span_id=_hex(context.get("span_id", raw.get("span_id")), 16),
        parent_id=_hex(parent.get("span_id") if parent else raw.get("parent_id"), 16),
        name=str(raw.get("name") or ""),
        start=_time(raw.get("start_time")),
        attributes=raw.get("attributes") or {},
        status=str(status.get("status_code") or "unset").lower().removeprefix("statuscode."),
        status_message=str(status.get("description") or ""),
        events=[(str(e.get("name")), e.get("attributes") or {}) for e in raw.get("events") or []],
        raw=raw,
    )


def _otlp(record: dict[str, Any], path: Path, where: str) -> list[Span]:
    spans = []
    for r, resource in enumerate(record.get("resourceSpans") or []):
        for s, scope in enumerate(
            resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans") or []
        ):
            for i, raw in enumerate(scope.get("spans") or []):
                at = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                spans.append(_otlp_span(raw, path, where, at))
    return spans


def _otlp_span(raw: Any, path: Path, where: str, at: str) -> Span:
    if not isinstance(raw, dict) or not raw.get("traceId"):
        raise TrajectoryImportError(path, "an OTLP span needs a traceId", record=where, field=at)
    status = raw.get("status") or {}
    code = status.get("code", 0)
    code = OTLP_STATUS.get(code, str(code).lower().removeprefix("status_code_"))
    return Span(
        trace_id=str(raw["traceId"]),
        span_id=str(raw.get("spanId") or ""),
        parent_id=str(raw.get("parentSpanId") or ""),
        name=str(raw.get("name") or ""),
        start=_time(raw.get("startTimeUnixNano")),
        attributes=_otlp_attributes(raw.get("attributes")),
        status=code,
        status_message=str(status.get("message") or ""),
        events=[
            (str(e.get("name")), _otlp_attributes(e.get("attributes")))
            for e in raw.get("events") or []
        ],
        raw=raw,
    )


def _otlp_attributes(items: Any) -> dict[str, Any]:
    return {
        a["key"]: _otlp_value(a.get("value"))
        for a in items or []
        if isinstance(a, dict) and "key" in a
    }


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values") or []]
    if "kvlistValue" in value:
        return _otlp_attributes(value["kvlistValue"].get("values"))
    return None


def _hex(value: Any, width: int) -> str:
    if isinstance(value, int):
        return f"{value:0{width}x}"
    return str(value or "").removeprefix("0x")


def _time(value: Any) -> float:
    """Nanoseconds (numbers or digit strings) or ISO 8601 text, as a sortable number."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9
        except ValueError:
            return 0.0
    return 0.0


# --- one trace --------------------------------------------------------------------------------


def _parse_trace(
    path: Path, n: int, spans: list[Span], options: ImportOptions, final_answer: str
) -> Parsed | Skipped:
    trace_id = spans[0].trace_id
    where = f"trace {n} (id {trace_id!r})"
    spans = sorted(spans, key=lambda s: s.start)
    root = _root(spans)
    agents = _agent_names(spans)
    transcript = Transcript()
    errors: list[str] = []
    for span in spans:
        speaker = agents.get(span.span_id, "") if len(set(agents.values())) > 1 else ""
        _read_span(span, transcript, speaker)
    steps = [s for s in spans if s.operation == "execute_tool" or _is_model_call(s)]
    last = steps[-1] if steps else None
    for span in (root, last):
        if span is not None and span.status == "error" and _error(span) not in errors:
            errors.append(_error(span))
    outcome = decide(
        explicit_outcome([root.attributes, root.raw], options, path, where),
        signal_outcome(errors, transcript, "status=ERROR"),
    )
    run = TraceRun(
        external_id=trace_id,
        transcript=transcript,
        outcome=outcome,
        raw=json_safe([s.raw for s in spans]),
        goal=explicit_goal(root.attributes, options, path, where) or _root_goal(root),
        final_answer=final_answer,
        metadata=_metadata(spans, root, agents),
    )
    return trajectory(run, path, where, NAME)


def _root(spans: list[Span]) -> Span:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id or s.parent_id not in ids]
    agent = next((s for s in roots if s.operation == "invoke_agent"), None)
    return agent or (roots[0] if roots else spans[0])


def _agent_names(spans: list[Span]) -> dict[str, str]:
    """span id -> the name of the nearest invoke_agent span above it (or itself)."""
    by_id = {s.span_id: s for s in spans}
    names: dict[str, str] = {}
    for span in spans:
        node, seen = span, set()
        while node is not None and node.span_id not in seen:
            seen.add(node.span_id)
            name = node.attributes.get("gen_ai.agent.name")
            if node.operation == "invoke_agent" and name:
                names[span.span_id] = str(name)
                break
            node = by_id.get(node.parent_id)
    return names


def _read_span(span: Span, transcript: Transcript, speaker: str) -> None:
    a = span.attributes
    if span.operation == "execute_tool":
        output = _first(a, "gen_ai.tool.call.result", "gen_ai.output", "output", "output.value")
        transcript.tool_result(
            str(a.get("gen_ai.tool.call.id") or ""),
            str(a.get("gen_ai.tool.name") or span.name.removeprefix("execute_tool ").strip()),
            decode(
                _first(a, "gen_ai.tool.call.arguments", "gen_ai.tool.args", "input", "input.value")
            ),
            output,
            _error(span) if span.status == "error" else "",
        )
    elif _is_model_call(span):
        system = a.get("gen_ai.system_instructions")
        if system and not transcript.system_prompt:  # a list of text parts, or text
            transcript.system_prompt = text_of(decode(system))
        transcript.tools = transcript.tools or openai_tools(a.get("gen_ai.tool.definitions"))
        transcript.exchange(_inputs(span), _outputs(span), speaker)


def _is_model_call(span: Span) -> bool:
    """A chat / completion span, by its operation, or (older instrumentations that name spans
    ``openai.chat``) by the messages it records."""
    if span.operation in MODEL_CALLS or span.operation.rsplit(".", 1)[-1] in MODEL_CALLS:
        return True
    return any(k.startswith(MESSAGE_ATTRIBUTES) for k in span.attributes)


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    return next((attributes[k] for k in keys if attributes.get(k) is not None), None)


def _inputs(span: Span) -> list[dict[str, Any]]:
    a = span.attributes
    messages = _first(a, "gen_ai.input.messages", "gen_ai.prompt")
    if messages is None:  # semconv 1.27 and before: a gen_ai.content.prompt event
        messages = _event_attribute(span, "gen_ai.content.prompt", "gen_ai.prompt")
    if messages is not None:
        return openai_messages(messages, "user")
    events = [
        {**e, "role": OLD_MESSAGE_EVENTS[n]} for n, e in span.events if n in OLD_MESSAGE_EVENTS
    ]
    if events:
        return openai_messages([_event_message(e) for e in events], "user")
    if _indexed(a, "gen_ai.prompt"):
        return openai_messages(_indexed(a, "gen_ai.prompt"), "user")
    body = decode(a.get("input"))
    return openai_messages(body.get("messages") if isinstance(body, dict) else body, "user")


def _outputs(span: Span) -> list[dict[str, Any]]:
    a = span.attributes
    if a.get("gen_ai.output.messages") is not None:
        return openai_messages(a["gen_ai.output.messages"], "assistant")
    if a.get("gen_ai.output") is not None:
        return _any_agent_output(a["gen_ai.output"])
    completion = _event_attribute(span, "gen_ai.content.completion", "gen_ai.completion")
    if completion is not None:
        return openai_messages(completion, "assistant")
    choices = [e for n, e in span.events if n == "gen_ai.choice"]
    if choices:
        return openai_messages(
            [_event_message({**c, "role": "assistant"}) for c in choices[:1]], "assistant"
        )
    if _indexed(a, "gen_ai.completion"):
        return openai_messages(_indexed(a, "gen_ai.completion")[:1], "assistant")
    body = decode(a.get("output"))
    if isinstance(body, dict) and "text" in body and "role" not in body:
        return openai_messages(body["text"], "assistant")
    return openai_messages(body, "assistant")


def _event_attribute(span: Span, event: str, key: str) -> Any:
    return next((e.get(key) for n, e in span.events if n == event and key in e), None)


def _event_message(event: dict[str, Any]) -> dict[str, Any]:
    """An older-convention event (``gen_ai.user.message``, ``gen_ai.choice``) as a message."""
    body = decode(event.get("body", event.get("message", event)))
    if isinstance(body, dict) and isinstance(body.get("message"), dict):
        body = body["message"]
    message = dict(body) if isinstance(body, dict) else {"content": body}
    message.setdefault("role", event["role"])
    if event["role"] == "tool":
        message.setdefault("tool_call_id", message.get("id", ""))
    return message


def _indexed(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The flat ``gen_ai.prompt.0.role`` / ``.content`` / ``.tool_calls.0.name`` attributes
    (OpenLLMetry's older convention) as messages."""
    out = []
    for row in _rows(attributes, prefix):
        message = {"role": row.get("role", "user"), "content": row.get("content", "")}
        calls = _rows(row, "tool_calls")
        if calls:
            message["tool_calls"] = [{"id": c.get("id"), "function": c} for c in calls]
        if row.get("tool_call_id"):
            message["tool_call_id"] = row["tool_call_id"]
        out.append(message)
    return out


def _rows(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.rest`` keys as one dict of ``rest`` keys per N, in order of N."""
    rows: dict[int, dict[str, Any]] = defaultdict(dict)
    for key, value in attributes.items():
        if key.startswith(prefix + "."):
            index, _, rest = key[len(prefix) + 1 :].partition(".")
            if index.isdigit() and rest:
                rows[int(index)][rest] = value
    return [rows[i] for i in sorted(rows)]


def _any_agent_output(output: Any) -> list[dict[str, Any]]:
    """any-agent's ``gen_ai.output``: text, or a JSON list of ``{tool.name, tool.args}``."""
    value = decode(output)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "tool.name" in v for v in value)
    ):
        calls = [
            {"id": "", "function": {"name": v["tool.name"], "arguments": v.get("tool.args")}}
            for v in value
        ]
        return openai_messages([{"role": "assistant", "content": "", "tool_calls": calls}])
    if isinstance(value, dict | list):  # a structured answer: the text of the turn
        return [{"role": "assistant", "content": json.dumps(value, ensure_ascii=False)}]
    return openai_messages(text_of(value), "assistant")


def _root_goal(root: Span) -> str:
    """The agent span's own input, when recorded (the first user message is the fallback)."""
    a = root.attributes
    if root.operation != "invoke_agent":
        return ""
    value = _first(a, "gen_ai.input.messages", "input.value", "gen_ai.prompt")
    users = [m for m in openai_messages(value, "user") if m["role"] == "user"]
    return users[0]["content"] if users else ""


def _error(span: Span) -> str:
    what = span.name or span.operation
    return f"{what}: {span.status_message or 'error status'}"


def _metadata(spans: list[Span], root: Span, agents: dict[str, str]) -> dict[str, Any]:
    usage = {"input_tokens": 0, "output_tokens": 0}
    for span in spans:
        for key in usage:
            value = span.attributes.get(f"gen_ai.usage.{key}")
            usage[key] += int(value) if isinstance(value, int | float) else 0
    errors = [_error(s) for s in spans if s.status == "error"]
    model = _first(root.attributes, "gen_ai.request.model", "gen_ai.response.model")
    model = model or next(
        (
            s.attributes.get("gen_ai.request.model")
            for s in spans
            if s.attributes.get("gen_ai.request.model")
        ),
        None,
    )
    return {
        "trace_id": spans[0].trace_id,
        "agent": root.attributes.get("gen_ai.agent.name"),
        "agents": sorted(set(agents.values())),
        "model": model,
        "provider": _first(root.attributes, "gen_ai.provider.name", "gen_ai.system"),
        "usage": usage,
        "span_count": len(spans),
        "errors": errors,
    }
