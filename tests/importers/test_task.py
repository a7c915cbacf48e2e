from __future__ import annotations

import pytest

from relabel.models import ImportJob, Trajectory
from relabel.tasks import run_job
from tests.importers.conftest import agenther_record, write_json


def import_upload(job_id: int) -> None:
    """The task an upload submits, run here and now."""
    run_job.delay("relabel.ImportJob", job_id)


def job_for(path, **fields) -> ImportJob:
    fields.setdefault("original_name", "my-runs.json")
    return ImportJob.objects.create(dataset_name="uploads", path=str(path), **fields)


@pytest.mark.django_db
def test_it_imports_an_upload_and_stores_the_summary(tmp_path):
    job = job_for(
        write_json(tmp_path, "upload-1.json", [agenther_record("a"), agenther_record("b")])
    )
    import_upload(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.finished_at
    assert job.summary["imported"] == 2 and job.summary["dataset"] == "uploads"
    assert (job.progress, job.total) == (1, 1)


@pytest.mark.django_db
def test_it_fails_with_a_clear_error_naming_the_uploaded_file(tmp_path):
    bad = write_json(tmp_path, "upload-2.json", [{"trajectory_id": "x", "steps": []}])
    job = job_for(bad)
    import_upload(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and job.finished_at
    assert job.error.startswith("my-runs.json: record 1 (id 'x')") and "missing goal" in job.error
    assert str(bad) not in job.error
    assert not Trajectory.objects.exists()


@pytest.mark.django_db
def test_it_does_not_run_a_finished_job_again(tmp_path):
    path = write_json(tmp_path, "upload-3.json", [agenther_record("a")])
    job = job_for(path, status=ImportJob.Status.DONE, summary={"imported": 1})
    import_upload(job.pk)
    job.refresh_from_db()
    assert job.summary == {"imported": 1} and not Trajectory.objects.exists()


@pytest.mark.django_db
def test_it_honours_the_format_chosen_at_upload(tmp_path):
    path = write_json(tmp_path, "upload-4.json", [agenther_record("a")])
    job = job_for(path, format="tau-bench")
    import_upload(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "task_id and traj" in job.error
