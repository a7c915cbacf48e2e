"""The exported set's precision, as a user meets it: ``manage.py precision --run N --json``, the
manifest of an export, the export page and the precision page all give one figure, and it never
claims certainty a finite sample cannot give."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from review.models import ExportJob
from review.queue import populate_queue
from tests.conftest import client_for, make_user
from tests.factories import make_candidate, make_run

pytestmark = pytest.mark.django_db


def precision_json(run) -> dict:
    out = io.StringIO()
    call_command("precision", "--run", str(run.pk), "--json", stdout=out)
    return json.loads(out.getvalue())


def import_verdicts(tmp_path, run, candidates, rater: str, reject: set[int] = frozenset()) -> None:
    path = tmp_path / f"{rater}.jsonl"
    lines = [
        {
            "run": run.pk,
            "trajectory": c.trajectory.external_id,
            "rater": rater,
            "verdict": "reject" if c.pk in reject else "accept",
        }
        for c in candidates
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    call_command("import_verdicts", str(path), stdout=io.StringIO())


def export_manifest(run, tmp_path) -> dict:
    out = io.StringIO()
    folder = tmp_path / "export"
    call_command(
        "export", "--run", str(run.pk), "--format", "sft", "--out", str(folder), "--json",
        "--overwrite", stdout=out,
    )  # fmt: skip
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture
def reviewed_by_one(tmp_path):
    """A run whose every candidate (the auto-accepted ones too) one rater accepted."""
    run = make_run()  # the default audit share: some auto-accepted are queued, blind
    candidates = [make_candidate(run, confidence=0.55 + i / 50) for i in range(15)]
    candidates += [make_candidate(run, confidence=0.25 + i / 100) for i in range(15)]
    populate_queue(run)
    make_user("first", "annotator")
    import_verdicts(tmp_path, run, candidates, "first")
    return run, candidates


def test_one_rater_accepting_everything_does_not_make_the_export_certain(reviewed_by_one):
    run, _ = reviewed_by_one
    export = precision_json(run)["export_precision"]
    assert (export["value"], export["low"], export["high"]) != (1.0, 1.0, 1.0)
    assert export["available"] is False
    assert export["reason"].startswith("the raters' accuracy is unmeasured")
    assert export["n"] == 0 and export["text"] == export["reason"]


def test_a_second_rater_makes_it_measurable_and_below_one(reviewed_by_one, tmp_path):
    run, candidates = reviewed_by_one
    make_user("second", "annotator")
    rejected = {candidates[3].pk, candidates[17].pk, candidates[25].pk}
    import_verdicts(tmp_path, run, candidates, "second", reject=rejected)
    figures = precision_json(run)
    export = figures["export_precision"]
    assert export["available"] is True and "reason" not in export
    assert export["low"] < export["value"] < 1.0 and export["high"] <= 1.0
    # 27 approvals of each rater agree; the first rater's 3 others were rejected by the second.
    assert (export["approvals_confirmed"], export["approvals_checked"]) == (54, 57)
    assert export["exportable"] == 27  # the three ties are rejected until adjudicated
    assert figures["adjudication"]["pending"] == 3

    manifest = export_manifest(run, tmp_path)
    assert manifest["precision"] == export  # the very same figure, interval and all
    assert manifest["counts"]["sft.jsonl"] == 27


def test_too_few_verdicts_reads_the_same_everywhere(reviewed_by_one, tmp_path):
    run, _ = reviewed_by_one
    admin = make_user("adam", "admin")
    manifest = export_manifest(run, tmp_path)
    text = precision_json(run)["export_precision"]["text"]
    assert manifest["precision"]["available"] is False
    assert manifest["precision"]["text"] == text and "n=0" in text
    job = ExportJob.objects.create(
        run=run, format="sft", status="done", manifest=manifest, created_by=admin
    )
    client = client_for(admin)
    export_page = client.get(reverse("exports:detail", args=[job.pk])).content.decode()
    precision_page = client.get(reverse("precision:run", args=[run.pk])).content.decode()
    shown = text.replace("'", "&#x27;")
    assert shown in export_page and shown in precision_page
    out = io.StringIO()
    call_command("precision", "--run", str(run.pk), stdout=out)
    assert f"exportable set (stratified)       {text}" in out.getvalue()
