"""Langfuse trace exports: ``{"trace": {...}, "observations": [...]}`` (one per file, a JSON
array of them, or JSONL), a trace object holding its ``observations``, or a list of
observations (grouped by ``traceId``). One trace is one trajectory, its id the trace's.

Observations are read in parent/time order (each one's children by ``startTime``):
GENERATION observations are the model calls (their input and output messages, in whatever
shape the integration logged them: OpenAI, Responses, LangChain, OTel parts); TOOL observations,
and any observation whose output is a tool message, are the observations answering the calls.
Agents (AGENT observations, ``gen_ai.agent.name`` / ``agent_name`` attributes) name the speaker
when a trace holds more than one.

Goal: ``--map goal=FIELD``, else ``trace.input`` when it holds a user message or text, else the
first user message of the first generation. Success: ``--map success=FIELD`` (a path into the
record, e.g. ``trace.metadata.passed``), else ``--success-score NAME>=VALUE`` on
``trace.scores``, else an ERROR level on the root observation or on the last generation or tool
(earlier ones are kept in ``metadata.errors``), else unknown. Every score is kept in
``metadata.scores``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    TrajectoryImportError,
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
    score_outcome,
    signal_outcome,
    trajectory,
)

NAME = "langfuse"
__all__ = ["MAP_KEYS", "NAME", "looks_like", "parse"]
STEP_TYPES = ("GENERATION", "TOOL")
OBSERVATIONS = {
    *STEP_TYPES,
    *("SPAN", "EVENT", "AGENT", "CHAIN", "RETRIEVER", "EMBEDDING", "EVALUATOR", "GUARDRAIL"),
}


def looks_like(record: Any) -> str:
    """Why this record is a Langfuse export ("" when it is not)."""
    if isinstance(record, dict) and isinstance(record.get("observations"), list):
        if isinstance(record.get("trace"), dict):
            return "a Langfuse trace export: trace + observations"
        if "projectId" in record or "scores" in record:
            return "a Langfuse trace with its observations"
    if isinstance(record, dict) and "traceId" in record and record.get("type") in OBSERVATIONS:
        return "Langfuse observations (traceId, type, parentObservationId)"
    return ""


def parse(path: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    out: list[Parsed | Skipped] = []
    loose: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for locator, record in read_records(path):
        for n, item in enumerate(record if isinstance(record, list) else [record]):
            where = f"{locator}[{n}]" if isinstance(record, list) else locator
            trace, observations = _split(item, path, where)
            if trace is None:  # a bare observation: its trace is assembled below
                loose[str(item["traceId"])].append(item)
                continue
            out.append(_parse_trace(path, where, item, trace, observations, options))
    for trace_id, observations in loose.items():
        trace = {"id": trace_id}
        out.append(_parse_trace(path, f"trace {trace_id!r}", {}, trace, observations, options))
    return out


def _split(item: Any, path: Path, where: str) -> tuple[dict | None, list[dict[str, Any]]]:
    if not isinstance(item, dict):
        raise TrajectoryImportError(path, "a Langfuse export must be a JSON object", record=where)
    if "traceId" in item and "type" in item and "observations" not in item:
        return None, [item]
    trace = item.get("trace") if isinstance(item.get("trace"), dict) else item
    observations = item.get("observations", trace.get("observations"))
    if not isinstance(observations, list):
        raise TrajectoryImportError(
            path, "must be a list of observations", record=where, field="observations"
        )
    bad = next((i for i, o in enumerate(observations) if not isinstance(o, dict)), None)
    if bad is not None:
        raise TrajectoryImportError(
            path, "an observation must be an object", record=where, field=f"observations[{bad}]"
        )
    return trace, observations


def _parse_trace(
    path: Path,
    where: str,
    record: dict[str, Any],
    trace: dict[str, Any],
    observations: list[dict[str, Any]],
    options: ImportOptions,
) -> Parsed | Skipped:
    where = f"{where} (id {trace.get('id')!r})" if trace.get("id") else where
    ordered = _tree_order(observations)
    speakers = _speakers(ordered)
    transcript = Transcript()
    for observation in ordered:
        _read(observation, transcript, speakers.get(observation.get("id"), ""))
    scores = _scores(trace)
    outcome = decide(
        explicit_outcome([record, trace], options, path, where),
        score_outcome({s["name"]: s["value"] for s in scores}, options, path, where, "scores"),
        signal_outcome(_errors(ordered), transcript, "level=ERROR"),
    )
    output = decode(trace.get("output"))
    run = TraceRun(
        external_id=str(trace.get("id") or f"{path.stem}:{where}"),
        transcript=transcript,
        outcome=outcome,
        raw=record or {"trace": trace, "observations": observations},
        goal=explicit_goal(record or trace, options, path, where) or _goal(trace),
        final_answer=output if isinstance(output, str) else "",
        metadata={
            "trace_id": trace.get("id"),
            "trace_name": trace.get("name"),
            "tags": trace.get("tags") or [],
            "scores": scores,
            "errors": [_describe(o) for o in ordered if o.get("level") == "ERROR"],
            "agents": sorted(set(speakers.values())),
            "session_id": trace.get("sessionId"),
            "user_id": trace.get("userId"),
        },
    )
    return trajectory(run, path, where, NAME)


def _tree_order(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth first from the roots, each observation's children by start time."""
    ids = {o.get("id") for o in observations}
    children: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for o in observations:
        parent = o.get("parentObservationId")
        children[parent if parent in ids else None].append(o)
    out: list[dict[str, Any]] = []
    stack = sorted(children[None], key=_start, reverse=True)
    seen: set[Any] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack += sorted(children.get(node.get("id"), []), key=_start, reverse=True)
    return out


def _start(observation: dict[str, Any]) -> str:
    return str(observation.get("startTime") or "")


def _attributes(observation: dict[str, Any]) -> dict[str, Any]:
    metadata = decode(observation.get("metadata"))
    attributes = metadata.get("attributes") if isinstance(metadata, dict) else None
    return attributes if isinstance(attributes, dict) else {}


def _speakers(ordered: list[dict[str, Any]]) -> dict[Any, str]:
    """Generation id -> its agent's name, when the trace's generations come from 2+ agents."""
    by_id = {o.get("id"): o for o in ordered}
    speakers = {}
    for o in ordered:
        if o.get("type") != "GENERATION":
            continue
        node, hops = o, 0
        while node is not None and hops < 100:
            name = _agent_name(node)
            if name:
                speakers[o.get("id")] = name
                break
            node, hops = by_id.get(node.get("parentObservationId")), hops + 1
    return speakers if len(set(speakers.values())) > 1 else {}


def _agent_name(observation: dict[str, Any]) -> str:
    attributes = _attributes(observation)
    name = attributes.get("gen_ai.agent.name") or attributes.get("agent_name")
    if not name and observation.get("type") == "AGENT":
        name = observation.get("name")
    return str(name or "")


def _read(observation: dict[str, Any], transcript: Transcript, speaker: str) -> None:
    kind = observation.get("type")
    output = decode(observation.get("output"))
    if kind == "GENERATION":
        tools = openai_tools(observation.get("toolDefinitions")) or _tool_messages(observation)
        transcript.tools = transcript.tools or tools
        transcript.exchange(observation.get("input"), output, speaker)
    elif kind == "TOOL" or (isinstance(output, dict) and output.get("tool_call_id")):
        attributes = _attributes(observation)
        call_id = attributes.get("gen_ai.tool.call.id") or (
            output.get("tool_call_id") if isinstance(output, dict) else ""
        )
        name = attributes.get("gen_ai.tool.name") or _tool_name(observation)
        result = (
            output.get("content") if isinstance(output, dict) and "content" in output else output
        )
        error = _describe(observation) if observation.get("level") == "ERROR" else ""
        transcript.tool_result(
            str(call_id or ""), name, decode(observation.get("input")), result, error
        )


def _tool_name(observation: dict[str, Any]) -> str:
    return str(observation.get("name") or "tool").removeprefix("running tool: ").strip()


def _tool_messages(observation: dict[str, Any]) -> list[dict[str, Any]]:
    """The LangChain integration logs the offered tools as "tool" messages of the input."""
    value = decode(observation.get("input"))
    items = value if isinstance(value, list) else []
    return openai_tools(
        [decode(m.get("content")) for m in items if isinstance(m, dict) and m.get("role") == "tool"]
    )


def _errors(ordered: list[dict[str, Any]]) -> list[str]:
    """The root's error, or the last generation's or tool's: the run ended on it."""
    steps = [o for o in ordered if o.get("type") in STEP_TYPES]
    ends = [o for o in (ordered[:1] + steps[-1:]) if o.get("level") == "ERROR"]
    return list(dict.fromkeys(_describe(o) for o in ends))


def _describe(observation: dict[str, Any]) -> str:
    message = text_of(observation.get("statusMessage")) or "level ERROR"
    return f"{observation.get('type', '')} {observation.get('name', '')!r}: {message}".strip()


def _scores(trace: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for score in trace.get("scores") or []:
        if not isinstance(score, dict) or not score.get("name"):
            continue
        value = score.get("value")
        if value is None or score.get("dataType") in ("CATEGORICAL", "BOOLEAN"):
            value = score.get("stringValue", value)
        out.append(
            {
                "name": str(score["name"]),
                "value": value,
                "data_type": score.get("dataType"),
                "source": score.get("source"),
                "comment": score.get("comment"),
            }
        )
    return out


def _goal(trace: dict[str, Any]) -> str:
    value = decode(trace.get("input"))
    if isinstance(value, str):
        return value.strip()
    users = [m for m in openai_messages(value, "user") if m["role"] == "user"]
    return users[0]["content"].strip() if users else ""
