"""The one place that turns a trajectory into OpenAI chat messages.

Prompts, the review UI and every export use it, so a trajectory reads the same everywhere: per
step an assistant turn (thought as content, the action as a ``tool_calls`` entry, the agent's
``name`` when a multi-agent log recorded which agent spoke) and the reply it got (a ``tool``
message answering that call, or a ``user`` message).

An exported conversation (``trajectory_chat``) holds only what happened, plus the goal where the
model would see it:

- **The goal.** Where the agent was given its goal as its instruction, the goal is the first user
  turn (in the source's own opening message when one was recorded, with the exported goal in
  place of the original). Where the user turns came from a (simulated) user (tau-bench: the goal is
  the simulator's hidden instruction, never shown to the agent), the conversation opens with what
  the user really said; a hindsight goal then goes into the system prompt as the agent's task
  brief (where an operator briefs a deployed agent), and a run's own hidden goal stays in the
  metadata only.
- **Nothing invented.** No turn is added: a run that stopped without an answer ends on the agent's
  last real turn (what came back after it, which the agent never answered, is dropped and noted);
  simulator control tokens (``###STOP###``) are removed from user turns and noted; empty
  assistant turns (none in the source) are not emitted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from relabel.models import Step, Trajectory
from relabel.tokens import estimate_tokens, truncate_to_tokens

# A user simulator ends or redirects a conversation with these (tau-bench: ###STOP###; tau2-bench
# also ###TRANSFER### and ###OUT-OF-SCOPE###). They are protocol, not speech.
CONTROL_TOKEN = re.compile(r"###[A-Z][A-Z_-]*###")
TASK_HEADING = "# Task\n"

# Where the exported goal is in a conversation.
GOAL_FIRST_USER_TURN = "first_user_turn"
GOAL_OPENING_MESSAGE = "opening_message"
GOAL_SYSTEM_PROMPT = "system_prompt"
GOAL_METADATA = "metadata"
# Tokens of chat-template markup per message, for the length estimate (role tags, separators).
TOKENS_PER_MESSAGE = 4


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


@dataclass
class Chat:
    """An exported conversation and the notes that say how it was made from the run."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    goal_placement: str = GOAL_FIRST_USER_TURN
    control_tokens: list[str] = field(default_factory=list)
    dropped_turns: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_answer_turn(self) -> bool:
        """Ends on a plain assistant message (an answer, not a tool call)."""
        last = self.messages[-1] if self.messages else {}
        return last.get("role") == "assistant" and not last.get("tool_calls")

    @property
    def has_assistant_turn(self) -> bool:
        return any(m["role"] == "assistant" for m in self.messages)

    def notes(self) -> dict[str, Any]:
        """What a row's metadata says about its conversation."""
        return {
            "goal_placement": self.goal_placement,
            "ended_without_answer": self.has_assistant_turn and not self.has_answer_turn,
            "control_tokens": self.control_tokens,
            "dropped_turns": self.dropped_turns,
        }

    def add(self, message: dict[str, Any]) -> None:
        if (
            message["role"] == "assistant"
            and not message["content"]
            and not message.get("tool_calls")
        ):
            return  # a step with neither thought nor action: the source had no such turn
        if message["role"] == "user" and CONTROL_TOKEN.search(message["content"]):
            message = {**message, "content": self.without_control_tokens(message["content"])}
            if not message["content"]:
                self.dropped_turns.append({"role": "user", "reason": "simulator control token"})
                return
        self.messages.append(message)

    def without_control_tokens(self, text: str) -> str:
        # Noted by name only ("STOP"), so not even the metadata holds the token itself.
        for token in CONTROL_TOKEN.findall(text):
            if token.strip("#") not in self.control_tokens:
                self.control_tokens.append(token.strip("#"))
        return CONTROL_TOKEN.sub("", text).strip()

    def end_on_the_last_assistant_turn(self) -> None:
        """Drops what came back after the agent's last turn: the agent never answered it."""
        if not self.has_assistant_turn:
            return
        while self.messages[-1]["role"] != "assistant":
            dropped = self.messages.pop()
            self.dropped_turns.append(
                {"role": dropped["role"], "reason": "after the agent's last turn"}
            )


def place_goal(original: str, goal: str, opening: str) -> tuple[str, str, str]:
    """(first user turn, task brief for the system prompt, placement) of the exported goal.

    ``opening`` is the source's own first user message when the run recorded one apart from
    its goal ("" otherwise).
    """
    if not opening:
        return goal, "", GOAL_FIRST_USER_TURN
    if original and original in opening:
        return opening.replace(original, goal), "", GOAL_OPENING_MESSAGE
    # The user said something else: the goal was never the agent's instruction.
    if goal == original:
        return opening, "", GOAL_METADATA
    return opening, goal, GOAL_SYSTEM_PROMPT


def _system(trajectory: Trajectory, brief: str) -> str:
    parts = [trajectory.system_prompt or ""]
    if brief:
        parts.append(TASK_HEADING + brief)
    return "\n\n".join(p for p in parts if p)


def _add_final_answer(chat: Chat, answer: str) -> None:
    last = chat.messages[-1] if chat.messages else {}
    if answer and not (chat.has_answer_turn and last["content"] == answer):
        chat.add({"role": "assistant", "content": answer})


def trajectory_chat(
    trajectory: Trajectory,
    goal: str | None = None,
    *,
    steps: Iterable[Step] | None = None,
    observation_tokens: int | None = None,
    opening: str = "",
    final_answer: str | None = None,
    include_system: bool = True,
) -> Chat:
    """The trajectory as an exported conversation, under ``goal`` (the original by default).

    ``opening`` is the source's recorded first user message (tau-bench's, a mapped message log's),
    when it is not the goal itself. ``steps`` and ``final_answer`` replace the trajectory's own
    (a candidate's rewritten turns). ``observation_tokens`` cuts each observation to that budget,
    the same way everywhere.
    """
    goal = trajectory.goal if goal is None else goal
    chat = Chat()
    first_user, brief, chat.goal_placement = place_goal(trajectory.goal, goal, opening or "")
    system = _system(trajectory, brief) if include_system else ""
    if system:
        chat.add({"role": "system", "content": system})
    chat.add({"role": "user", "content": first_user})
    for step in steps if steps is not None else trajectory.ordered_steps():
        for message in step_messages(step, observation_tokens):
            chat.add(message)
    _add_final_answer(chat, trajectory.final_answer if final_answer is None else final_answer)
    chat.end_on_the_last_assistant_turn()
    return chat


def trajectory_messages(trajectory: Trajectory, goal: str | None = None, **kwargs: Any) -> list:
    """The messages of ``trajectory_chat`` alone."""
    return trajectory_chat(trajectory, goal, **kwargs).messages


def message_texts(
    messages: list[dict[str, Any]], tools: list[Any] | None = None
) -> tuple[list[str], int]:
    """(the texts a chat template renders of these messages and tool schemas, the number of
    messages): what an export's row lengths are estimated from."""
    texts = [json.dumps(tools, ensure_ascii=False)] if tools else []
    for message in messages:
        texts.append(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            texts += [call["function"]["name"], call["function"]["arguments"]]
    return texts, len(messages)


def estimated_tokens(texts: list[str], messages: int) -> int:
    """The offline estimate of relabel.tokens (it errs on the high side of real BPE
    tokenizers) of the texts, plus a few tokens of template markup per message."""
    return TOKENS_PER_MESSAGE * messages + sum(estimate_tokens(text) for text in texts)
