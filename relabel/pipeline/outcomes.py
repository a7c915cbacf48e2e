"""A run's successes, failures and unknown outcomes, counted so that they add up.

A trajectory imported without an outcome (``Trajectory.success`` is None) is a success or a
failure once an openai run's detection stage has decided it (``RunItem.is_failure``, with
``detection.decided``); until then, and in a rules run (which sets it aside undecided), it is
neither: it counts as ``unknown``. ``run_summary`` is the runner's summary with these counts,
for every place that shows a run's numbers (the relabel command, the demo, the run page).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from relabel.models import Run, RunItem
from relabel.pipeline import runner

UNDECIDED = Q(detection__decided=False)
# An unknown outcome set aside undecided carries is_failure=True (the runner's discard path), so
# is_failure=False on an unknown outcome is always the detection stage's "succeeded".
SUCCEEDED = Q(trajectory__success=True) | Q(trajectory__success__isnull=True, is_failure=False)
UNKNOWN = Q(trajectory__success__isnull=True) & (Q(is_failure__isnull=True) | UNDECIDED)


def outcome_counts(run: Run) -> dict[str, int]:
    """``successes + failures + unknown`` is the run's number of trajectories; ``set_aside``
    is how many unknown outcomes the run left undecided (also among the runner's discards)."""
    counts = RunItem.objects.filter(run=run).aggregate(
        total=Count("id"),
        successes=Count("id", filter=SUCCEEDED),
        unknown=Count("id", filter=UNKNOWN),
        set_aside=Count("id", filter=Q(status=RunItem.Status.DISCARDED) & UNDECIDED),
    )
    return {
        "successes": counts["successes"],
        "failures": counts["total"] - counts["successes"] - counts["unknown"],
        "unknown": counts["unknown"],
        "set_aside": counts["set_aside"],
    }


def run_summary(run: Run) -> dict[str, Any]:
    """The runner's summary with outcome counts that add up: an unknown outcome is neither a
    success nor a failure, and one the run set aside undecided is not a discarded failure."""
    return with_outcomes(run, runner.run_summary(run))


def with_outcomes(run: Run, summary: dict[str, Any]) -> dict[str, Any]:
    counts = outcome_counts(run)
    discarded = summary["discarded"] - counts["set_aside"]
    return {**summary, **counts, "discarded": discarded}
