"""Stage 1: failure detection. The benchmark's own signal first, then the backend's diagnosis.

A trajectory whose source recorded no outcome (``success`` is None: a production trace, a log
without a label) is decided by the backend: an openai run asks the model whether it succeeded; a
backend that cannot judge (rules) leaves it undecided, and the item is set aside with that
reason (status ``set_aside``), counted as neither a success nor a failure.

Severity (how bad the failure is) and weight (how much the relabelled pair counts in training,
1 - severity) are separate fields; the reference code used one field for both and inverted the
paper's meaning. A weight below delta discards the item as a major error, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relabel.backends import Backend, ItemContext
from relabel.models import RunItem

FAILURE_TYPES = {code for code, _ in RunItem.FAILURE_TYPES}


@dataclass
class Detection:
    is_failure: bool | None
    failure_type: str = ""
    severity: float | None = None
    weight: float | None = None
    recoverable: bool | None = None
    discard_reason: str = ""
    set_aside_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def discarded(self) -> bool:
        return bool(self.discard_reason)

    @property
    def set_aside(self) -> bool:
        """An outcome nobody recorded and this backend cannot judge: no success, no failure."""
        return bool(self.set_aside_reason)

    @property
    def success_reason(self) -> str:
        judged = self.raw.get("source") not in (None, "benchmark")
        return "judged a success by the model" if judged else "benchmark success"


def weight_for(severity: float) -> float:
    return round(1.0 - severity, 4)


def detect_failure(backend: Backend, ctx: ItemContext) -> Detection:
    trajectory = ctx.trajectory
    if trajectory.success:
        # Kept and marked: successes are the success-only baseline, never dropped.
        signal = {"source": "benchmark", "success": True, "reward": trajectory.reward}
        return Detection(is_failure=False, raw=signal)
    raw = backend.detect(ctx)
    if trajectory.success is None:
        decided = _unknown_outcome(backend, raw)
        if decided is not None:
            return decided
        raw = {**raw, "outcome": "unknown", "decided": True, "succeeded": False}
    failure_type = raw.get("failure_type")
    if failure_type not in FAILURE_TYPES:
        raise ValueError(f"detect: unknown failure_type {failure_type!r}")
    severity = min(1.0, max(0.0, float(raw["severity"])))
    weight = weight_for(severity)
    delta = float(ctx.config["severity_delta"])
    reason = ""
    if weight < delta:
        reason = (
            f"severe failure ({failure_type}): severity {severity:.2f}, weight {weight:.2f} is "
            f"below delta {delta:.2f}"
        )
    raw = {**raw, "source": backend.name, "reward": trajectory.reward}
    return Detection(
        is_failure=True,
        failure_type=failure_type,
        severity=severity,
        weight=weight,
        recoverable=bool(raw.get("recoverable")),
        discard_reason=reason,
        raw=raw,
    )


def _unknown_outcome(backend: Backend, raw: dict[str, Any]) -> Detection | None:
    """The backend's verdict on a run with no recorded outcome: a success, set aside undecided,
    or None (a failure, diagnosed as any other)."""
    if raw.get("undecided"):
        reason = f"outcome unknown, not judged: {raw['undecided']}"
        signal = {"source": backend.name, "outcome": "unknown", "decided": False}
        return Detection(is_failure=None, set_aside_reason=reason, raw={**signal, "reason": reason})
    succeeded = raw.get("succeeded")
    if not isinstance(succeeded, bool):
        raise ValueError(f"detect: succeeded must be true or false, not {succeeded!r}")
    if not succeeded:
        return None
    signal = {**raw, "source": backend.name, "outcome": "unknown", "decided": True}
    return Detection(is_failure=False, raw=signal)
