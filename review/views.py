"""The review queue: the next candidate for me (from the queues I rate in, or the one I chose),
my decision on it, undo, and a run's review progress.

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
from review.models import Comment, DecisionError, ReviewQueue, ReviewTask, Verdict
from review.queue import REMAINING_CAP

# The queue a rater chose to work in (GET /review/?queue=ID), kept in the session so that
# decisions, which post no scope, serve the next item from the same queue.
SCOPE_KEY = "review_queue"


def seconds_since(started_at: str, now: datetime | None = None) -> float | None:
    """Seconds since a page's hidden started-at value (epoch seconds); None if unusable."""
    try:
        started = float(started_at)
    except (TypeError, ValueError):
        return None
    spent = (now or timezone.now()).timestamp() - started
    # A clock skew or a tab left open overnight is not time spent rating.
    return round(spent, 2) if 0 <= spent <= 6 * 3600 else None


def my_queues(request: HttpRequest) -> tuple[list[int], ReviewQueue | None]:
    """The queues this request serves from: the one the rater chose, if they still rate in it,
    else every queue they rate in; and the chosen queue."""
    ids = ReviewQueue.objects.rating_ids_for(request.user)
    chosen = request.session.get(SCOPE_KEY)
    if chosen in ids:
        return [chosen], ReviewQueue.objects.get(pk=chosen)
    return ids, None


def queue_context(
    request: HttpRequest, task: ReviewTask | None, queues: list[int] | None = None
) -> dict[str, Any]:
    user = request.user
    queues = my_queues(request)[0] if queues is None else queues
    context: dict[str, Any] = {
        "task": task,
        "done_today": Verdict.objects.done_today(user),
        "remaining": ReviewTask.objects.in_queues(queues).remaining(REMAINING_CAP),
        "remaining_cap": REMAINING_CAP,
        "can_undo": Verdict.objects.last_undoable(user) is not None,
        "started_at": f"{time.time():.3f}",
        "reject_reasons": Verdict.REJECT_REASONS,
    }
    if task is None:
        return context
    candidate = Candidate.objects.select_related("trajectory", "item").get(pk=task.candidate_id)
    context["guidelines"] = task.queue.current_guidelines()
    context["comments"] = Comment.objects.shown_with(task).filter(candidate=candidate)
    if task.kind == ReviewTask.Kind.AUDIT:
        # Blind: the trajectory and the goal that would be exported (a re-audited edit shows the
        # edited goal), nothing that hints at the gate, and no one else's comments.
        context.update(
            blind=True,
            hindsight_goal=candidate.final_goal,
            trajectory=candidate.trajectory,
            steps=display.trajectory_steps(candidate.trajectory),
        )
    else:
        context.update(display.candidate_display(candidate), blind=False)
        context.update(consistency_display(candidate, context["steps"]))
    return context


def show_next(request: HttpRequest, notice: str = "") -> HttpResponse:
    queues, chosen = my_queues(request)
    task = ReviewTask.objects.claim_next(request.user, queues=queues)
    context = queue_context(request, task, queues)
    context.update(notice=notice, chosen_queue=chosen)
    return render(request, htmx_template(request, "review/queue.html", "review"), context)


def choose_queue(request: HttpRequest) -> None:
    """``?queue=ID`` works in one of my queues only, ``?queue=all`` in all of them again."""
    raw = request.GET.get("queue", "")
    if raw == "all":
        request.session.pop(SCOPE_KEY, None)
    elif raw.isdigit() and int(raw) in ReviewQueue.objects.rating_ids_for(request.user):
        request.session[SCOPE_KEY] = int(raw)


@require_GET
@require_role("annotator")
def review(request: HttpRequest) -> HttpResponse:
    """The next candidate for me (my own lease first)."""
    choose_queue(request)
    return show_next(request)


def after_decision(request: HttpRequest, notice: str = "", kind: str = "") -> HttpResponse:
    """htmx swaps the next candidate in; without JavaScript, redirect back to the queue (or to
    adjudication, for an adjudicator's decision)."""
    if kind == ReviewTask.Kind.ADJUDICATION:
        if notice:
            messages.error(request, notice)
        return redirect("adjudicate")
    if request.htmx:
        return show_next(request, notice)
    if notice:
        messages.error(request, notice)
    return redirect("review")


@require_POST
@require_role("annotator")
def decide(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(ReviewTask.objects.only("id", "kind"), pk=task_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return after_decision(request, f"Not recorded: {errors_text(form)}", task.kind)
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
        return after_decision(request, f"Not recorded: {exc}", task.kind)
    return after_decision(request, kind=task.kind)


@require_POST
@require_role("annotator")
def undo(request: HttpRequest) -> HttpResponse:
    try:
        undone = Verdict.objects.undo_last(request.user)
    except DecisionError as exc:
        return after_decision(request, f"Not undone: {exc}")
    return after_decision(request, "" if undone else "Nothing to undo.")


@require_GET
@require_role("researcher")
def run_review(request: HttpRequest, run_id: int) -> HttpResponse:
    """How far people are with a run's review work (embedded in the run page by htmx)."""
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)
    queues = list(ReviewQueue.objects.for_run(run).order_by("id"))
    context = {
        "run": run,
        "review": ReviewTask.objects.for_run(run).counts(),
        "queues": [(queue, queue.progress()) for queue in queues],
    }
    return render(request, htmx_template(request, "review/run_review.html", "progress"), context)
