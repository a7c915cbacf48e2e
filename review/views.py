"""The review queue: the next candidate for me, my decision on it, undo, and a run's review
progress.

Every view checks its role first (relabel.roles.require_role). Pages work without JavaScript;
htmx requests get the page's named partial instead of the whole page.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from relabel import display
from relabel.consistency_view import consistency_display
from relabel.forms import errors_text
from relabel.models import Candidate, Run
from relabel.roles import require_role
from relabel.views import htmx_template
from review.forms import DecisionForm
from review.models import DecisionError, ReviewTask, Verdict
from review.queue import REMAINING_CAP


def seconds_since(started_at: str, now: datetime | None = None) -> float | None:
    """Seconds since a page's hidden started-at value (epoch seconds); None if unusable."""
    try:
        started = float(started_at)
    except (TypeError, ValueError):
        return None
    spent = (now or timezone.now()).timestamp() - started
    # A clock skew or a tab left open overnight is not time spent rating.
    return round(spent, 2) if 0 <= spent <= 6 * 3600 else None


def queue_context(request: HttpRequest, task: ReviewTask | None) -> dict[str, Any]:
    user = request.user
    context: dict[str, Any] = {
        "task": task,
        "done_today": Verdict.objects.done_today(user),
        "remaining": ReviewTask.objects.remaining(REMAINING_CAP),
        "remaining_cap": REMAINING_CAP,
        "can_undo": Verdict.objects.last_undoable(user) is not None,
        "started_at": f"{time.time():.3f}",
        "reject_reasons": Verdict.REJECT_REASONS,
    }
    if task is None:
        return context
    candidate = Candidate.objects.select_related("trajectory", "item").get(pk=task.candidate_id)
    if task.kind == ReviewTask.Kind.AUDIT:
        # Blind: the trajectory and the hindsight goal, nothing that hints at the gate.
        context.update(
            blind=True,
            hindsight_goal=candidate.hindsight_goal,
            trajectory=candidate.trajectory,
            steps=display.trajectory_steps(candidate.trajectory),
        )
    else:
        context.update(display.candidate_display(candidate), blind=False)
        context.update(consistency_display(candidate, context["steps"]))
    return context


def show_next(request: HttpRequest, notice: str = "") -> HttpResponse:
    task = ReviewTask.objects.claim_next(request.user)
    context = queue_context(request, task)
    context["notice"] = notice
    return render(request, htmx_template(request, "review/queue.html", "review"), context)


@require_GET
@require_role("annotator")
def review(request: HttpRequest) -> HttpResponse:
    """The next candidate for me (my own lease first)."""
    return show_next(request)


def after_decision(request: HttpRequest, notice: str = "") -> HttpResponse:
    """htmx swaps the next candidate in; without JavaScript, redirect back to the queue."""
    if request.htmx:
        return show_next(request, notice)
    if notice:
        messages.error(request, notice)
    return redirect("review")


@require_POST
@require_role("annotator")
def decide(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(ReviewTask.objects.only("id"), pk=task_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return after_decision(request, f"Not recorded: {errors_text(form)}")
    data = form.cleaned_data
    try:
        task.decide(
            request.user,
            data["decision"],
            edited_goal=data["edited_goal"],
            reason_code=data["reason_code"],
            reason=data["reason"],
            seconds_spent=seconds_since(data["started_at"]),
            edited_rewrites=data["edited_rewrites"],
        )
    except DecisionError as exc:
        return after_decision(request, f"Not recorded: {exc}")
    return after_decision(request)


@require_POST
@require_role("annotator")
def undo(request: HttpRequest) -> HttpResponse:
    undone = Verdict.objects.undo_last(request.user)
    return after_decision(request, "" if undone else "Nothing to undo.")


@require_GET
@require_role("researcher")
def run_review(request: HttpRequest, run_id: int) -> HttpResponse:
    """How far people are with a run's review work (embedded in the run page by htmx)."""
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)
    context = {"run": run, "review": ReviewTask.objects.for_run(run).counts()}
    return render(request, htmx_template(request, "review/run_review.html", "progress"), context)
