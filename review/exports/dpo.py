"""DPO rows in TRL's conversational preference form, two kinds in two files.

``dpo_hindsight.jsonl`` is AgentHER's pairing, ``{"chosen", "rejected"}`` (TRL's implicit-prompt
form): the same trajectory under its hindsight goal (chosen) and under the original goal it
failed (rejected). The two differ in their goal, so the only prefix they share is the system
prompt, if any: the README renders them into TRL's text form first. The pairing means something
only where the original goal was the agent's own instruction: a conversation whose goal was a
simulated user's hidden instruction (tau-bench) is left out, as is a goal relabelled to itself.

``dpo_shared_prompt.jsonl`` holds ``{"prompt", "chosen", "rejected"}`` (TRL's explicit form)
where the run has several trajectories of one task (the same goal) with different outcomes:
the prompt is what both runs were given (the turns they open with alike, up to the last shared
user turn; the system prompt alone when their first user turns differ, as a simulated user's do),
chosen a successful trajectory's turns after it, rejected a failed one's. Each failed trajectory
is paired with one success of its task, round robin.

Every row carries ``tools`` (the source's tool schemas, OpenAI form); rows left out are counted
in the manifest with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Q, QuerySet

from relabel.chat import GOAL_SYSTEM_PROMPT, Chat, message_texts, trajectory_chat
from relabel.models import Candidate, Run, RunItem
from review.exports import rows, sft
from review.exports.manifest import LeftOut, Rows
from review.exports.options import ExportOptions

HINDSIGHT_FILE = "dpo_hindsight.jsonl"
SHARED_FILE = "dpo_shared_prompt.jsonl"

SAME_GOAL = "the hindsight goal is the original goal"
NOT_THE_AGENTS_GOAL = (
    "the original goal was a simulated user's hidden instruction, never the agent's: "
    "no goal to pair against"
)
NO_SHARED_PROMPT = "the two runs were not given the same prompt (system prompt, first user turn)"
DIFFERENT_TOOLS = "the two runs were offered different tools"
SAME_TURNS = "the two runs took the same turns"

Message = dict[str, Any]


def hindsight_row(candidate: Candidate, options: ExportOptions) -> dict[str, Any] | LeftOut:
    trajectory = candidate.trajectory
    if candidate.final_goal == trajectory.goal:
        return LeftOut(SAME_GOAL)
    chosen = sft.candidate_chat(candidate, options)
    if not chosen.has_assistant_turn:
        return LeftOut(sft.NO_ASSISTANT_TURN)
    if chosen.goal_placement == GOAL_SYSTEM_PROMPT:
        return LeftOut(NOT_THE_AGENTS_GOAL)
    rejected = trajectory_chat(
        trajectory,
        steps=rows.steps_of(trajectory),
        observation_tokens=options.observation_tokens,
        opening=candidate.opening_message or "",
    )
    return {
        "chosen": chosen.messages,
        "rejected": rejected.messages,
        "tools": trajectory.tools or [],
        "weight": rows.candidate_weight(candidate),
        "metadata": {**rows.provenance(candidate), "conversation": chosen.notes()},
    }


def split_shared_prompt(
    a: list[Message], b: list[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """(prompt, rest of a, rest of b): the turns both open with alike, up to the last shared
    user turn, or the system prompt alone when they share no user turn."""
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    users = [i for i in range(shared) if a[i]["role"] == "user"]
    system_only = 1 if shared and a[0]["role"] == "system" else 0
    cut = users[-1] + 1 if users else system_only
    return a[:cut], a[cut:], b[cut:]


def _task_items(run: Run) -> QuerySet[RunItem]:
    """The run's items whose goal has both a successful and a failed trajectory in the run
    (by the benchmark's own signal: runs with no recorded outcome take no part)."""
    items = RunItem.objects.filter(run=run, trajectory__success__isnull=False)
    goals = (
        items.values("trajectory__goal")
        .annotate(
            successes=Count("id", filter=Q(trajectory__success=True)),
            failures=Count("id", filter=Q(trajectory__success=False)),
        )
        .filter(successes__gt=0, failures__gt=0)
        .values("trajectory__goal")
    )
    return items.filter(trajectory__goal__in=goals).order_by(
        "trajectory__goal", "-trajectory__success", "id"
    )


def shared_prompt_count(run: Run) -> int:
    return _task_items(run).filter(trajectory__success=False).count()


def _shared_pair(chosen: Chat, rejected: Chat) -> tuple[list, list, list] | LeftOut:
    if not (chosen.has_assistant_turn and rejected.has_assistant_turn):
        return LeftOut(sft.NO_ASSISTANT_TURN)
    prompt, chosen_turns, rejected_turns = split_shared_prompt(chosen.messages, rejected.messages)
    if not prompt:
        return LeftOut(NO_SHARED_PROMPT)
    if chosen_turns == rejected_turns:
        return LeftOut(SAME_TURNS)
    return prompt, chosen_turns, rejected_turns


def _shared_row(success: RunItem, failed: RunItem, options: ExportOptions) -> dict | LeftOut:
    trajectory = failed.trajectory
    if (success.trajectory.tools or []) != (trajectory.tools or []):
        return LeftOut(DIFFERENT_TOOLS)
    chosen, rejected = sft.success_chat(success, options), sft.success_chat(failed, options)
    pair = _shared_pair(chosen, rejected)
    if isinstance(pair, LeftOut):
        return pair
    prompt, chosen_turns, rejected_turns = pair
    return {
        "prompt": prompt,
        "chosen": chosen_turns,
        "rejected": rejected_turns,
        "tools": trajectory.tools or [],
        "weight": 1.0,
        "metadata": {
            "kind": "shared_prompt",
            "dataset": failed.dataset_name,
            "source_format": trajectory.source_format,
            "run": failed.run_id,
            "goal": trajectory.goal,
            "chosen_trajectory": success.trajectory.external_id,
            "rejected_trajectory": trajectory.external_id,
            "rejected_failure_type": failed.failure_type or None,
            "rejected_reward": trajectory.reward,
            "chosen_conversation": chosen.notes(),
            "rejected_conversation": rejected.notes(),
        },
    }


def shared_prompt_rows(run: Run, options: ExportOptions) -> Iterator[dict[str, Any] | LeftOut]:
    """Streams the task groups in goal order; only one task's successes are held at a time."""
    items = rows.iter_items(_task_items(run))
    for _, group in itertools.groupby(items, key=lambda i: i.trajectory.goal):
        successes: list[RunItem] = []
        for n_failed, item in enumerate(i for i in group if not _add_success(i, successes)):
            yield _shared_row(successes[n_failed % len(successes)], item, options)


def _add_success(item: RunItem, successes: list[RunItem]) -> bool:
    """Collects the successes (they come first in each group); True when ``item`` was one."""
    if item.trajectory.success:
        successes.append(item)
        return True
    return False


def row_texts(row: dict[str, Any]) -> tuple[list[str], int]:
    """The longer (in characters) of the two sequences a trainer sees: prompt + chosen, prompt +
    rejected."""
    prompt = row.get("prompt", [])
    sides = [message_texts(prompt + row[side], row["tools"]) for side in ("chosen", "rejected")]
    return max(sides, key=lambda side: sum(len(text) for text in side[0]))


def files(run: Run, options: ExportOptions) -> list[rows.FileSpec]:
    candidates = rows.exported_candidates(run, options)
    hindsight = (
        hindsight_row(c, options) for c in rows.iter_candidates(candidates, options=options)
    )
    n_candidates, n_shared = candidates.count(), shared_prompt_count(run)
    return [
        (HINDSIGHT_FILE, n_candidates, Rows(hindsight, row_texts, n_candidates)),
        (SHARED_FILE, n_shared, Rows(shared_prompt_rows(run, options), row_texts, n_shared)),
    ]
