"""What the candidate page and the review queue show of a candidate: goal diff, steps,
achievements.

Everything here returns plain strings in plain structures; templates escape them. Nothing from a
trajectory is ever marked safe.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models.fields.json import KT

from relabel.chat import speaker, step_messages
from relabel.models import Candidate, Step, Trajectory

# Observations longer than this (characters or lines) start collapsed.
LONG_CHARS = 600
LONG_LINES = 12
PREVIEW_CHARS = 160


@dataclass
class DiffPart:
    kind: str  # "same", "del" (only in the original) or "ins" (only in the hindsight goal)
    text: str


def word_diff(original: str, hindsight: str) -> tuple[list[DiffPart], list[DiffPart]]:
    """Both goals split into parts, each marked same / deleted / inserted, word by word."""
    # Each word keeps its trailing space, so a run of changed words reads as one marked phrase.
    a, b = re.findall(r"\s*\S+\s*", original), re.findall(r"\s*\S+\s*", hindsight)
    left: list[DiffPart] = []
    right: list[DiffPart] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(DiffPart("same", "".join(a[i1:i2])))
            right.append(DiffPart("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(DiffPart("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(DiffPart("ins", "".join(b[j1:j2])))
    return left, right


def pretty_arguments(arguments: Any) -> str:
    """Tool-call arguments as indented JSON when they parse, else verbatim."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, indent=2, ensure_ascii=False)


@dataclass
class StepView:
    index: int
    thought: str
    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool name, pretty arguments)
    observation: str = ""
    observation_role: str = "tool"
    observation_chars: int = 0
    truncated: bool = False
    speaker: str = ""  # the agent that took the step, in a multi-agent log

    @property
    def is_long(self) -> bool:
        return len(self.observation) > LONG_CHARS or self.observation.count("\n") >= LONG_LINES

    @property
    def preview(self) -> str:
        first = self.observation.strip().splitlines()[0] if self.observation.strip() else ""
        return first[:PREVIEW_CHARS] + ("…" if len(first) > PREVIEW_CHARS else "")


def step_view(step: Step) -> StepView:
    """One step as the one messages conversion (relabel.chat) sees it."""
    assistant, *replies = step_messages(step)
    calls = [
        (c["function"]["name"], pretty_arguments(c["function"]["arguments"]))
        for c in assistant.get("tool_calls", [])
    ]
    reply = replies[0] if replies else {"role": step.observation_role, "content": ""}
    return StepView(
        index=step.index,
        thought=assistant["content"],
        calls=calls,
        observation=reply["content"],
        observation_role="tool" if reply["role"] == "tool" else "user",
        observation_chars=step.observation_chars,
        # observation_full is left unloaded (it can be megabytes): the lengths tell the same.
        truncated=step.observation_chars > len(step.observation),
        speaker=speaker(step),
    )


def trajectory_steps(trajectory: Trajectory) -> list[StepView]:
    steps = trajectory.ordered_steps().defer("observation_full", "metadata")
    steps = steps.annotate(speaker=KT("metadata__speaker"))
    return [step_view(s) for s in steps]


@dataclass
class Achievement:
    text: str
    steps: list[int]


def achievements(candidate: Candidate, step_count: int) -> list[Achievement]:
    """The outcome's achievements with the steps that ground them (unknown steps dropped)."""
    out = []
    for entry in (candidate.item.outcome or {}).get("achievements") or []:
        if isinstance(entry, str):
            entry = {"text": entry, "steps": []}
        if not isinstance(entry, dict):
            continue
        steps = [s for s in entry.get("steps") or [] if isinstance(s, int) and 0 <= s < step_count]
        out.append(Achievement(text=str(entry.get("text", "")), steps=sorted(set(steps))))
    return out


def judge_rows(candidate: Candidate) -> list[dict[str, Any]]:
    rows = []
    for judge in candidate.judges or []:
        if isinstance(judge, dict):
            rows.append(
                {
                    "name": str(judge.get("name") or judge.get("model") or "judge"),
                    "model": str(judge.get("model", "")),
                    "accept": bool(judge.get("accept")),
                    "confidence": judge.get("confidence"),
                    "reason": str(judge.get("reason", "")),
                }
            )
    return rows


def candidate_display(candidate: Candidate) -> dict[str, Any]:
    """Everything the full (non-blind) view of a candidate shows: the candidate page and the
    queue's curation items."""
    steps = trajectory_steps(candidate.trajectory)
    original, hindsight = word_diff(candidate.trajectory.goal, candidate.hindsight_goal)
    return {
        "candidate": candidate,
        "trajectory": candidate.trajectory,
        "steps": steps,
        "original_diff": original,
        "hindsight_diff": hindsight,
        "achievements": achievements(candidate, len(steps)),
        "judges": judge_rows(candidate),
    }
