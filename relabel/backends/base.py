"""What every backend shares: the context of one trajectory, and the interface the pipeline
calls (see relabel.backends for what belongs to a backend and what to the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from relabel.llm.client import CallLog
from relabel.models import Step, Trajectory


@dataclass
class ItemContext:
    """What every stage needs about one trajectory in one run."""

    trajectory: Trajectory
    steps: list[Step]
    config: dict[str, Any]
    log: CallLog
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def step_indices(self) -> set[int]:
        return {step.index for step in self.steps}


class Backend(Protocol):
    name: str

    def detect(self, ctx: ItemContext) -> dict[str, Any]:
        """{failure_type, severity, recoverable, explanation} for a failed trajectory. For one
        whose outcome is unknown (``trajectory.success is None``) also ``succeeded`` (bool), or
        only ``{"undecided": reason}`` when the backend cannot judge it."""
        ...

    def extract(self, ctx: ItemContext) -> dict[str, Any]:
        """{achievements: [{text, steps}], key_observations, limitations}."""
        ...

    def relabel(
        self,
        ctx: ItemContext,
        outcome: dict[str, Any],
        *,
        attempt: int,
        temperature: float,
        refused: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """{hindsight_goal, rationale, confidence}."""
        ...

    def panel(self) -> list[dict[str, Any]]:
        """The judges: each {name, model, endpoint, ...}."""
        ...

    def judge(self, ctx: ItemContext, judge: dict[str, Any], goal: str) -> dict[str, Any]:
        """{accept, confidence, reason} of one judge, and optionally ``contradictions``:
        [{step, quote, reason}] turns that contradict the goal."""
        ...

    def rewrite(self, ctx: ItemContext, goal: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
        """{turns: [{turn, text}]}: the offered free-text turns ({label, text, problems})
        rewritten to fit ``goal`` (stage 3b); an empty list when the backend has no model."""
        ...
