"""Pages of the automatic side: home (datasets, runs, imports), uploads, starting a run, a run's
page and progress, its candidates, and one candidate with its history.

Every view checks its role first (relabel.roles.require_role) and fetches its object through one
helper per type. Pages work without JavaScript; htmx requests get the page's named partial.
"""

from __future__ import annotations

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

from relabel import display
from relabel.config import ConfigError
from relabel.consistency_view import consistency_display
from relabel.forms import CandidateFilterForm, StartRunForm, UploadForm, errors_text
from relabel.models import Candidate, Dataset, ImportJob, Run
from relabel.pipeline.summary import run_summary
from relabel.roles import has_role, require_role
from relabel.runs import start_run as start_a_run
from relabel.tasks import in_background, submit_job

PAGE_SIZE = 50


def htmx_template(request: HttpRequest, template: str, partial: str) -> str:
    """The page for a plain request, its named partial for an htmx one."""
    return f"{template}#{partial}" if request.htmx else template


def _get_run(run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("dataset", "created_by"), pk=run_id)


def _get_candidate(candidate_id: int) -> Candidate:
    related = Candidate.objects.select_related("trajectory", "item", "run__dataset")
    return get_object_or_404(related, pk=candidate_id)


# -- home ----------------------------------------------------------------------------------------


def dataset_rows() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(
        trajectory_count=Count("trajectories"),
        success_count=Count("trajectories", filter=Q(trajectories__success=True)),
        failure_count=Count("trajectories", filter=Q(trajectories__success=False)),
        unknown_count=Count("trajectories", filter=Q(trajectories__success__isnull=True)),
    )


def with_result(job: ImportJob) -> ImportJob:
    """The job with its result in words (``result_lines``) for the imports table."""
    job.result_lines = display.import_result(job.summary)
    return job


def home_page(
    request: HttpRequest,
    upload_form: UploadForm | None = None,
    run_form: StartRunForm | None = None,
) -> HttpResponse:
    """The home page; a form refused by the server comes back bound, with what was typed."""
    upload_form = upload_form or UploadForm(prefix="upload")
    run_form = run_form or StartRunForm(prefix="run")
    runs = Run.objects.select_related("dataset")[:20]
    context = {
        "datasets": dataset_rows(),
        "runs": [(run, run.counts()) for run in runs],
        "imports": [with_result(job) for job in ImportJob.objects.order_by("-id")[:10]],
        "upload_form": upload_form,
        "upload_errors": errors_text(upload_form) if upload_form.is_bound else "",
        "run_form": run_form,
        "run_errors": errors_text(run_form) if run_form.is_bound else "",
    }
    refused = upload_form.is_bound or run_form.is_bound
    return render(request, "relabel/home.html", context, status=400 if refused else 200)


@require_GET
@require_role("annotator")
def home(request: HttpRequest) -> HttpResponse:
    # Annotators work in the queue only.
    if not has_role(request.user, "researcher"):
        return redirect("review")
    return home_page(request)


@require_GET
@require_role("researcher")
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The polled progress of one run; answers 286 (stop polling) once the run has ended."""
    run = _get_run(run_id)
    context = {"run": run, "counts": run.counts()}
    response = render(request, "relabel/home.html#run-progress", context)
    return response if run.is_active else HttpResponseStopPolling(response.content)


@require_GET
@require_role("admin")
def import_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    job = with_result(get_object_or_404(ImportJob, pk=job_id))
    response = render(request, "relabel/home.html#import-row", {"job": job})
    return response if job.is_active else HttpResponseStopPolling(response.content)


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


def upload_message(request: HttpRequest, job: ImportJob) -> None:
    """Says how the upload went, as it stands now: never "importing" for an import that has
    already failed (without a broker it may have ended already)."""
    job.refresh_from_db(fields=["status", "error", "summary"])
    name = job.original_name
    if job.status == ImportJob.Status.FAILED:
        messages.error(request, f"{name} was not imported: {job.error}")
    elif job.status == ImportJob.Status.DONE:
        result = " ".join(display.import_result(job.summary))
        messages.success(request, f"Imported {name} into {job.dataset_name}: {result}")
    else:
        messages.info(request, f"Uploaded {name}: its import is listed under Imports below.")


@require_POST
@require_role("admin")
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES, prefix="upload")
    if not form.is_valid():
        return home_page(request, upload_form=form)
    with in_background(), transaction.atomic():
        job = save_upload(form, request.user)
        submit_job(job)
    upload_message(request, job)
    return redirect("home")


@require_POST
@require_role("admin")
def start_run(request: HttpRequest) -> HttpResponse:
    form = StartRunForm(request.POST, prefix="run")
    if not form.is_valid():
        return home_page(request, run_form=form)
    try:
        with in_background():
            run = start_a_run(
                form.cleaned_data["dataset"],
                backend=form.cleaned_data["backend"],
                config=form.config(),
                user=request.user,
            )
    except ConfigError as exc:  # a configuration the pipeline refuses, with its reason
        form.add_error(None, str(exc))
        return home_page(request, run_form=form)
    messages.success(request, f"Started run {run.pk} on {run.dataset.name}.")
    return redirect("run", run_id=run.pk)


# -- runs and candidates -------------------------------------------------------------------------


@require_GET
@require_role("researcher")
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run(run_id)
    counts = run.counts()
    context = {
        "run": run,
        "counts": counts,
        "charts": display.run_charts(counts),
        "histogram": display.confidence_histogram(run),
        "figures": display.run_figures(run_summary(run)),
        "configuration": display.run_configuration(run),
    }
    return render(request, "relabel/run.html", context)


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


def candidate_page_rows(run: Run, form: CandidateFilterForm) -> tuple[list[Candidate], str | None]:
    """One keyset page of the filtered candidates, and the cursor of the next page (or None)."""
    qs = filtered_candidates(run, form).select_related("trajectory", "item")
    qs = qs.only(
        "id", "confidence", "gate", "review_state", "final_goal", "run_id",
        "trajectory__external_id", "trajectory__source_format",
        "item__failure_type", "item__severity",
    )  # fmt: skip
    page = list(qs[: PAGE_SIZE + 1])
    if len(page) <= PAGE_SIZE:
        return page, None
    page = page[:PAGE_SIZE]
    return page, f"{page[-1].confidence!r}_{page[-1].pk}"


@require_GET
@require_role("researcher")
def candidates(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's candidates, filtered, one keyset page at a time (ordered by confidence, id)."""
    run = _get_run(run_id)
    form = CandidateFilterForm(request.GET)
    page, next_after = candidate_page_rows(run, form) if form.is_valid() else ([], None)
    context = {"run": run, "form": form, "page": page, "next_after": next_after}
    return render(request, htmx_template(request, "relabel/candidates.html", "results"), context)


@require_GET
@require_role("researcher")
def candidate_page(request: HttpRequest, candidate_id: int) -> HttpResponse:
    """One candidate with its full history: every verdict, undos included, and its queue slots
    (the review side's records of it, read through the candidate's relations)."""
    candidate = _get_candidate(candidate_id)
    context = display.candidate_display(candidate)
    context.update(consistency_display(candidate, context["steps"]))
    context["verdicts"] = candidate.verdicts.select_related("rater", "undoes").order_by("id")
    context["tasks"] = candidate.tasks.select_related("leased_to", "done_by").order_by(
        "kind", "slot"
    )
    return render(request, "relabel/candidate.html", context)
