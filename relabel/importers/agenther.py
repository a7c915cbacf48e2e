"""The reference project's schema (alphadl/AgentHER), as a JSON array, one JSON object, or JSONL:

``{trajectory_id, original_prompt, steps: [{thought, action_name, action_input, observation}],
final_answer, failure_reason, metadata}``. The reference project only holds failed runs, so a
record without ``success`` (or ``reward``) is a failure. Also accepted: ``goal`` for
``original_prompt``, ``system_prompt``, ``tools``, ``success``, ``reward``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    TrajectoryImportError,
    outcome_from,
    read_records,
    record_number,
    with_id,
)
from relabel.models import Step

NAME = "agenther"


def parse(path: Path, options: ImportOptions) -> list[Parsed]:
    return [parse_record(path, locator, record) for locator, record in read_records(path)]


def parse_record(path: Path, locator: str, record: Any) -> Parsed:
    if not isinstance(record, dict):
        raise TrajectoryImportError(path, "a trajectory must be a JSON object", record=locator)
    external_id = record.get("trajectory_id")
    where = with_id(locator, external_id)

    def fail(field: str, message: str) -> TrajectoryImportError:
        return TrajectoryImportError(path, message, record=where, field=field)

    goal = record.get("original_prompt", record.get("goal"))
    if not isinstance(goal, str) or not goal.strip():
        raise fail("original_prompt", "missing goal: a non-empty string is required")
    steps = record.get("steps")
    if not isinstance(steps, list):
        raise fail("steps", f"must be a list of steps, not {type(steps).__name__}")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fail("metadata", "must be an object")
    success, reward = _outcome(record, fail)
    return Parsed(
        external_id=str(external_id or f"{path.stem}:{record_number(locator)}"),
        goal=goal,
        steps=[_step(i, s, fail) for i, s in enumerate(steps)],
        success=success,
        reward=reward,
        raw_label=_label(record),
        final_answer=_text(record, "final_answer", fail),
        failure_reason=_text(record, "failure_reason", fail),
        system_prompt=_text(record, "system_prompt", fail),
        tools=record.get("tools") or [],
        metadata={"benchmark": "agenther", **metadata},
        raw=record,
    )


def _outcome(record: dict[str, Any], fail: Any) -> tuple[bool, float | None]:
    for key in ("success", "reward"):
        if record.get(key) is not None:
            try:
                success, reward = outcome_from(record[key])
            except ValueError as err:
                raise fail(key, str(err)) from None
            return success, reward
    return False, None


def _label(record: dict[str, Any]) -> str:
    for key in ("success", "reward"):
        if record.get(key) is not None:
            return f"{key}={record[key]}"
    return "failure_reason" if record.get("failure_reason") else ""


def _text(record: dict[str, Any], key: str, fail: Any) -> str:
    value = record.get(key) or ""
    if not isinstance(value, str):
        raise fail(key, "must be a string")
    return value


def _step(index: int, step: Any, fail: Any) -> Step:
    where = f"steps[{index}]"
    if not isinstance(step, dict):
        raise fail(where, "a step must be an object")
    action_input = step.get("action_input") or {}
    if isinstance(action_input, str):
        try:
            action_input = json.loads(action_input)
        except json.JSONDecodeError:
            action_input = {"input": action_input}
    if not isinstance(action_input, dict):
        raise fail(f"{where}.action_input", "must be an object")
    fields = {}
    for key in ("thought", "action_name", "observation"):
        value = step.get(key) or ""
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False) if key == "observation" else None
        if value is None:
            raise fail(f"{where}.{key}", "must be a string")
        fields[key] = value
    return Step.build(
        index=index,
        thought=fields["thought"],
        action=fields["action_name"][:300],
        action_input=action_input,
        observation=fields["observation"],
    )
