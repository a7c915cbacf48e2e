"""Builds trajectories, runs and candidates straight through the ORM, for tests that need them
without running the pipeline (tests of the pipeline itself run it for real)."""

from __future__ import annotations

import itertools
from typing import Any

from relabel.config import default_config
from relabel.models import (
    Candidate,
    Dataset,
    Run,
    RunItem,
    Step,
    Trajectory,
    compress_json,
)

_ids = itertools.count(1)


def make_dataset(name: str | None = None) -> Dataset:
    return Dataset.objects.create(name=name or f"dataset-{next(_ids)}")


def make_trajectory(
    dataset: Dataset | None = None,
    *,
    goal: str = "Find copper wire suppliers under $5/kg with MOQ below 100 kg",
    success: bool = False,
    steps: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Trajectory:
    dataset = dataset or make_dataset()
    steps = (
        steps
        if steps is not None
        else [
            {
                "thought": "Search suppliers",
                "action": "search",
                "action_input": {"query": "copper wire supplier"},
                "observation": "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg.",
            },
            {
                "thought": "Compare them",
                "action": "compare",
                "action_input": {"by": ["price", "moq"]},
                "observation": "Lowest MOQ: MicroMetals (10 kg) at $5.30/kg.",
            },
        ]
    )
    fields.setdefault("external_id", f"traj-{next(_ids)}")
    fields.setdefault("source_format", "agenther")
    fields.setdefault("final_answer", "MicroMetals: $5.30/kg, MOQ 10 kg")
    trajectory = Trajectory.objects.create(
        dataset=dataset,
        goal=goal,
        success=success,
        step_count=len(steps),
        raw=compress_json({"goal": goal, "steps": steps}),
        **fields,
    )
    Step.objects.bulk_create(
        Step.build(trajectory=trajectory, index=i, **step) for i, step in enumerate(steps)
    )
    return trajectory


def make_run(dataset: Dataset | None = None, **config: Any) -> Run:
    """A finished run. No blind re-audit of approvals unless a test asks for one
    (``review={"reaudit_share": ...}``): it adds audit tasks as decisions are made, which tests of
    other things would have to step around."""
    dataset = dataset or make_dataset()
    config["review"] = {"reaudit_share": 0.0, **config.get("review", {})}
    cfg = default_config(**config)
    return Run.objects.create(
        dataset=dataset,
        backend=cfg["backend"],
        config=cfg,
        prompt_version=cfg["prompt_version"],
        status=Run.Status.FINISHED,
    )


def make_candidate(
    run: Run | None = None,
    *,
    trajectory: Trajectory | None = None,
    confidence: float = 0.4,
    gate: str | None = None,
    goal: str = "Compare suppliers by price per kg and MOQ and report the lowest-MOQ option",
    failure_type: str = "constraint_violation",
    severity: float = 0.2,
    judges: list[dict[str, Any]] | None = None,
) -> Candidate:
    run = run or make_run()
    trajectory = trajectory or make_trajectory(run.dataset)
    if gate is None:
        if confidence >= run.accept_threshold:
            gate = Candidate.Gate.AUTO_ACCEPTED
        elif confidence >= run.reject_threshold:
            gate = Candidate.Gate.NEEDS_REVIEW
        else:
            gate = Candidate.Gate.REJECTED
    item = RunItem.objects.create(
        run=run,
        trajectory=trajectory,
        status=RunItem.Status.CANDIDATE,
        is_failure=True,
        failure_type=failure_type,
        severity=severity,
        weight=1 - severity,
        recoverable=True,
        outcome={
            "achievements": [{"text": "Found MicroMetals at $5.30/kg, MOQ 10 kg", "steps": [0, 1]}],
            "observations": ["WireCo has MOQ 500 kg"],
            "limitations": ["price above $5"],
        },
    )
    judges = (
        judges
        if judges is not None
        else [
            {
                "name": "judge-a",
                "model": "rules",
                "endpoint": "offline",
                "accept": True,
                "confidence": confidence,
                "reason": "grounded in steps 0-1",
            },
        ]
    )
    return Candidate.objects.create(
        item=item,
        run=run,
        trajectory=trajectory,
        hindsight_goal=goal,
        final_goal=goal,
        rationale="the run found and compared suppliers",
        generator_confidence=confidence,
        confidence=confidence,
        aggregation={"method": "min"},
        judges=judges,
        gate=gate,
        gate_reason=f"confidence {confidence:.2f}",
    )
