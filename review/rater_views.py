"""Rater pages: every rater's figures for researchers (of a run, or of everything), one rater's
page with agreement and drift, and an annotator's own progress (nothing about anyone else).
"""

from __future__ import annotations

import statistics
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from relabel.models import Run
from relabel.roles import require_role
from review.models import ReviewQueue, ReviewTask, Verdict
from review.precision import charts
from review.precision.figures import min_verdicts
from review.precision.raters import rater_figures, team_figures


def _get_rater(user_id: int) -> AbstractBaseUser:
    return get_object_or_404(get_user_model(), pk=user_id)


def _picked_run(request: HttpRequest) -> Run | None:
    raw = request.GET.get("run", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404(f"run={raw!r} is not a run id")
    return get_object_or_404(Run.objects.select_related("dataset"), pk=int(raw))


@require_GET
@require_role("researcher")
def raters(request: HttpRequest) -> HttpResponse:
    """Every rater of a run (``?run=ID``) or of every run, side by side."""
    run = _picked_run(request)
    context = {
        "run": run,
        "rows": team_figures(run, min_verdicts()),
        "runs": Run.objects.select_related("dataset").order_by("-id")[:200],
    }
    return render(request, "review/raters.html", context)


@require_GET
@require_role("researcher")
def rater(request: HttpRequest, user_id: int) -> HttpResponse:
    """One rater: decisions, speed, shares, agreement with each other rater, accuracy, drift."""
    person = _get_rater(user_id)
    run = _picked_run(request)
    figures = rater_figures(person.pk, run, min_verdicts())
    context = {
        "person": person,
        "run": run,
        "f": figures,
        "drift_chart": charts.drift_chart(figures["drift"]),
    }
    return render(request, "review/rater.html", context)


def own_queues(user: AbstractBaseUser) -> list[dict[str, Any]]:
    """The queues I rate in, with what I did there and what is still open."""
    ids = ReviewQueue.objects.rating_ids_for(user)
    queues = ReviewQueue.objects.filter(pk__in=ids).select_related("run__dataset").order_by("id")
    counts = queues.annotate(
        mine=Count("tasks", filter=Q(tasks__done_by=user)),
        open=Count("tasks", filter=Q(tasks__done_at__isnull=True)),
    )
    return [{"queue": q, "mine": q.mine, "open": q.open} for q in counts]


@require_GET
@require_role("annotator")
def my_progress(request: HttpRequest) -> HttpResponse:
    """An annotator's own progress: their queues and their decisions, nobody else's."""
    user = request.user
    mine = Verdict.objects.standing().filter(rater=user).exclude(decision=Verdict.Decision.SKIP)
    seconds = [s for s in mine.values_list("seconds_spent", flat=True) if s is not None]
    context = {
        "queues": own_queues(user),
        "done_today": Verdict.objects.done_today(user),
        "decisions": mine.count(),
        "median_seconds": statistics.median(seconds) if seconds else None,
        "held": ReviewTask.objects.held_by(user).count(),
    }
    return render(request, "review/my_progress.html", context)
