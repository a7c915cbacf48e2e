"""SFT rows: ``{"messages": [...], "weight": ..., "metadata": {...}}`` in OpenAI chat form.

Tool calls are assistant ``tool_calls`` answered by ``tool`` messages, as relabel.chat builds
them, which is what TRL's SFTTrainer, axolotl's chat_template datasets and OpenAI fine-tuning
read. ``metadata`` carries the provenance; those tools ignore columns they do not know.
"""

from __future__ import annotations

from typing import Any

from relabel.chat import trajectory_messages
from relabel.models import Candidate, Run, RunItem
from review.exports import rows
from review.exports.options import ExportOptions

FILE = "sft.jsonl"
SUCCESS_FILE = "sft_successes.jsonl"


def candidate_messages(candidate: Candidate, options: ExportOptions) -> list[dict[str, Any]]:
    """The trajectory under its exported goal (a person's edit replaces the generated goal),
    with the agent's rewritten turns (stage 3b) in place of the originals."""
    return trajectory_messages(
        candidate.trajectory,
        candidate.final_goal,
        steps=rows.candidate_steps(candidate),
        observation_tokens=options.observation_tokens,
        final_answer=rows.candidate_final_answer(candidate),
    )


def success_messages(item: RunItem, options: ExportOptions) -> list[dict[str, Any]]:
    """A successful trajectory under its own goal."""
    return trajectory_messages(
        item.trajectory,
        steps=rows.steps_of(item.trajectory),
        observation_tokens=options.observation_tokens,
    )


def candidate_row(candidate: Candidate, options: ExportOptions) -> dict[str, Any]:
    return {
        "messages": candidate_messages(candidate, options),
        "weight": rows.candidate_weight(candidate),
        "metadata": rows.provenance(candidate),
    }


def success_row(item: RunItem, options: ExportOptions) -> dict[str, Any]:
    return {
        "messages": success_messages(item, options),
        "weight": rows.success_weight(item),
        "metadata": rows.success_provenance(item),
    }


def files(run: Run, options: ExportOptions) -> list[rows.FileSpec]:
    """(file name, expected rows, row iterator) for each file of the export."""
    return rows.candidate_and_success_files(
        run,
        options,
        names=(FILE, SUCCESS_FILE),
        candidate_row=candidate_row,
        success_row=success_row,
    )
