"""The adjudication page: the next candidate whose raters disagreed, for an adjudicator (or a
researcher), with every verdict and reason beside the whole candidate.

The decision posts to the same ``decide`` view as any other (an adjudication task's verdict has
kind ``adjudication``); review.majority makes it final for the review state, the exports and the
precision figures.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from relabel import display
from relabel.models import Candidate
from relabel.roles import require_role
from review.models import Comment, ReviewQueue, ReviewTask, Verdict
from review.queue import REMAINING_CAP
from review.views import shortcuts_on


def adjudication_context(task: ReviewTask) -> dict[str, Any]:
    candidate = Candidate.objects.select_related("trajectory", "item").get(pk=task.candidate_id)
    verdicts = (
        Verdict.objects.filter(candidate=candidate)
        .select_related("rater", "undone_by", "guidelines")
        .order_by("created_at", "id")
    )
    return {
        **display.candidate_display(candidate),
        "verdicts": verdicts,
        "comments": Comment.objects.shown_with(task).filter(candidate=candidate),
        "comment_on": candidate.pk,
        "hindsight_goal": candidate.hindsight_goal,
        "guidelines": task.queue.current_guidelines(),
        "blind": False,
    }


@require_GET
@require_role("adjudicator")
def adjudicate(request: HttpRequest) -> HttpResponse:
    """The next disagreement for me (my own lease first); never one I rated myself."""
    queues = ReviewQueue.objects.adjudication_ids_for(request.user)
    task = ReviewTask.objects.claim_next(request.user, queues=queues)
    context: dict[str, Any] = {
        "task": task,
        "remaining": ReviewTask.objects.in_queues(queues).remaining(REMAINING_CAP),
        "remaining_cap": REMAINING_CAP,
        "started_at": f"{time.time():.3f}",
        "reject_reasons": Verdict.REJECT_REASONS,
        "shortcuts_on": shortcuts_on(request.user),
        "can_undo": False,  # an adjudication is final: undone, if ever, by another adjudication
    }
    if task is not None:
        context.update(adjudication_context(task))
    return render(request, "review/adjudicate.html", context)
