"""SFT rows: ``{"messages": [...], "tools": [...], "weight": ..., "metadata": {...}}``.

OpenAI chat form: tool calls are assistant ``tool_calls`` answered by ``tool`` messages, as
relabel.chat builds them, and ``tools`` holds the source's tool schemas in OpenAI form (empty
when the source recorded none); that is what TRL's SFTTrainer (which passes ``tools`` to the
chat template), axolotl's chat_template datasets and OpenAI fine-tuning read. ``metadata``
carries the provenance and how the conversation was made from the run (``conversation``); those
tools ignore columns they do not know.

A row holds what happened: it ends on the agent's last real turn (an answer, or its last tool
call when the run stopped without one), never on an invented answer.
"""

from __future__ import annotations

from typing import Any

from relabel.chat import Chat, message_texts, trajectory_chat
from relabel.models import Candidate, Run, RunItem
from review.exports import rows
from review.exports.manifest import LeftOut, per_trajectory_files
from review.exports.options import ExportOptions

FILE = "sft.jsonl"
SUCCESS_FILE = "sft_successes.jsonl"
NO_ASSISTANT_TURN = "the run has no assistant turn"


def candidate_chat(candidate: Candidate, options: ExportOptions) -> Chat:
    """The trajectory under its exported goal (a person's edit replaces the generated goal),
    with the agent's rewritten turns (stage 3b) in place of the originals."""
    return trajectory_chat(
        candidate.trajectory,
        candidate.final_goal,
        steps=rows.candidate_steps(candidate),
        observation_tokens=options.observation_tokens,
        opening=candidate.opening_message or "",
        final_answer=rows.candidate_final_answer(candidate),
    )


def success_chat(item: RunItem, options: ExportOptions) -> Chat:
    """A successful trajectory under its own goal."""
    return trajectory_chat(
        item.trajectory,
        steps=rows.steps_of(item.trajectory),
        observation_tokens=options.observation_tokens,
        opening=item.opening_message or "",
    )


def row(chat: Chat, tools: list[Any], weight: float, metadata: dict[str, Any]) -> dict | LeftOut:
    if not chat.has_assistant_turn:
        return LeftOut(NO_ASSISTANT_TURN)
    return {
        "messages": chat.messages,
        "tools": tools or [],
        "weight": weight,
        "metadata": {**metadata, "conversation": chat.notes()},
    }


def candidate_row(candidate: Candidate, options: ExportOptions) -> dict | LeftOut:
    return row(
        candidate_chat(candidate, options),
        candidate.trajectory.tools,
        rows.candidate_weight(candidate),
        rows.provenance(candidate),
    )


def success_row(item: RunItem, options: ExportOptions) -> dict | LeftOut:
    return row(
        success_chat(item, options),
        item.trajectory.tools,
        rows.success_weight(item),
        rows.success_provenance(item),
    )


def row_texts(row: dict[str, Any]) -> tuple[list[str], int]:
    return message_texts(row["messages"], row["tools"])


def files(run: Run, options: ExportOptions) -> list[rows.FileSpec]:
    """(file name, expected rows, row iterator) for each file of the export."""
    names = (FILE, SUCCESS_FILE)
    return per_trajectory_files(run, options, names, candidate_row, success_row, row_texts)
