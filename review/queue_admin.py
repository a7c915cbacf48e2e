"""Researcher pages of a run's queues: the list with progress, a new queue (by filter, or a
study), and one queue's members, guidelines (versioned) and whether it is open.

Every view checks its role first; one fetch helper per object type.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from relabel.forms import errors_text
from relabel.models import Run
from relabel.roles import require_role
from review.models import ReviewQueue
from review.queue import create_queue, default_queues
from review.queue_forms import QueueEditForm, QueueForm


def _get_run(run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)


def _get_queue(queue_id: int) -> ReviewQueue:
    return get_object_or_404(ReviewQueue.objects.select_related("run__dataset"), pk=queue_id)


def queue_rows(run: Run) -> list[dict[str, Any]]:
    queues = ReviewQueue.objects.for_run(run).prefetch_related("members", "member_groups")
    return [
        {
            "queue": queue,
            "progress": queue.progress(),
            "members": [u.username for u in queue.members.all()],
            "groups": [g.name for g in queue.member_groups.all()],
            "guidelines": queue.current_guidelines(),
        }
        for queue in queues.order_by("id")
    ]


@require_role("researcher")
def run_queues(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's queues with their progress; a researcher adds one here."""
    run = _get_run(run_id)
    default_queues(run)  # a run still running has its queues to set up already
    form = QueueForm(request.POST or None, run=run)
    if request.method == "POST":
        if form.is_valid():
            queue, added = create_queue(run, request.user, **form.queue_fields())
            messages.success(request, f"Queue {queue.name!r} made with {added} slots.")
            return redirect("queue_detail", queue_id=queue.pk)
        messages.error(request, f"Queue not made: {errors_text(form)}")
    context = {"run": run, "rows": queue_rows(run), "form": form}
    return render(request, "review/queues.html", context)


def edit_initial(queue: ReviewQueue) -> dict[str, Any]:
    guidelines = queue.current_guidelines()
    return {
        "members": list(queue.members.all()),
        "member_groups": list(queue.member_groups.all()),
        "guidelines": guidelines.text if guidelines else "",
        "active": queue.active,
    }


@require_role("researcher")
def queue_detail(request: HttpRequest, queue_id: int) -> HttpResponse:
    """One queue: members, guidelines and their versions, open or closed."""
    queue = _get_queue(queue_id)
    form = QueueEditForm(request.POST or None, initial=edit_initial(queue))
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            queue.members.set(data["members"])
            queue.member_groups.set(data["member_groups"])
            queue.active = data["active"]
            queue.save(update_fields=["active"])
            queue.set_guidelines(data["guidelines"], request.user)
            messages.success(request, f"Queue {queue.name!r} saved.")
            return redirect("queue_detail", queue_id=queue.pk)
        messages.error(request, f"Not saved: {errors_text(form)}")
    context = {
        "queue": queue,
        "form": form,
        "progress": queue.progress(),
        "versions": queue.guideline_versions.order_by("-version").select_related("created_by"),
        "current": queue.current_guidelines(),
    }
    return render(request, "review/queue_detail.html", context)
