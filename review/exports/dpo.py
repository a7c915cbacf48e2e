"""DPO rows in TRL's conversational preference form, two kinds in two files.

``dpo_hindsight.jsonl`` is AgentHER's pairing, ``{"chosen", "rejected"}`` (TRL's implicit-prompt
form): the same trajectory under its hindsight goal (chosen) and under the original goal it
failed (rejected). The two differ in their user turn, so the only prefix they share is the
system prompt; the README ("Loading the files") shows how to feed them to TRL.

``dpo_shared_prompt.jsonl`` holds ``{"prompt", "chosen", "rejected"}`` (TRL's explicit form)
where the run has several trajectories of one task (the same goal) with different outcomes: the
prompt is the task (system + goal), chosen a successful trajectory's turns, rejected a failed
one's. Each failed trajectory is paired with one success of its task, round robin.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Q, QuerySet

from relabel.chat import trajectory_messages
from relabel.models import Candidate, Run, RunItem
from review.exports import rows, sft
from review.exports.options import ExportOptions

HINDSIGHT_FILE = "dpo_hindsight.jsonl"
SHARED_FILE = "dpo_shared_prompt.jsonl"


def hindsight_row(candidate: Candidate, options: ExportOptions) -> dict[str, Any] | None:
    chosen = sft.candidate_messages(candidate, options)
    rejected = trajectory_messages(
        candidate.trajectory,
        candidate.trajectory.goal,
        steps=rows.steps_of(candidate.trajectory),
        observation_tokens=options.observation_tokens,
    )
    if chosen == rejected:  # a goal "relabelled" to itself teaches nothing
        return None
    return {
        "chosen": chosen,
        "rejected": rejected,
        "weight": rows.candidate_weight(candidate),
        "metadata": rows.provenance(candidate),
    }


def split_prompt(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict]]:
    """(prompt, completion): the prompt ends on the first user turn, the task itself."""
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[: first_user + 1], messages[first_user + 1 :]


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


def _shared_row(success: RunItem, failed: RunItem, options: ExportOptions) -> dict[str, Any] | None:
    prompt, chosen = split_prompt(sft.success_messages(success, options))
    _, rejected = split_prompt(sft.success_messages(failed, options))
    if not chosen or not rejected or chosen == rejected:
        return None
    trajectory = failed.trajectory
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
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
        },
    }


def shared_prompt_rows(run: Run, options: ExportOptions) -> Iterator[dict[str, Any]]:
    """Streams the task groups in goal order; only one task's successes are held at a time."""
    items = rows.iter_items(_task_items(run))
    for _, group in itertools.groupby(items, key=lambda i: i.trajectory.goal):
        successes: list[RunItem] = []
        for n_failed, item in enumerate(i for i in group if not _add_success(i, successes)):
            row = _shared_row(successes[n_failed % len(successes)], item, options)
            if row is not None:
                yield row


def _add_success(item: RunItem, successes: list[RunItem]) -> bool:
    """Collects the successes (they come first in each group); True when ``item`` was one."""
    if item.trajectory.success:
        successes.append(item)
        return True
    return False


def files(run: Run, options: ExportOptions) -> list[tuple[str, int, Iterator[dict[str, Any]]]]:
    candidates = rows.exported_candidates(run, options)
    hindsight = (
        hindsight_row(c, options) for c in rows.iter_candidates(candidates, options=options)
    )
    return [
        (HINDSIGHT_FILE, candidates.count(), (r for r in hindsight if r is not None)),
        (SHARED_FILE, shared_prompt_count(run), shared_prompt_rows(run, options)),
    ]
