"""SWE-agent ``.traj`` files, old and new schema: ``history`` (the conversation, with each
assistant turn's ``thought`` and ``action``), ``trajectory`` [{action, observation, thought}] and
``info.exit_status`` / ``info.submission``.

The goal is the issue text of the first (non-demonstration) user message. A step is one command
(``action`` = its first word, ``action_input.command`` = the whole command) and what the
environment printed back. SWE-agent records no success label: whether a submitted patch resolves
the issue is only known after the SWE-bench evaluation. So a submitted run imports with its
outcome unknown (``success`` empty, ``metadata.label = "unknown"``: the detection stage decides,
as for a message log that has no label), and a run that exited any other way (cost or context
limit, error, format errors) is a known failure (``metadata.label = "failure"``); both keep
``raw_label = "exit_status=..."``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    TrajectoryImportError,
    load_json,
    text_of,
)
from relabel.models import Step

NAME = "swe-agent"


def looks_like(path: Path, data: Any = None) -> bool:
    if path.suffix.lower() == ".traj":
        return True
    return isinstance(data, dict) and isinstance(data.get("trajectory"), list) and "info" in data


def parse(path: Path, options: ImportOptions) -> list[Parsed]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("history", []), list):
        raise TrajectoryImportError(path, "a .traj file is an object with a history list")
    history = [m for m in data.get("history") or [] if isinstance(m, dict) and not _is_demo(m)]
    goal = _goal(history)
    if not goal:
        raise TrajectoryImportError(
            path, "missing goal: no user message with the issue", field="history"
        )
    steps = _steps_from_history(history) or _steps_from_trajectory(data.get("trajectory") or [])
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    status = str(info.get("exit_status") or "")
    known_failure = bool(status) and status != "submitted"
    return [
        Parsed(
            external_id=path.stem,
            goal=goal,
            steps=steps,
            success=False if known_failure else None,
            raw_label=f"exit_status={status}" if status else "",
            final_answer=text_of(info.get("submission")),
            failure_reason=f"the run ended with exit_status {status}" if known_failure else "",
            system_prompt=next(
                (text_of(m.get("content")) for m in history if m.get("role") == "system"), ""
            ),
            metadata={
                "benchmark": "swe-agent",
                "label": "failure" if known_failure else "unknown",
                "exit_status": status,
                "environment": data.get("environment"),
                "model_stats": text_of(info.get("model_stats")),
            },
            raw=data,
        )
    ]


def _is_demo(message: dict[str, Any]) -> bool:
    return str(message.get("is_demo", "")).lower() == "true"


def _goal(history: list[dict[str, Any]]) -> str:
    first = next((text_of(m.get("content")) for m in history if m.get("role") == "user"), "")
    if "ISSUE:" in first:
        issue = first.split("ISSUE:", 1)[1]
        return issue.split("INSTRUCTIONS:", 1)[0].strip()
    return first.strip()


def _steps_from_history(history: list[dict[str, Any]]) -> list[Step]:
    steps: list[dict[str, Any]] = []
    started = False
    for message in history:
        role = message.get("role")
        if role == "assistant":
            started = True
            action = str(message.get("action") or "").strip()
            thought = message.get("thought", message.get("content"))
            steps.append({"thought": text_of(thought).strip(), "action": action, "obs": None})
        elif started and role in ("user", "tool") and steps and steps[-1]["obs"] is None:
            steps[-1]["obs"] = text_of(message.get("content"))
    return [_step(i, s["thought"], s["action"], s["obs"] or "") for i, s in enumerate(steps)]


def _steps_from_trajectory(items: list[Any]) -> list[Step]:
    return [
        _step(
            i,
            text_of(it.get("thought")),
            str(it.get("action") or "").strip(),
            text_of(it.get("observation")),
        )
        for i, it in enumerate(x for x in items if isinstance(x, dict))
    ]


def _step(index: int, thought: str, command: str, observation: str) -> Step:
    name = command.split(maxsplit=1)[0] if command else ""
    return Step.build(
        index=index,
        thought=thought,
        action=name[:300],
        action_input={"command": command} if command else {},
        observation=observation,
    )
