"""A run's summary: its counts (``Run.counts``), the calls it made and what they cost.

The keys are a contract: ``manage.py relabel --json`` prints this dict, and scripts read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from relabel.models import LLMCall, Run


def run_summary(run: Run) -> dict[str, Any]:
    """The run's counts, tokens and cost, in three aggregate queries."""
    run.refresh_from_db(fields=["status", "started_at", "finished_at"])
    counts = run.counts()
    calls = LLMCall.objects.filter(run=run).totals()
    cost = float(calls["cost_usd"] or 0)
    end = run.finished_at or timezone.now()
    wall = (end - run.started_at).total_seconds() if run.started_at else 0.0
    return {
        "run": run.pk,
        "status": run.status,
        "trajectories": counts.total,
        "successes": counts.successes,
        "failures": counts.failures,
        "unknown": counts.unknown,
        "set_aside": counts.set_aside,
        "candidates": counts.candidates,
        "auto_accepted": counts.auto_accepted,
        "needs_review": counts.needs_review,
        "rejected": counts.rejected,
        "discarded": counts.discarded,
        "errors": counts.errors,
        "llm_calls": calls["llm_calls"],
        "cached_calls": calls["cached_calls"],
        "prompt_tokens": calls["prompt_tokens"],
        "completion_tokens": calls["completion_tokens"],
        "cached_tokens": calls["cached_tokens"],
        "cost_usd": round(cost, 6),
        "cost_per_accepted_pair": round(cost / counts.approved, 6) if counts.approved else None,
        "wall_seconds": round(wall, 3),
        "done": counts.done,
        "total": counts.total,
    }


def wait_for(
    run: Run,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Blocks until the run is no longer running; ``on_progress(summary)`` after each poll."""
    started = time.monotonic()
    while True:
        summary = run_summary(run)
        if on_progress:
            on_progress(summary)
        if summary["status"] != Run.Status.RUNNING:
            return summary
        if timeout is not None and time.monotonic() - started > timeout:
            return summary
        time.sleep(poll)
