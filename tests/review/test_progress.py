"""Progress people can see: without a broker, as in the demo, an upload, a run or an export
started from a page answers at once and the page shows the work's progress while it runs, on a
background thread of the web process. Each test holds the work at a gate until the page has
shown it running, so what is seen is progress before completion, never a finished result."""

from __future__ import annotations

import json
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from relabel.models import ImportJob, Run
from relabel.pipeline import batch
from relabel.tasks import background
from review.models import ExportJob
from tests.browser import log_in
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.background_threads]

SAMPLE = Path(__file__).resolve().parents[2] / "relabel" / "sample" / "agenther.jsonl"


class Gate:
    """Holds background work until the test opens it (never longer than a minute)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def wait(self) -> None:
        self.reached.set()
        self.opened.wait(60)

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate() -> Any:
    held = Gate()
    yield held
    held.open()  # whatever happened, let the thread finish before the database is flushed
    assert background.wait_all(60)


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.EXPORT_ROOT = tmp_path / "exports"


def test_an_upload_answers_at_once_and_shows_its_progress_until_it_is_done(
    page, gate, uploads, monkeypatch, tmp_path
):
    real = ImportJob.performer

    def held(job: ImportJob) -> dict[str, Any]:
        job.report_progress(1, 2)
        gate.wait()
        return real(job)

    monkeypatch.setattr(ImportJob, "performer", staticmethod(held))
    make_user("adam", "admin")
    upload = tmp_path / "runs.json"
    upload.write_text(json.dumps([json.loads(line) for line in SAMPLE.read_text().splitlines()]))
    log_in(page, "adam", then="/")
    page.set_input_files("#id_upload-file", str(upload))
    page.fill("#id_upload-dataset", "uploaded")
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url("**/")
    expect(
        page.get_by_text("Uploaded runs.json: its import is listed under Imports below.")
    ).to_be_visible()
    row = page.locator("tr", has_text="runs.json")
    expect(row).to_contain_text("importing")
    expect(row).to_contain_text("1 / 2 files")  # polled while the import waits at the gate
    assert gate.reached.is_set() and ImportJob.objects.get().status == "running"
    gate.open()
    expect(row).to_contain_text("done")
    expect(row).to_contain_text("trajectories imported")
    assert page.problems == []


def test_a_run_started_from_the_page_answers_at_once_and_shows_its_progress(
    page, gate, monkeypatch
):
    call_command("import_trajectories", str(SAMPLE), "--dataset", "sample", stdout=StringIO())
    real = batch.process_items

    def held(*args: Any, **kwargs: Any) -> None:
        gate.wait()
        real(*args, **kwargs)

    monkeypatch.setattr(batch, "process_items", held)
    make_user("adam", "admin")
    log_in(page, "adam", then="/")
    page.select_option("#id_run-dataset", label="sample")
    page.get_by_role("button", name="Start the run").click()
    page.wait_for_url("**/runs/*/")
    status = page.locator(".run-status")
    expect(status).to_contain_text("Running")
    expect(status).to_contain_text("0 / ")
    assert gate.reached.is_set() and Run.objects.get().status == "running"
    gate.open()
    expect(status).to_contain_text("Finished")
    expect(status).to_contain_text("(100%)")
    assert page.problems == []


def test_an_export_answers_at_once_and_shows_its_progress(page, gate, uploads, monkeypatch):
    call_command("import_trajectories", str(SAMPLE), "--dataset", "sample", stdout=StringIO())
    call_command("relabel", "--dataset", "sample", "--backend", "rules", stdout=StringIO())
    real = ExportJob.performer

    def held(job: ExportJob) -> dict[str, Any]:
        gate.wait()
        return real(job)

    monkeypatch.setattr(ExportJob, "performer", staticmethod(held))
    make_user("adam", "admin")
    log_in(page, "adam", then="/exports/")
    page.select_option("#id_run", index=1)
    page.get_by_role("button", name="Start export").click()
    page.wait_for_url("**/exports/*/")
    progress = page.locator("#export-progress")
    expect(progress).to_contain_text("Status: running")
    assert gate.reached.is_set()
    gate.open()
    expect(progress).to_contain_text("Status: done")
    expect(progress.get_by_role("link", name="sft.jsonl")).to_be_visible()
