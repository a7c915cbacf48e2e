"""Uploads through the admin's home page: archives (a BrowserGym results folder) and a field
mapping for message logs, imported in the background like any upload."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from relabel.models import ImportJob, Trajectory
from tests.importers.conftest import bg_step, browsergym_task


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    return settings.UPLOAD_ROOT


def upload(client, name: str, content: bytes, capture, **fields) -> ImportJob:
    fields = {
        "file": SimpleUploadedFile(name, content),
        "dataset": "up",
        "format": "auto",
        **fields,
    }
    data = {f"upload-{key}": value for key, value in fields.items()}  # the form's prefix
    with capture(execute=True):
        response = client.post(reverse("upload"), data)
    assert response.status_code == 302
    return ImportJob.objects.get()


def results_folder(tmp_path):
    root = tmp_path / "results"
    goal = "Find the opening hours of the bike shop"
    browsergym_task(
        root,
        "task_7",
        [
            bg_step(0, goal, "RootWebArea 'Shops'", "click('12')"),
            bg_step(1, goal, "RootWebArea 'Velo Corner' StaticText 'Sun 10-16'", None, reward=1.0),
        ],
    )
    browsergym_task(
        root,
        "task_9",
        [
            bg_step(0, goal, "RootWebArea 'Shops'", "click('13')"),
            bg_step(1, goal, "RootWebArea 'Bakery'", None, reward=0.0),
        ],
    )
    return root


def test_a_tar_gz_of_a_browsergym_results_folder_imports_every_task(
    admin_client_, uploads, tmp_path, django_capture_on_commit_callbacks
):
    root = results_folder(tmp_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(root, arcname="results")
    job = upload(
        admin_client_, "webarena.tar.gz", buffer.getvalue(), django_capture_on_commit_callbacks
    )
    assert job.status == "done", job.error
    assert job.summary["format"] == "browsergym" and job.summary["imported"] == 2
    assert set(Trajectory.objects.values_list("external_id", "success")) == {
        ("task_7", True),
        ("task_9", False),
    }


def test_a_zip_that_would_write_outside_the_upload_is_refused(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.json", "[]")
    job = upload(admin_client_, "evil.zip", buffer.getvalue(), django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error.startswith("evil.zip:") and "outside the upload" in job.error
    assert not (uploads.parent / "evil.json").exists()
    assert not Trajectory.objects.exists()


def test_a_message_log_uploads_with_its_field_mapping(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    line = {
        "question": "Who won the 1998 final?",
        "is_correct": False,
        "history": [
            {"role": "assistant", "content": "Searching."},
            {"role": "user", "content": "France won 3-0."},
        ],
    }
    job = upload(
        admin_client_,
        "log.jsonl",
        (json.dumps(line) + "\n").encode(),
        django_capture_on_commit_callbacks,
        format="messages",
        mapping="goal=question, messages=history, success=is_correct",
    )
    assert job.status == "done", job.error
    assert job.mapping == {"goal": "question", "messages": "history", "success": "is_correct"}
    trajectory = Trajectory.objects.get()
    assert trajectory.goal == "Who won the 1998 final?" and trajectory.success is False


def test_a_bad_mapping_is_refused_before_anything_is_saved(admin_client_, uploads):
    data = {
        "upload-file": SimpleUploadedFile("log.jsonl", b"{}\n"),
        "upload-dataset": "up",
        "upload-format": "messages",
        "upload-mapping": "question",
    }
    response = admin_client_.post(reverse("upload"), data)
    assert response.status_code == 400  # the page again, with what was typed
    assert "Upload refused: mapping:" in response.content.decode()
    assert 'value="question"' in response.content.decode()
    assert "is not KEY=FIELD" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_an_error_inside_an_archive_names_the_archive_and_the_member_not_server_paths(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("runs/bad.json", '[{"trajectory_id": "x", "steps": "nope"}]')
    job = upload(admin_client_, "runs.zip", buffer.getvalue(), django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error.startswith("runs.zip: ") and "bad.json" in job.error
    assert str(uploads) not in job.error


FIXTURES = Path(__file__).resolve().parent.parent / "importers" / "fixtures"


def test_an_uploaded_trace_archive_reports_each_file_s_format_and_why(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder in ("langfuse", "langsmith"):
            for path in sorted((FIXTURES / folder).iterdir()):
                archive.write(path, f"traces/{folder}/{path.name}")
    job = upload(
        admin_client_,
        "traces.zip",
        buffer.getvalue(),
        django_capture_on_commit_callbacks,
        success_score="correctness>=0.5",
    )
    assert job.status == "done", job.error
    assert job.success_score == "correctness>=0.5"
    files = {f["path"]: f for f in job.summary["files"]}
    report = files["traces.zip: traces/langsmith/run-tree.json"]
    assert report["format"] == "langsmith" and "LangSmith run" in report["why"]
    assert report["imported"] == 1 and report["failures"] == 1  # correctness 0.0
    assert files["traces.zip: traces/langfuse/support-triage.trace.json"]["unknown"] == 1
    assert str(uploads) not in json.dumps(job.summary)
    page = admin_client_.get(reverse("home")).content.decode()
    assert "langsmith/run-tree.json" in page and "LangSmith run (run_type, inputs)" in page


def test_a_success_score_that_does_not_parse_is_refused_before_anything_is_saved(
    admin_client_, uploads
):
    data = {
        "upload-file": SimpleUploadedFile("t.json", b"{}"),
        "upload-dataset": "up",
        "upload-format": "auto",
        "upload-success_score": "correctness is high",
    }
    response = admin_client_.post(reverse("upload"), data)
    assert response.status_code == 400  # the form comes back, the problem beside its field
    assert 'name="upload-success_score" value="correctness is high"' in response.content.decode()
    assert response.context["upload_form"].errors["success_score"]
    assert not ImportJob.objects.exists()


def test_a_failed_import_removes_its_upload_folder(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    job = upload(admin_client_, "bad.json", b"[{", django_capture_on_commit_callbacks)
    assert job.status == "failed" and job.error.startswith("bad.json: not valid JSON")
    assert list(uploads.iterdir()) == []


def test_a_zip_bomb_upload_is_refused_while_unpacking_and_removed(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.jsonl", b"\n" * (30 * 2**20))
    job = upload(admin_client_, "bomb.zip", buffer.getvalue(), django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error.startswith("bomb.zip: ") and "compression ratio" in job.error
    assert list(uploads.iterdir()) == []


def test_an_upload_over_the_size_limit_is_refused_before_it_is_stored(
    admin_client_, uploads, settings
):
    settings.AGENTHER_UPLOAD_MAX_BYTES = 1000
    data = {
        "upload-file": SimpleUploadedFile("big.json", b"[" + b" " * 2000 + b"]"),
        "upload-dataset": "up",
        "upload-format": "auto",
    }
    response = admin_client_.post(reverse("upload"), data)
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert not ImportJob.objects.exists()
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_an_empty_archive_is_refused_naming_the_archive_never_the_servers_path(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    job = upload(admin_client_, "empty.zip", buffer.getvalue(), django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error.startswith("empty.zip: ") and "no .json, .jsonl or .traj" in job.error
    assert str(uploads) not in job.error and "unpacked" not in job.error


def test_json_nested_100000_deep_is_a_clear_error_not_an_unexpected_one(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    deep = b"[" * 100_000 + b"]" * 100_000
    job = upload(admin_client_, "deep.json", deep, django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error.startswith("deep.json: ") and "nested too deeply" in job.error
    assert "unexpected" not in job.error


def test_a_nul_character_is_repaired_and_counted_in_the_jobs_summary(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    record = {"trajectory_id": "n", "original_prompt": "Find\u0000 it", "steps": []}
    line = (json.dumps(record) + "\n").encode()
    job = upload(admin_client_, "nul.jsonl", line, django_capture_on_commit_callbacks)
    assert job.status == "done", job.error
    assert job.summary["nul_replaced"] == 1
    assert Trajectory.objects.get().goal == "Find\ufffd it"
