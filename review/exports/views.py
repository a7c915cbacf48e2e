"""The export page (admins only): choose run, format and filters; the export runs as a
background task; progress is polled with htmx; the files are downloaded from the page."""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseStopPolling

from relabel.roles import require_role
from relabel.tasks import in_background, submit_job
from review.exports.forms import ExportForm
from review.exports.writer import KNOWN_FILES
from review.models import ExportJob


def _get_job(job_id: int) -> ExportJob:
    return get_object_or_404(
        ExportJob.objects.select_related("run", "run__dataset", "created_by"), pk=job_id
    )


@require_role("admin")
def index(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        options = form.options
        job = ExportJob.objects.create(
            run=form.cleaned_data["run"],
            format=options.format,
            filters=options.as_filters(),
            created_by=request.user,
        )
        with in_background():  # without a broker: a thread, so the page shows the progress
            submit_job(job)
        return redirect("exports:detail", job_id=job.pk)
    jobs = ExportJob.objects.select_related("run", "run__dataset", "created_by").order_by("-id")
    return render(request, "exports/index.html", {"form": form, "jobs": jobs[:20]})


@require_role("admin")
def detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job(job_id)
    context = {"job": job, "finished": not job.is_active}
    if request.htmx:
        html = render_to_string("exports/detail.html#progress", context, request=request)
        # 286 tells htmx to stop polling; the finished state is still swapped in.
        return HttpResponseStopPolling(html) if context["finished"] else HttpResponse(html)
    return render(request, "exports/detail.html", context)


def _served_files(job: ExportJob) -> set[str]:
    """Only names the export wrote and recorded: never a path from the request."""
    listed = {f.get("name") for f in (job.manifest or {}).get("files", [])}
    return (listed | {"manifest.json"}) & KNOWN_FILES


@require_role("admin")
def download(request: HttpRequest, job_id: int, name: str) -> FileResponse:
    job = _get_job(job_id)
    if job.status != ExportJob.Status.DONE or name not in _served_files(job):
        raise Http404("no such file in this export")
    if not Path(job.directory).is_absolute():  # never a path relative to the server's cwd
        raise Http404("this export has no directory")
    path = Path(job.directory) / name
    if not path.is_file():
        raise Http404("the export's files are gone from the server")
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"run{job.run_id}-{name}")
