"""Pages of the studio: home, the review queue, decisions, browsing candidates, runs.

Every view checks its role first (relabel.roles.require_role). Pages work without JavaScript;
htmx requests get the page's named partial instead of the whole page.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import get_valid_filename
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from relabel.models import Candidate, Dataset, ImportJob, Run, RunItem
from relabel.pipeline import outcomes, runner
from relabel.roles import has_role, require_role
from relabel.tasks.imports import import_upload
from review import display, queue
from review.decisions import (
    REJECT_REASONS,
    DecisionError,
    last_undoable,
    record_decision,
    seconds_since,
    undo_last,
)
from review.forms import CandidateFilterForm, DecisionForm, StartRunForm, UploadForm
from review.models import ReviewTask

PAGE_SIZE = 50
ACTIVE_RUN = (Run.Status.PENDING, Run.Status.RUNNING)
ACTIVE_IMPORT = (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)


def partial(request: HttpRequest, template: str, name: str) -> str:
    return f"{template}#{name}" if request.htmx else template


# -- home ----------------------------------------------------------------------------------------


def run_progress(run: Run) -> dict[str, Any]:
    """How far a run is: its items handled out of all its items (made when it starts)."""
    counts = RunItem.objects.filter(run=run).aggregate(
        total=Count("id"), done=Count("id", filter=~Q(status=RunItem.Status.PENDING))
    )
    total, done = counts["total"], counts["done"]
    return {
        "run": run,
        "done": done,
        "total": total,
        "percent": round(100 * done / total) if total else 0,
        "active": run.status in ACTIVE_RUN,
    }


def dataset_rows() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(
        trajectory_count=Count("trajectories"),
        success_count=Count("trajectories", filter=Q(trajectories__success=True)),
        failure_count=Count("trajectories", filter=Q(trajectories__success=False)),
        unknown_count=Count("trajectories", filter=Q(trajectories__success__isnull=True)),
    )


@require_GET
@require_role("annotator")
def home(request: HttpRequest) -> HttpResponse:
    # Annotators work in the queue only.
    if not has_role(request.user, "researcher"):
        return redirect("review")
    runs = Run.objects.select_related("dataset")[:20]
    context = {
        "datasets": dataset_rows(),
        "runs": [run_progress(run) for run in runs],
        "imports": ImportJob.objects.order_by("-id")[:10],
        "upload_form": UploadForm(),
        "run_form": StartRunForm(),
        "active_imports": ACTIVE_IMPORT,
    }
    return render(request, "review/home.html", context)


@require_GET
@require_role("researcher")
def run_progress_fragment(request: HttpRequest, run_id: int) -> HttpResponse:
    """The polled progress of one run; answers 286 (stop polling) once the run has ended."""
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)
    progress = run_progress(run)
    response = render(request, "review/home.html#run-progress", {"p": progress})
    if progress["active"]:
        return response
    return HttpResponseStopPolling(response.content)


@require_GET
@require_role("admin")
def import_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(ImportJob, pk=job_id)
    response = render(
        request, "review/home.html#import-row", {"job": job, "active_imports": ACTIVE_IMPORT}
    )
    if job.status in ACTIVE_IMPORT:
        return response
    return HttpResponseStopPolling(response.content)


def save_upload(form: UploadForm, user: Any) -> ImportJob:
    """Stores the uploaded file under UPLOAD_ROOT and records the job that will import it."""
    upload = form.cleaned_data["file"]
    folder = settings.UPLOAD_ROOT / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (get_valid_filename(upload.name) or "upload")
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return ImportJob.objects.create(
        dataset_name=form.cleaned_data["dataset"],
        format=form.cleaned_data["format"],
        mapping=form.cleaned_data["mapping"],
        success_score=form.cleaned_data["success_score"],
        path=str(path),
        original_name=upload.name,
        created_by=user,
    )


def form_errors(form: Any) -> str:
    return "; ".join(
        f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
        for name, errors in form.errors.items()
    )


@require_POST
@require_role("admin")
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, f"Upload refused: {form_errors(form)}")
        return redirect("home")
    with transaction.atomic():
        job = save_upload(form, request.user)
        import_upload.delay_on_commit(job.id)
    messages.success(request, f"Importing {job.original_name} into {job.dataset_name}.")
    return redirect("home")


@require_POST
@require_role("admin")
def start_run(request: HttpRequest) -> HttpResponse:
    form = StartRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Run not started: {form_errors(form)}")
        return redirect("home")
    try:
        run = runner.start_run(
            form.cleaned_data["dataset"],
            backend=form.cleaned_data["backend"],
            config=form.config(),
            user=request.user,
        )
    except ValueError as exc:  # a configuration the pipeline refuses, with its reason
        messages.error(request, f"Run not started: {exc}")
        return redirect("home")
    messages.success(request, f"Started run {run.pk} on {run.dataset.name}.")
    return redirect("run", run_id=run.pk)


# -- runs and candidates -------------------------------------------------------------------------


def review_counts(run: Run) -> dict[str, Any]:
    tasks = ReviewTask.objects.filter(candidate__run=run)
    return tasks.aggregate(
        curation=Count("id", filter=Q(kind="curation")),
        curation_done=Count("id", filter=Q(kind="curation", done_at__isnull=False)),
        audit=Count("id", filter=Q(kind="audit")),
        audit_done=Count("id", filter=Q(kind="audit", done_at__isnull=False)),
    )


@require_GET
@require_role("researcher")
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("dataset", "created_by"), pk=run_id)
    context = {
        "run": run,
        "p": run_progress(run),
        "summary": outcomes.run_summary(run),
        "review": review_counts(run),
    }
    return render(request, "review/run.html", context)


def filtered_candidates(run: Run, form: CandidateFilterForm) -> QuerySet[Candidate]:
    data = form.cleaned_data
    qs = Candidate.objects.for_run(run)
    for field, value in (
        ("gate", data["gate"]),
        ("review_state", data["review_state"]),
        ("item__failure_type", data["failure_type"]),
        ("trajectory__source_format", data["benchmark"]),
    ):
        if value:
            qs = qs.filter(**{field: value})
    if data["min_confidence"] is not None:
        qs = qs.filter(confidence__gte=data["min_confidence"])
    if data["max_confidence"] is not None:
        qs = qs.filter(confidence__lte=data["max_confidence"])
    if cursor := form.cursor():
        confidence, pk = cursor
        qs = qs.filter(Q(confidence__gt=confidence) | Q(confidence=confidence, pk__gt=pk))
    return qs.order_by("confidence", "id")


@require_GET
@require_role("researcher")
def candidates(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's candidates, filtered, one keyset page at a time (ordered by confidence, id)."""
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)
    form = CandidateFilterForm(request.GET)
    page: list[Candidate] = []
    next_after = None
    if form.is_valid():
        qs = filtered_candidates(run, form).select_related("trajectory", "item")
        qs = qs.only(
            "id", "confidence", "gate", "review_state", "final_goal", "run_id",
            "trajectory__external_id", "trajectory__source_format",
            "item__failure_type", "item__severity",
        )  # fmt: skip
        page = list(qs[: PAGE_SIZE + 1])
        if len(page) > PAGE_SIZE:
            page = page[:PAGE_SIZE]
            next_after = f"{page[-1].confidence!r}_{page[-1].pk}"
    context = {"run": run, "form": form, "page": page, "next_after": next_after}
    return render(request, partial(request, "review/candidates.html", "results"), context)


def candidate_display(candidate: Candidate) -> dict[str, Any]:
    """Everything the full (non-blind) view of a candidate shows."""
    steps = display.trajectory_steps(candidate.trajectory)
    original, hindsight = display.word_diff(candidate.trajectory.goal, candidate.hindsight_goal)
    return {
        "candidate": candidate,
        "trajectory": candidate.trajectory,
        "steps": steps,
        "original_diff": original,
        "hindsight_diff": hindsight,
        "achievements": display.achievements(candidate, len(steps)),
        "judges": display.judge_rows(candidate),
    }


@require_GET
@require_role("researcher")
def candidate_page(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """One candidate with its full history: every verdict, undos included, and its tasks."""
    candidate = get_object_or_404(
        Candidate.objects.select_related("trajectory", "item", "run__dataset"), pk=candidate_id
    )
    context = candidate_display(candidate)
    context["verdicts"] = candidate.verdicts.select_related("rater", "undoes").order_by("id")
    context["tasks"] = candidate.tasks.select_related("leased_to", "done_by").order_by(
        "kind", "slot"
    )
    return render(request, "review/candidate.html", context)


# -- the queue -----------------------------------------------------------------------------------


def queue_context(request: HttpRequest, task: ReviewTask | None) -> dict[str, Any]:
    user = request.user
    context: dict[str, Any] = {
        "task": task,
        "done_today": queue.done_today(user),
        "remaining": queue.remaining_count(),
        "remaining_cap": queue.REMAINING_CAP,
        "can_undo": last_undoable(user) is not None,
        "started_at": f"{time.time():.3f}",
        "reject_reasons": REJECT_REASONS,
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
        context.update(candidate_display(candidate), blind=False)
    return context


def show_next(request: HttpRequest, notice: str = "") -> HttpResponse:
    task = queue.next_task_for(request.user)
    context = queue_context(request, task)
    context["notice"] = notice
    return render(request, partial(request, "review/queue.html", "review"), context)


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
    get_object_or_404(ReviewTask.objects.only("id"), pk=task_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return after_decision(request, f"Not recorded: {form_errors(form)}")
    data = form.cleaned_data
    try:
        record_decision(
            task_id,
            request.user,
            data["decision"],
            edited_goal=data["edited_goal"],
            reason_code=data["reason_code"],
            reason=data["reason"],
            seconds_spent=seconds_since(data["started_at"]),
        )
    except DecisionError as exc:
        return after_decision(request, f"Not recorded: {exc}")
    return after_decision(request)


@require_POST
@require_role("annotator")
def undo(request: HttpRequest) -> HttpResponse:
    undone = undo_last(request.user)
    return after_decision(request, "" if undone else "Nothing to undo.")
