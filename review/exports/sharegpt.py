"""LLaMA-Factory's sharegpt form, with the ``dataset_info.json`` that registers it.

LLaMA-Factory skips (with only a warning) any example whose turns break its position rules:
human/observation at even 0-based indexes, gpt/function_call at odd ones, an even number of
turns, so ending on gpt. The reference code's exporter breaks them; we build turns from the one
OpenAI-messages conversion and then merge consecutive turns of the same side, so every row holds.

A ``function_call`` value is JSON ``{"name", "arguments"}`` (a list of them for parallel calls),
which is all LLaMA-Factory's function formatter accepts: the assistant's thought beside a tool
call has no place in that form and is left out (the SFT export keeps it).

Rows end on a gpt answer (the project's rule, DESIGN.md). A run that stopped without one ends on
the agent's last tool call, which no answer may be invented after: such a row is left out of this
format and counted in the manifest (its sft row keeps it). LLaMA-Factory itself would accept a
last function_call turn.
"""

from __future__ import annotations

import json
from typing import Any

from relabel.chat import Chat
from relabel.models import Candidate, Run, RunItem
from review.exports import rows, sft
from review.exports.manifest import LeftOut, per_trajectory_files
from review.exports.options import ExportOptions

FILE = "sharegpt.jsonl"
SUCCESS_FILE = "sharegpt_successes.jsonl"
INFO_FILE = "dataset_info.json"
NO_ANSWER = "the run stopped without a final answer (sharegpt rows must end on gpt)"
DATASET_NAME = "agenther_hindsight"
SUCCESS_DATASET_NAME = "agenther_successes"

USER_SIDE = ("human", "observation")
ASSISTANT_SIDE = ("gpt", "function_call")


def _arguments(raw: Any) -> Any:
    """Arguments as an object when they are JSON (LLaMA-Factory dumps them again itself)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _function_call_value(tool_calls: list[dict[str, Any]]) -> str:
    calls = [
        {"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}
        for c in tool_calls
    ]
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI message as a sharegpt turn, with its tool calls kept aside for merging."""
    role = message["role"]
    if role == "assistant" and message.get("tool_calls"):
        return {"from": "function_call", "calls": list(message["tool_calls"])}
    tag = {"user": "human", "tool": "observation", "assistant": "gpt"}[role]
    return {"from": tag, "value": message.get("content") or ""}


def _merge(group: list[dict[str, Any]]) -> dict[str, str]:
    """Turns of one side that follow each other become one turn."""
    calls = [c for t in group for c in t.get("calls", [])]
    if calls:
        return {"from": "function_call", "value": _function_call_value(calls)}
    text = "\n\n".join(t["value"] for t in group if t["value"]) if len(group) > 1 else None
    return {"from": group[0]["from"], "value": group[0]["value"] if text is None else text}


def conversation(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """(system, conversations) from OpenAI messages, obeying LLaMA-Factory's position rules."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    groups: list[list[dict[str, Any]]] = []
    for message in messages:
        if message["role"] == "system":
            continue
        turn = _turn(message)
        same_side = groups and (turn["from"] in USER_SIDE) == (groups[-1][0]["from"] in USER_SIDE)
        if same_side:
            groups[-1].append(turn)
        else:
            groups.append([turn])
    return system, [_merge(g) for g in groups]


def sharegpt_row(
    chat: Chat, tools: list[Any], weight: float, metadata: dict[str, Any]
) -> dict[str, Any] | LeftOut:
    if not chat.has_assistant_turn:
        return LeftOut(sft.NO_ASSISTANT_TURN)
    if not chat.has_answer_turn:
        return LeftOut(NO_ANSWER)
    system, turns = conversation(chat.messages)
    if turns[0]["from"] not in USER_SIDE:  # relabel.chat always opens on a user turn
        return LeftOut("the conversation does not open on a user turn")
    return {
        "conversations": turns,
        "system": system,
        # LLaMA-Factory reads tools as a JSON string; empty means none.
        "tools": json.dumps(tools, ensure_ascii=False) if tools else "",
        "weight": weight,
        "metadata": {**metadata, "conversation": chat.notes()},
    }


def candidate_row(candidate: Candidate, options: ExportOptions) -> dict[str, Any] | LeftOut:
    return sharegpt_row(
        sft.candidate_chat(candidate, options),
        candidate.trajectory.tools,
        rows.candidate_weight(candidate),
        rows.provenance(candidate),
    )


def success_row(item: RunItem, options: ExportOptions) -> dict[str, Any] | LeftOut:
    return sharegpt_row(
        sft.success_chat(item, options),
        item.trajectory.tools,
        rows.success_weight(item),
        rows.success_provenance(item),
    )


def row_texts(row: dict[str, Any]) -> tuple[list[str], int]:
    texts = [row["system"], row["tools"], *(t["value"] for t in row["conversations"])]
    return texts, len(row["conversations"]) + 1


def dataset_entry(file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "observation_tag": "observation",
            "function_tag": "function_call",
        },
    }


def dataset_info(include_successes: bool) -> dict[str, Any]:
    info = {DATASET_NAME: dataset_entry(FILE)}
    if include_successes:
        info[SUCCESS_DATASET_NAME] = dataset_entry(SUCCESS_FILE)
    return info


def files(run: Run, options: ExportOptions) -> list[rows.FileSpec]:
    """(file name, expected rows, row iterator) for each file of the export."""
    names = (FILE, SUCCESS_FILE)
    return per_trajectory_files(run, options, names, candidate_row, success_row, row_texts)
