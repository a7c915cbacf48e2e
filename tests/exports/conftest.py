"""A reviewed run with every case an export must handle: tool calls, a system prompt and tool
schemas, a human edit, a human rejection, weights, a success of the same task, a discarded
trajectory and one very long observation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from relabel.models import Candidate, Run, RunItem
from review.models import Verdict
from tests.conftest import make_user
from tests.factories import make_candidate, make_dataset, make_run, make_trajectory

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search suppliers",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]
LONG_OBSERVATION = "<div>" + "row " * 20_000 + "</div>"
EDITED_GOAL = "Report the supplier with the lowest MOQ and its price per kg"


@dataclass
class ReviewedRun:
    run: Run
    auto: Candidate
    edited: Candidate
    human_rejected: Candidate
    gate_rejected: Candidate
    unreviewed: Candidate
    long: Candidate
    success: RunItem
    discarded: RunItem
    rater: User


def verdict(candidate: Candidate, rater: User, decision: str, **fields) -> Verdict:
    return Verdict.objects.create(
        candidate=candidate, rater=rater, kind="curation", decision=decision, **fields
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """These tests are about exports, not passwords: PBKDF2 would cost seconds per persona."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reviewed_run(db) -> ReviewedRun:
    dataset = make_dataset("webshop")
    run = make_run(dataset)
    rater = make_user("rita", "annotator")
    tool_traj = make_trajectory(
        dataset, system_prompt="You are a procurement agent.", tools=TOOLS, external_id="t-auto"
    )
    auto = make_candidate(run, trajectory=tool_traj, confidence=0.9, severity=0.2)
    edited = make_candidate(
        run,
        trajectory=make_trajectory(dataset, goal="Buy 200 kg of wire", external_id="t-edit"),
        confidence=0.35,
        severity=0.4,
        failure_type="wrong_result",
    )
    verdict(edited, rater, "edit", edited_goal=EDITED_GOAL)
    Candidate.objects.filter(pk=edited.pk).update(final_goal=EDITED_GOAL, review_state="edited")
    human_rejected = make_candidate(
        run, trajectory=make_trajectory(dataset, goal="g3", external_id="t-hrej"), confidence=0.8
    )
    verdict(human_rejected, rater, "reject", reason_code="not_achieved")
    Candidate.objects.filter(pk=human_rejected.pk).update(review_state="rejected")
    gate_rejected = make_candidate(
        run, trajectory=make_trajectory(dataset, goal="g4", external_id="t-grej"), confidence=0.1
    )
    unreviewed = make_candidate(
        run, trajectory=make_trajectory(dataset, goal="g5", external_id="t-open"), confidence=0.3
    )
    long_steps = [
        {
            "thought": "Open the page",
            "action": "open",
            "action_input": {"url": "https://x"},
            "observation": LONG_OBSERVATION,
        },
    ]
    long = make_candidate(
        run,
        trajectory=make_trajectory(dataset, goal="g6", steps=long_steps, external_id="t-long"),
        confidence=0.7,
        severity=0.0,
    )
    success_traj = make_trajectory(
        dataset,
        success=True,
        system_prompt="You are a procurement agent.",
        tools=TOOLS,
        external_id="t-success",
    )
    success = RunItem.objects.create(
        run=run, trajectory=success_traj, status=RunItem.Status.SUCCESS, is_failure=False
    )
    discarded = RunItem.objects.create(
        run=run,
        trajectory=make_trajectory(dataset, goal="g7", external_id="t-discard"),
        status=RunItem.Status.DISCARDED,
        is_failure=True,
        failure_type="hallucination",
        severity=0.9,
        weight=0.1,
        reason="severity 0.9 above the discard line",
    )
    for c in (auto, edited, human_rejected, gate_rejected, unreviewed, long):
        c.refresh_from_db()
    return ReviewedRun(
        run,
        auto,
        edited,
        human_rejected,
        gate_rejected,
        unreviewed,
        long,
        success,
        discarded,
        rater,
    )
