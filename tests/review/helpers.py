"""Helpers of the review tests."""

from __future__ import annotations

from relabel.models import Candidate, Run, Trajectory
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.factories import make_candidate, make_trajectory

XSS_THOUGHT = "<script>alert(1)</script> searching"
XSS_OBSERVATION = "<img src=x onerror=alert(2)>"


def queued(run: Run, *confidences: float, **kwargs) -> list[Candidate]:
    """Candidates of ``run`` with these confidences, put in the queue."""
    made = [make_candidate(run, confidence=c, **kwargs) for c in confidences]
    populate_queue(run)
    return made


def xss_trajectory(run: Run) -> Trajectory:
    return make_trajectory(
        run.dataset,
        goal="Find the cheapest flight",
        steps=[
            {
                "thought": XSS_THOUGHT,
                "action": "search",
                "action_input": {"q": "<b>flights</b>"},
                "observation": XSS_OBSERVATION,
            }
        ],
        final_answer="</pre><script>alert(3)</script>",
    )


def task_of(candidate: Candidate, kind: str = "curation", slot: int = 0) -> ReviewTask:
    return ReviewTask.objects.get(candidate=candidate, kind=kind, slot=slot)


def record_decision(task_id: int, rater, decision: str, **details) -> Verdict:
    """``ReviewTask.decide`` on the task with this id, as the decide view calls it."""
    return ReviewTask.objects.get(pk=task_id).decide(rater, decision, **details)


def undo_last(rater) -> Verdict | None:
    return Verdict.objects.undo_last(rater)
