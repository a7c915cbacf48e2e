"""The one place that turns a trajectory into OpenAI chat messages.

Prompts, the review UI and every export use it, so a trajectory reads the same everywhere:
system (the agent's own prompt, when the source had one), user (the goal), then per step an
assistant turn (thought as content, the action as a ``tool_calls`` entry, the agent's ``name``
when a multi-agent log recorded which agent spoke) and the reply (a ``tool`` message answering
that call, or a ``user`` message), and a last assistant turn with the final answer. The result
always ends on an assistant message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from relabel.models import Step, Trajectory
from relabel.tokens import truncate_to_tokens

NO_FINAL_ANSWER = "(The agent stopped without a final answer.)"


def tool_call(step: Step) -> dict[str, Any]:
    arguments = step.action_input
    return {
        "id": step.tool_call_id,
        "type": "function",
        "function": {
            "name": step.action,
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


# What OpenAI accepts in a message's name: no whitespace and none of <|\/>, 64 characters.
NAME_UNSAFE = re.compile(r"[\s<|\\/>]+")


def speaker(step: Step) -> str:
    """The agent that took the step, as the source named it ("" for a single agent).

    Exports and the review pages fetch it as a column (``speaker``); elsewhere it is read from
    the step's metadata."""
    if hasattr(step, "speaker"):
        return step.speaker or ""
    return str((step.metadata or {}).get("speaker") or "")


def message_name(agent: str) -> str:
    """An agent's name as a chat message's ``name``: "Orchestrator (-> WebSurfer)" becomes
    "Orchestrator_(-_WebSurfer)"."""
    return NAME_UNSAFE.sub("_", agent).strip("_")[:64]


def step_messages(step: Step, observation_tokens: int | None = None) -> list[dict[str, Any]]:
    """The assistant turn of one step and the reply it got (if any)."""
    assistant: dict[str, Any] = {"role": "assistant", "content": step.thought or ""}
    name = message_name(speaker(step))
    if name:
        assistant["name"] = name
    if step.action:
        assistant["tool_calls"] = [tool_call(step)]
    out = [assistant]
    observation = step.observation
    if observation_tokens is not None:
        observation = truncate_to_tokens(observation, observation_tokens)
    if step.action:
        out.append({"role": "tool", "tool_call_id": step.tool_call_id, "content": observation})
    elif observation:
        out.append({"role": "user", "content": observation})
    return out


def trajectory_messages(
    trajectory: Trajectory,
    goal: str | None = None,
    *,
    steps: Iterable[Step] | None = None,
    observation_tokens: int | None = None,
    final_answer: str | None = None,
    include_system: bool = True,
) -> list[dict[str, Any]]:
    """The trajectory as chat messages, under ``goal`` (the original goal by default).

    ``observation_tokens`` cuts each observation to that budget, the same way everywhere.
    """
    messages: list[dict[str, Any]] = []
    if include_system and trajectory.system_prompt:
        messages.append({"role": "system", "content": trajectory.system_prompt})
    messages.append({"role": "user", "content": goal if goal is not None else trajectory.goal})
    for step in steps if steps is not None else trajectory.ordered_steps():
        messages.extend(step_messages(step, observation_tokens))
    answer = trajectory.final_answer if final_answer is None else final_answer
    last = messages[-1]
    ends_plain = last["role"] == "assistant" and not last.get("tool_calls")
    if answer and not (ends_plain and last["content"] == answer):
        messages.append({"role": "assistant", "content": answer})
    elif not answer and not ends_plain:
        messages.append({"role": "assistant", "content": NO_FINAL_ANSWER})
    return messages
