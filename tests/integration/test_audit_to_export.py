"""Across the review, precision and export pieces: a blind audit verdict decides what is exported,
and the exported set is the one the precision estimate describes."""

from __future__ import annotations

import io
import json

from django.core.management import call_command

from relabel.models import Candidate
from review.models import ReviewTask
from review.precision.figures import run_figures
from review.queue import populate_queue
from tests.conftest import make_user
from tests.factories import make_candidate, make_run
from tests.review.helpers import record_decision, undo_last


def export_goals(run, tmp_path) -> set[str]:
    out = io.StringIO()
    call_command(
        "export",
        "--run",
        str(run.pk),
        "--format",
        "sft",
        "--out",
        str(tmp_path),
        "--json",
        "--overwrite",
        stdout=out,
    )
    lines = (tmp_path / "sft.jsonl").read_text().splitlines()
    return {json.loads(line)["messages"][0]["content"] for line in lines}


def test_an_auto_accepted_goal_found_invalid_in_the_audit_is_not_exported(annotator, tmp_path):
    run = make_run(review={"audit_share": 1.0})
    kept = make_candidate(run, confidence=0.9, goal="Report the lowest-MOQ supplier")
    dropped = make_candidate(run, confidence=0.8, goal="List every supplier page visited")
    populate_queue(run)
    assert set(ReviewTask.objects.values_list("kind", flat=True)) == {"audit"}
    for _ in range(2):
        task = ReviewTask.objects.claim_next(annotator)
        decision = "invalid" if task.candidate_id == dropped.pk else "valid"
        record_decision(task.pk, annotator, decision)

    dropped.refresh_from_db()
    assert dropped.review_state == Candidate.ReviewState.REJECTED
    assert export_goals(run, tmp_path / "a") == {kept.final_goal}
    figures = run_figures(run)["export_precision"]
    assert figures["exportable"] == 1 and figures["verified"] == 1


def test_undoing_an_invalid_audit_verdict_puts_the_goal_back_in_the_export(annotator, tmp_path):
    run = make_run(review={"audit_share": 1.0})
    candidate = make_candidate(run, confidence=0.9)
    populate_queue(run)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "invalid")
    assert export_goals(run, tmp_path / "a") == set()

    undo_last(annotator)
    candidate.refresh_from_db()
    assert candidate.review_state == Candidate.ReviewState.UNREVIEWED
    assert export_goals(run, tmp_path / "b") == {candidate.final_goal}


def test_when_raters_disagree_the_majority_decides_what_is_exported(annotator, colleague, tmp_path):
    run = make_run(review={"raters_per_candidate": 3})
    candidate = make_candidate(run, confidence=0.3)
    populate_queue(run)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "reject")
    record_decision(ReviewTask.objects.claim_next(colleague).pk, colleague, "accept")
    candidate.refresh_from_db()
    assert candidate.review_state == Candidate.ReviewState.REJECTED  # a tie is not approval
    assert export_goals(run, tmp_path / "a") == set()
    assert run_figures(run)["export_precision"]["exportable"] == 0

    carol = make_user("carol", "annotator")
    record_decision(ReviewTask.objects.claim_next(carol).pk, carol, "edit", edited_goal="Report X")
    candidate.refresh_from_db()
    assert (candidate.review_state, candidate.final_goal) == ("edited", "Report X")
    assert export_goals(run, tmp_path / "b") == {"Report X"}
    assert run_figures(run)["export_precision"]["exportable"] == 1
