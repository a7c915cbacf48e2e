"""Any log of chat messages: JSONL (or a JSON array, or one JSON object per file, as in Who&When)
of OpenAI messages or ShareGPT conversations, with a field mapping for other logs.

``--map KEY=FIELD`` (FIELD may be a dotted path) says where things are; without it:

- ``id``: "<file stem>:<line or record number>"
- ``goal``: the first user message
- ``messages``: ``messages`` or ``conversations`` (ShareGPT ``{from, value}`` turns are read too)
- ``success``: ``success`` if present; a log with no success signal imports with its outcome
  unknown (``success`` empty, ``metadata.label = "unknown"``): the detection stage decides
- ``final_answer``: the last assistant message, when the conversation ends on one
- ``system_prompt``: the first system message, or ``system`` / ``system_prompt`` (an object of
  per-agent prompts, as in Who&When, is joined); ``tools``: ``tools`` (a list or a JSON string)

Roles: the usual aliases (human -> user; ai, gpt, bot, model -> assistant; function,
observation, tool_result -> tool); any other role (Magentic-One's "Orchestrator (thought)",
"WebSurfer") is an agent's turn that keeps the agent's name (``step.metadata.speaker``).
``--map role.VALUE=user|assistant|tool|system`` overrides one role; ``--map name=FIELD`` names
the field holding the agent's name beside a plain role (AG2 logs keep it in ``name``, the
default).

Multi-agent logs (Who&When) have every agent speak as "user" to the others: when the system
prompt is an object of per-agent prompts, a message from one of those agents is an agent turn
(its text is the step's thought, the speaker in step metadata) and the rest (the code terminal's
output) is what came back to it. ``step.metadata.message_index`` keeps the source position, so
Who&When's ``mistake_step`` still points at the right turn.

Scalar top-level fields (mistake_agent, mistake_step, ground_truth, ...) go into metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Roles,
    TrajectoryImportError,
    conversation_from_messages,
    outcome_from,
    read_records,
    record_number,
    text_of,
    with_id,
)
from relabel.importers.traces import mapped_value as field_at

NAME = "messages"
MAP_KEYS = (
    "id",
    "goal",
    "messages",
    "success",
    "final_answer",
    "system_prompt",
    "tools",
    "name",
    "role",
)
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}
METADATA_MAX_CHARS = 2000


def parse(path: Path, options: ImportOptions) -> list[Parsed]:
    mapping = options.mapping
    return [parse_record(path, loc, record, mapping) for loc, record in read_records(path)]


def roles_of(mapping: dict[str, str]) -> Roles:
    """The role reading a mapping asks for: ``role.VALUE=ROLE`` overrides, ``name=FIELD``."""
    overrides = {k[len("role.") :]: v for k, v in mapping.items() if k.startswith("role.")}
    return Roles(overrides=overrides, name_field=mapping.get("name", "name"))


def mapped_field(
    record: dict[str, Any], mapping: dict[str, str], key: str, path: Path, locator: str
) -> tuple[bool, Any]:
    """(found, value) of the field ``--map key=FIELD`` names; (False, None) when not mapped."""
    if key not in mapping:
        return False, None
    found, value = field_at(record, mapping[key])
    if not found:
        raise TrajectoryImportError(
            path, f"missing (mapped by --map {key}=...)", record=locator, field=mapping[key]
        )
    return True, value


def parse_record(path: Path, locator: str, record: Any, mapping: dict[str, str]) -> Parsed:
    if not isinstance(record, dict):
        raise TrajectoryImportError(path, "a record must be a JSON object", record=locator)

    def mapped(key: str) -> tuple[bool, Any]:
        return mapped_field(record, mapping, key, path, locator)

    has_id, external_id = mapped("id")
    where = with_id(locator, external_id if has_id else None)
    field_name, messages = _messages(record, mapping, path, where)
    conversation = conversation_from_messages(
        messages, path=path, record=where, field_name=field_name, roles=roles_of(mapping)
    )
    has_goal, goal = mapped("goal")
    if not has_goal:
        goal = conversation.opening
    if not isinstance(goal, str) or not goal.strip():
        raise TrajectoryImportError(
            path,
            "missing goal: no first user message (use --map goal=FIELD)",
            record=where,
            field=mapping.get("goal", field_name),
        )
    success, reward, raw_label = _outcome(record, mapping, path, where)
    has_answer, answer = mapped("final_answer")
    metadata = _metadata(record, mapping, field_name, raw_label)
    if has_goal and conversation.opening:
        metadata["opening_message"] = conversation.opening
    return Parsed(
        external_id=str(external_id) if has_id else f"{path.stem}:{record_number(locator)}",
        goal=goal.strip(),
        steps=conversation.steps,
        success=success,
        reward=reward,
        raw_label=raw_label,
        final_answer=text_of(answer) if has_answer else conversation.final_answer,
        failure_reason=str(record.get("failure_reason") or ""),
        system_prompt=_system_prompt(record, mapping, conversation.system_prompt),
        tools=_tools(record, mapping),
        metadata=metadata,
        raw=record,
    )


def _messages(
    record: dict[str, Any], mapping: dict[str, str], path: Path, where: str
) -> tuple[str, list[Any]]:
    if "messages" in mapping:
        name = mapping["messages"]
        found, value = field_at(record, name)
        if not found:
            raise TrajectoryImportError(
                path, "missing (mapped by --map messages=...)", record=where, field=name
            )
    else:
        name = next((k for k in ("messages", "conversations") if k in record), "messages")
        value = record.get(name)
    if not isinstance(value, list):
        raise TrajectoryImportError(
            path,
            f"must be a list of messages, not {type(value).__name__}",
            record=where,
            field=name,
        )
    agents = _agents(record, mapping)
    turns = [_from_sharegpt(m) for m in value]
    return name, _as_agent_turns(turns, agents, mapping.get("name", "name"))


def _agents(record: dict[str, Any], mapping: dict[str, str]) -> set[str]:
    """The agents of a multi-agent run: the names that have a system prompt (Who&When)."""
    prompts = field_at(record, mapping.get("system_prompt", "system_prompt"))[1]
    return set(prompts) if isinstance(prompts, dict) else set()


def _as_agent_turns(messages: list[Any], agents: set[str], name_field: str) -> list[Any]:
    """In a multi-agent log every agent speaks as "user" to the others: a message from any of
    the agents is the agent's turn; the rest (a code terminal, ...) is what came back."""
    if not agents:
        return messages
    return [
        {**m, "role": "assistant"}
        if isinstance(m, dict) and m.get(name_field) in agents and m.get("role") == "user"
        else m
        for m in messages
    ]


def _from_sharegpt(turn: Any) -> Any:
    """A ShareGPT {from, value} turn as an OpenAI message; anything else is left as it is."""
    if not isinstance(turn, dict) or "from" not in turn or "role" in turn:
        return turn
    kind = str(turn["from"]).lower()
    if kind == "function_call":
        call = turn.get("value")
        try:
            call = json.loads(call) if isinstance(call, str) else call
        except json.JSONDecodeError:
            call = {"name": "unknown", "arguments": call}
        call = call if isinstance(call, dict) else {"name": "unknown", "arguments": call}
        arguments = call.get("arguments", {})
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {
                        "name": str(call.get("name", "unknown")),
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments, ensure_ascii=False),
                    },
                }
            ],
        }
    # An unknown speaker keeps its own spelling: it names an agent (see base.Roles).
    return {"role": SHAREGPT_ROLES.get(kind, str(turn["from"])), "content": turn.get("value")}


def _outcome(
    record: dict[str, Any], mapping: dict[str, str], path: Path, where: str
) -> tuple[bool | None, float | None, str]:
    if "success" in mapping:
        name = mapping["success"]
        found, value = field_at(record, name)
        if not found:
            raise TrajectoryImportError(
                path, "missing (mapped by --map success=...)", record=where, field=name
            )
    elif "success" in record:
        name, value = "success", record["success"]
    else:
        return None, None, ""
    try:
        success, reward = outcome_from(value)
    except ValueError as err:
        raise TrajectoryImportError(path, str(err), record=where, field=name) from None
    return success, reward, f"{name.rsplit('.', 1)[-1]}={value}"


def _system_prompt(record: dict[str, Any], mapping: dict[str, str], from_messages: str) -> str:
    if "system_prompt" in mapping:
        value = field_at(record, mapping["system_prompt"])[1]
    else:
        value = from_messages or record.get("system") or record.get("system_prompt")
    if isinstance(value, dict):  # one prompt per agent of a multi-agent run
        return "\n\n".join(f"## {name}\n{text_of(text)}" for name, text in value.items())
    return text_of(value)


def _tools(record: dict[str, Any], mapping: dict[str, str]) -> list[dict[str, Any]]:
    value = field_at(record, mapping.get("tools", "tools"))[1]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    if not isinstance(value, list):
        return []
    return [
        t if "function" in t or "type" in t else {"type": "function", "function": t}
        for t in value
        if isinstance(t, dict)
    ]


def _metadata(
    record: dict[str, Any], mapping: dict[str, str], messages_field: str, raw_label: str
) -> dict:
    fields = [f for k, f in mapping.items() if not k.startswith("role.") and k != "success"]
    used = {messages_field, *fields}
    meta: dict[str, Any] = {"benchmark": "messages"}
    for key, value in record.items():
        if key in used or key in ("system_prompt", "system", "tools"):
            continue
        small = isinstance(value, str) and len(value) <= METADATA_MAX_CHARS
        if small or value is None or isinstance(value, bool | int | float):
            meta[key] = value
    if not raw_label:  # no success signal: the outcome is unknown
        meta["label"] = "unknown"
    return meta
