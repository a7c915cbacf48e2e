"""tau-bench historical trajectories: a JSON list of ``{task_id, trial, reward, traj, info}``.

``traj`` is the OpenAI conversation (system policy, then the simulated user and the agent, with
``tool_calls``); the goal is ``info.task.instruction``, the instruction the simulated user was
given. Reward 1 is a success. The user's opening message is kept in metadata, with the task's
ground-truth actions and the reward breakdown (``reward_info`` may be null).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    TrajectoryImportError,
    conversation_from_messages,
    outcome_from,
    read_records,
    with_id,
)

NAME = "tau-bench"


def looks_like(record: Any) -> bool:
    return isinstance(record, dict) and "traj" in record and "task_id" in record


def parse(path: Path, options: ImportOptions) -> list[Parsed]:
    return [parse_record(path, locator, record) for locator, record in read_records(path)]


def parse_record(path: Path, locator: str, record: Any) -> Parsed:
    if not looks_like(record):
        raise TrajectoryImportError(path, "a tau-bench run needs task_id and traj", record=locator)
    external_id = f"{record['task_id']}-{record.get('trial', 0)}"
    where = with_id(locator, external_id)
    info = record.get("info") or {}
    task = info.get("task") if isinstance(info, dict) else None
    goal = task.get("instruction") if isinstance(task, dict) else None
    if not isinstance(goal, str) or not goal.strip():
        raise TrajectoryImportError(
            path, "missing goal", record=where, field="info.task.instruction"
        )
    try:
        success, reward = outcome_from(record.get("reward"))
    except ValueError as err:
        raise TrajectoryImportError(path, str(err), record=where, field="reward") from None
    conversation = conversation_from_messages(
        record["traj"], path=path, record=where, field_name="traj"
    )
    reward_info = info.get("reward_info")
    return Parsed(
        external_id=external_id,
        goal=goal,
        steps=conversation.steps,
        success=success,
        reward=reward,
        raw_label=f"reward={record.get('reward')}",
        final_answer=conversation.final_answer,
        failure_reason="" if success else _failure_reason(reward_info),
        system_prompt=conversation.system_prompt,
        tools=_tools(info),
        metadata={
            "benchmark": "tau-bench",
            "task_id": record["task_id"],
            "trial": record.get("trial"),
            "user_id": task.get("user_id"),
            "opening_message": conversation.opening,
            "ground_truth_actions": task.get("actions") or [],
            "ground_truth_outputs": task.get("outputs") or [],
            "reward_info": reward_info,
        },
        raw=record,
    )


def _failure_reason(reward_info: Any) -> str:
    if not isinstance(reward_info, dict):
        return "reward 0 (no reward breakdown recorded)"
    parts = [f"{k}={v}" for k, v in (reward_info.get("info") or {}).items() if k.startswith("r_")]
    return "reward 0" + (f" ({', '.join(parts)})" if parts else "")


def _tools(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Tool schemas when the run recorded them (newer tau-bench versions keep tools_info)."""
    tools = info.get("tools_info") or info.get("tools") or []
    return [
        t if "function" in t else {"type": "function", "function": t}
        for t in tools
        if isinstance(t, dict)
    ]
