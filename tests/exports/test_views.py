from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.urls import reverse
from django.utils import timezone

from relabel.tasks import run_job
from review.models import ExportJob
from tests.exports.checks import read_jsonl


@pytest.fixture(autouse=True)
def export_root(tmp_path, settings):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def start_export(client, run, django_capture_on_commit_callbacks, **fields):
    data = {"run": run.pk, "format": "sft", "observation_tokens": 2048, **fields}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("exports:index"), data)


def test_an_admin_exports_from_the_page_and_downloads_the_file(
    admin_client_, reviewed_run, django_capture_on_commit_callbacks
):
    response = start_export(
        admin_client_, reviewed_run.run, django_capture_on_commit_callbacks, format="sharegpt"
    )
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:detail", args=[job.pk])
    assert job.status == "done" and job.progress == job.total == 3
    assert job.created_by.username == "adam" and job.manifest["created_by"] == "adam"
    page = admin_client_.get(response["Location"])
    assert page.status_code == 200
    assert b"sharegpt.jsonl" in page.content and b"dataset_info.json" in page.content
    download = admin_client_.get(reverse("exports:download", args=[job.pk, "sharegpt.jsonl"]))
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    body = b"".join(download.streaming_content).decode()
    assert len(body.splitlines()) == 3


def test_the_form_refuses_filters_that_do_not_fit_the_format(
    admin_client_, reviewed_run, django_capture_on_commit_callbacks
):
    response = start_export(
        admin_client_, reviewed_run.run, django_capture_on_commit_callbacks, csv="on"
    )
    assert response.status_code == 200
    assert b"--csv applies to the verdicts format only" in response.content
    assert not ExportJob.objects.exists()


def test_polling_goes_on_while_running_and_stops_when_done(admin_client_, reviewed_run):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft", status="running")
    url = reverse("exports:detail", args=[job.pk])
    running = admin_client_.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and b'hx-trigger="every 1s"' in running.content
    assert b"<html" not in running.content
    ExportJob.objects.filter(pk=job.pk).update(status="failed", error="boom")
    done = admin_client_.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286 and b"hx-trigger" not in done.content
    assert b"boom" in done.content


@pytest.mark.parametrize(
    "name", ["../manifest.json", "..%2Fmanifest.json", "notes.txt", "sft.jsonl.part"]
)
def test_only_the_exports_own_files_can_be_downloaded(
    admin_client_, reviewed_run, django_capture_on_commit_callbacks, name
):
    start_export(admin_client_, reviewed_run.run, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    url = reverse("exports:detail", args=[job.pk]) + "files/" + name
    assert admin_client_.get(url).status_code == 404


def test_a_done_job_without_a_directory_serves_nothing(admin_client_, reviewed_run):
    job = ExportJob.objects.create(
        run=reviewed_run.run, format="sft", status="done", manifest={"files": []}
    )
    url = reverse("exports:download", args=[job.pk, "manifest.json"])
    assert admin_client_.get(url).status_code == 404


def test_a_file_of_an_unfinished_export_is_not_served(admin_client_, reviewed_run):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft", status="running")
    url = reverse("exports:download", args=[job.pk, "sft.jsonl"])
    assert admin_client_.get(url).status_code == 404


@pytest.mark.parametrize("persona", ["annotator_client", "researcher_client"])
def test_non_admins_can_neither_export_nor_download(
    request, persona, reviewed_run, admin_client_, django_capture_on_commit_callbacks
):
    start_export(admin_client_, reviewed_run.run, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    client = request.getfixturevalue(persona)
    assert client.get(reverse("exports:index")).status_code == 403
    data = {"run": reviewed_run.run.pk, "format": "sft", "observation_tokens": 10}
    assert client.post(reverse("exports:index"), data).status_code == 403
    assert client.get(reverse("exports:detail", args=[job.pk])).status_code == 403
    download = reverse("exports:download", args=[job.pk, "sft.jsonl"])
    assert client.get(download).status_code == 403
    assert ExportJob.objects.count() == 1


def test_anonymous_visitors_are_sent_to_login(client, reviewed_run):
    response = client.get(reverse("exports:index"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_task_leaves_a_finished_job_alone(reviewed_run, export_root):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft", status="done")
    run_job("review.ExportJob", job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.directory == ""


def test_the_task_writes_a_pending_job_and_records_its_manifest(reviewed_run, export_root):
    job = ExportJob.objects.create(run=reviewed_run.run, format="verdicts", filters={"csv": False})
    run_job("review.ExportJob", job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.manifest["total_rows"] == 7
    assert len(read_jsonl(export_root / f"job-{job.pk}" / "verdicts.jsonl")) == 7


def test_a_failing_export_is_marked_failed_with_the_reason(reviewed_run, export_root):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft", filters={"csv": True})
    run_job("review.ExportJob", job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "--csv applies to the verdicts format only" in job.error


def test_an_export_a_worker_is_writing_is_never_handed_to_a_second_worker(reviewed_run):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft")
    first = ExportJob.objects.get(pk=job.pk)
    assert first.claim()
    second = ExportJob.objects.get(pk=job.pk)  # the same task delivered again meanwhile
    assert not second.claim()
    assert 3600 < second.busy_for() <= ExportJob.TIME_LIMIT
    assert ExportJob.objects.get(pk=job.pk).status == "running"


def test_an_export_whose_worker_died_is_taken_over_once_its_lease_is_over(reviewed_run):
    over = timezone.now() - timedelta(seconds=1)
    job = ExportJob.objects.create(
        run=reviewed_run.run, format="sft", status="running", lease_until=over
    )
    assert job.claim() and job.lease_until > timezone.now()


def test_a_redelivered_task_of_a_held_export_waits_for_the_lease(reviewed_run, monkeypatch):
    job = ExportJob.objects.create(run=reviewed_run.run, format="sft")
    assert ExportJob.objects.get(pk=job.pk).claim()  # another worker is writing it
    with pytest.raises(Retry):
        run_job.apply(("review.ExportJob", job.pk), throw=True)
    job.refresh_from_db()
    assert job.status == "running" and job.directory == ""  # nothing written twice


def test_the_broker_never_redelivers_a_task_that_may_still_be_running(settings):
    longest = max(settings.CELERY_TASK_TIME_LIMIT, ExportJob.TIME_LIMIT)
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > longest
