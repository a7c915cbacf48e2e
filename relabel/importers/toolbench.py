"""ToolBench and StableToolBench answers, in their three shapes:

- DFS answer files: ``{win, tree, answer_generation: {valid_data, query, final_answer (a JSON
  string: return_type give_answer / give_up_and_restart), function, train_messages}}``, where
  ``train_messages`` lists the growing conversation (old OpenAI ``function_call`` form) and its
  last entry is the whole run.
- CoT files (StableToolBench): the same ``answer_generation`` plus ``trys[].chain``; ``win`` may be
  the string "False".
- Converted eval files (toolbench/tooleval): ``{query_id: {query, available_tools, answer:
  {method, total_steps, final_answer, answer_details}}}``, many runs per file.

Success is ``win`` where the file has it. The eval files carry no verdict (ToolEval judges them
later), so there success means the run gave an answer (``give_answer`` with text); an empty
answer or a give-up is a failure. ``valid_data: false`` (no executable path was recorded) is
imported as a failure, with whatever steps the chain holds.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    TrajectoryImportError,
    conversation_from_messages,
    load_json,
    outcome_from,
    parse_arguments,
    text_of,
)
from relabel.models import Step

NAME = "toolbench"
FINISH = "Finish"


def is_answer_file(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("answer_generation"), dict)


def is_eval_file(data: Any) -> bool:
    if not isinstance(data, dict) or not data:
        return False
    first = next(iter(data.values()))
    return isinstance(first, dict) and "query" in first and isinstance(first.get("answer"), dict)


def parse(path: Path, options: ImportOptions) -> list[Parsed]:
    data = load_json(path)
    if is_answer_file(data):
        return [parse_answer_file(path, data)]
    if is_eval_file(data):
        return [parse_eval_run(path, str(qid), run) for qid, run in data.items()]
    raise TrajectoryImportError(
        path,
        "not a ToolBench file: expected answer_generation (DFS/CoT answer) or "
        "{query_id: {query, answer}} (converted eval file)",
    )


GROUP_FOLDER = re.compile(r"^G\d+(_|$)")


def answer_id(path: Path) -> str:
    """The file stem, under its group folder when it has one: ToolBench numbers queries per group,
    so G1_answer/10_... and G2_answer/10_... are different runs. Other folder names (an upload's
    random folder) are left out so that the same file always gets the same id."""
    group = path.parent.name
    return f"{group}/{path.stem}" if GROUP_FOLDER.match(group) else path.stem


def _answer_steps(
    path: Path, record: str, data: dict[str, Any], gen: dict[str, Any]
) -> tuple[str, list, dict[str, Any]]:
    """(system prompt, steps, finish) from the last train conversation, or the CoT chain."""
    train = gen.get("train_messages") or []
    if not isinstance(train, list):
        raise TrajectoryImportError(
            path, "must be a list", record=record, field="answer_generation.train_messages"
        )
    finish = _finish(gen.get("final_answer"))
    if not train:
        chain = (data.get("trys") or [{}])[-1].get("chain") or gen.get("chain") or []
        return "", steps_from_chain(chain), finish or {}
    conversation = conversation_from_messages(
        train[-1],
        path=path,
        record=record,
        field_name=f"answer_generation.train_messages[{len(train) - 1}]",
        finish_tool=FINISH,
    )
    return conversation.system_prompt, conversation.steps, finish or conversation.finish or {}


def parse_answer_file(path: Path, data: dict[str, Any]) -> Parsed:
    gen = data["answer_generation"]
    record = answer_id(path)
    query = gen.get("query")
    if not isinstance(query, str) or not query.strip():
        raise TrajectoryImportError(
            path, "missing goal", record=record, field="answer_generation.query"
        )
    system, steps, finish = _answer_steps(path, record, data, gen)
    win = data.get("win")
    try:
        success, _ = outcome_from(win if win is not None else False)
    except ValueError as err:
        raise TrajectoryImportError(path, str(err), record=record, field="win") from None
    valid = gen.get("valid_data", True)
    return_type = finish.get("return_type", "")
    return Parsed(
        external_id=record,
        goal=query.strip(),
        steps=steps,
        success=success and valid is not False,
        raw_label=f"win={win}" + (f"; {return_type}" if return_type else ""),
        final_answer=text_of(finish.get("final_answer", "")),
        failure_reason=_failure_reason(success, valid, return_type),
        system_prompt=system,
        tools=[_tool(f) for f in gen.get("function") or [] if isinstance(f, dict)],
        metadata={
            "benchmark": "toolbench",
            "query_id": path.stem.split("_", 1)[0],
            "method": "CoT" if "trys" in data else "DFS",
            "valid_data": valid,
            "finish_type": gen.get("finish_type") or return_type,
            "query_count": gen.get("query_count"),
        },
        raw=data,
    )


def parse_eval_run(path: Path, query_id: str, run: Any) -> Parsed:
    record = f"query {query_id}"
    if not isinstance(run, dict) or not isinstance(run.get("answer"), dict):
        raise TrajectoryImportError(path, "must be an object with an answer", record=record)
    query = run.get("query")
    if not isinstance(query, str) or not query.strip():
        raise TrajectoryImportError(path, "missing goal", record=record, field="query")
    answer = run["answer"]
    finish = _finish(answer.get("final_answer")) or {}
    details = answer.get("answer_details") or []
    calls = [_eval_call(m) for m in _walk_details(details)]
    steps = [
        Step.build(
            index=i, action=c["name"], action_input=c["arguments"], observation=c["response"]
        )
        for i, c in enumerate(c for c in calls if c["name"] != FINISH)
    ]
    if not finish:
        finish = next(({"return_type": "give_answer"} for c in calls if c["name"] == FINISH), {})
    text = text_of(finish.get("final_answer", "")).strip()
    return_type = finish.get("return_type") or "empty"
    success = return_type == "give_answer" and bool(text)
    return Parsed(
        external_id=query_id,
        goal=query.strip(),
        steps=steps,
        success=success,
        raw_label=return_type if return_type != "give_answer" or text else "give_answer (empty)",
        final_answer=text,
        failure_reason="" if success else f"no answer ({return_type})",
        tools=[_tool(f) for f in run.get("available_tools") or [] if isinstance(f, dict)],
        metadata={
            "benchmark": "toolbench",
            "query_id": query_id,
            "method": answer.get("method"),
            "total_steps": answer.get("total_steps"),
            "success_means": "the run gave an answer (no ToolEval verdict in this file)",
        },
        raw=run,
    )


def _finish(final_answer: Any) -> dict[str, Any] | None:
    """The Finish call's arguments from ``final_answer`` (a JSON string, sometimes malformed)."""
    if isinstance(final_answer, dict):
        return final_answer
    if not isinstance(final_answer, str) or not final_answer.strip():
        return None
    try:
        value = json.loads(final_answer)
        return value if isinstance(value, dict) else {"final_answer": text_of(value)}
    except json.JSONDecodeError:
        kind = re.search(r'"return_type"\s*:\s*"(\w+)"', final_answer)
        text = re.search(r'"final_answer"\s*:\s*"(.*)"\s*}?\s*$', final_answer, re.S)
        return {
            "return_type": kind.group(1) if kind else "",
            "final_answer": text.group(1) if text else final_answer,
        }


def _failure_reason(success: bool, valid: Any, return_type: str) -> str:
    if valid is False:
        return "ToolBench marked this answer invalid (valid_data: false): no executable path"
    if success:
        return ""
    if return_type == "give_up_and_restart":
        return "gave up (give_up_and_restart)"
    return "not solved (win is false)"


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": function}


def steps_from_chain(chain: list[Any]) -> list[Step]:
    """Steps from a CoT/DFS chain of Thought / Action / Action Input nodes."""
    steps: list[Step] = []
    thought, action = "", ""
    for node in chain:
        if not isinstance(node, dict):
            continue
        kind, text = node.get("node_type"), text_of(node.get("description"))
        if kind == "Thought":
            thought = text
        elif kind == "Action":
            action = text
        elif kind == "Action Input" and action:
            if action != FINISH:
                steps.append(
                    Step.build(
                        index=len(steps),
                        thought=thought,
                        action=action,
                        action_input=parse_arguments(text),
                        observation=text_of(node.get("observation")),
                    )
                )
            thought, action = "", ""
    return steps


def _walk_details(nodes: list[Any]) -> list[dict[str, Any]]:
    """The tool messages along the first path of answer_details (a chain of {role, next})."""
    out = []
    while nodes:
        node = nodes[0] if isinstance(nodes[0], dict) else {}
        if node.get("role") == "tool":
            out.append(node)
        nodes = node.get("next") or []
    return out


def _eval_call(node: dict[str, Any]) -> dict[str, Any]:
    """A tool message is a Python dict repr, often cut short by the converter: read what's there."""
    message = str(node.get("message") or "")
    try:
        value = ast.literal_eval(message)
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, dict):
        return {
            "name": str(value.get("name", "")),
            "arguments": parse_arguments(value.get("arguments")),
            "response": text_of(value.get("response")),
        }
    name = re.search(r"'name':\s*'([^']*)'", message)
    args = re.search(r"'arguments':\s*'(.*?)'(?=,\s*'r|\s*}?\s*$)", message, re.S)
    return {
        "name": name.group(1) if name else "",
        "arguments": parse_arguments(_unescape(args.group(1))) if args else {},
        "response": message,  # the response was cut off: keep the message as the converter left it
    }


def _unescape(text: str) -> str:
    try:
        return ast.literal_eval(f"'{text}'")
    except (ValueError, SyntaxError):
        return text
