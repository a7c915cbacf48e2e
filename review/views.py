"""The review queue: the next candidate for me (from the queues I rate in, or the one I chose),
my decision on it, undo, my keyboard setting, and a run's review progress.

Every view checks its role first (relabel.roles.require_role). Pages work without JavaScript;
htmx requests get the page's named partial instead of the whole page.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
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
from review.models import (
    Comment,
    DecisionError,
    RaterSettings,
    ReviewQueue,
    ReviewTask,
    Verdict,
)
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


def shortcuts_on(user: AbstractBaseUser) -> bool:
    chosen = RaterSettings.objects.filter(user=user).values_list("single_key_shortcuts", flat=True)
    return next(iter(chosen), True)


def item_context(task: ReviewTask, user: AbstractBaseUser) -> dict[str, Any]:
    """What one item shows. A blind (audit) item gets the trajectory, the hindsight goal and where
    it comes from, nothing that hints at the gate: no confidence, judges or original goal."""
    candidate = Candidate.objects.select_related("trajectory__dataset", "item").get(
        pk=task.candidate_id
    )
    trajectory = candidate.trajectory
    if task.kind == ReviewTask.Kind.AUDIT:
        # Blind: the goal that would be exported (a re-audited edit shows the edited goal).
        context = {**display.trajectory_display(trajectory), "blind": True, "alternatives": []}
        context["hindsight_goal"] = candidate.final_goal
    else:
        context = {**display.candidate_display(candidate), "blind": False}
        context.update(consistency_display(candidate, context["steps"]))
        context["hindsight_goal"] = candidate.hindsight_goal
    context["guidelines"] = task.queue.current_guidelines()
    # On a blind item, no one else's comments (shown_with decides); the form is on every item.
    context["comments"] = Comment.objects.shown_with(task, user).filter(candidate=candidate)
    context["comment_on"] = candidate.pk
    context["source"] = {
        "trajectory": trajectory.external_id,
        "dataset": trajectory.dataset.name,
        "benchmark": trajectory.get_source_format_display(),
        "run": candidate.run_id,
    }
    return context


def announcement(context: dict[str, Any]) -> str:
    """What the page's live region says when an item comes in (after a decision)."""
    remaining = context["remaining"]
    left = f"{REMAINING_CAP}+ remain" if remaining > REMAINING_CAP else f"{remaining} left"
    if context["task"] is None:
        return "Nothing left for you in the queue."
    source = context["source"]
    return f"Next item: trajectory {source['trajectory']} from {source['dataset']}. {left}."


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
        "shortcuts_on": shortcuts_on(user),
    }
    if task is not None:
        context.update(item_context(task, user))
    context["announce"] = announcement(context)
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


def edit_details(task: ReviewTask, data: dict[str, Any]) -> dict[str, str]:
    """An edit's goal and where it came from: typed, or one of the relabeler's attempts."""
    if data["decision"] != "edit":
        return {"edited_goal": data["edited_goal"]}
    if data["attempt"] is None:
        return {"edited_goal": data["edited_goal"], "edit_source": "typed"}
    goal = display.attempt_goal(task.candidate, data["attempt"])
    if goal is None:
        raise DecisionError(f"attempt: the relabeler made no attempt {data['attempt']} to pick")
    return {"edited_goal": goal, "edit_source": f"attempt:{data['attempt']}"}


@require_POST
@require_role("annotator")
def decide(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(ReviewTask.objects.select_related("candidate"), pk=task_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return after_decision(request, f"Not recorded: {errors_text(form)}", task.kind)
    data = form.cleaned_data
    try:
        task.check_decidable_by(request.user)  # before reading the candidate's attempts
        task.decide(
            request.user,
            data["decision"],
            **edit_details(task, data),
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


@require_POST
@require_role("annotator")
def shortcuts(request: HttpRequest) -> HttpResponse:
    """Turns my single-key shortcuts on or off (WCAG 2.1.4); the page's script asks in the
    background (204), a plain form comes back to the queue."""
    on = request.POST.get("single_key_shortcuts") == "on"
    RaterSettings.objects.update_or_create(user=request.user, defaults={"single_key_shortcuts": on})
    if request.htmx:
        return HttpResponse(status=204)
    messages.info(request, f"Single-key shortcuts are {'on' if on else 'off'}.")
    return redirect("review")


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
