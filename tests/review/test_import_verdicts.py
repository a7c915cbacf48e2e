"""manage.py import_verdicts: verdicts from elsewhere, checked whole before anything is saved."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from relabel.models import Candidate, Run
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.factories import make_candidate, make_run


@pytest.fixture
def setup(db, annotator, colleague) -> tuple[Run, Candidate, Candidate]:
    run = make_run(review={"audit_share": 1.0})
    review = make_candidate(run, confidence=0.3)
    auto = make_candidate(run, confidence=0.9)
    populate_queue(run)
    return run, review, auto


def write(tmp_path: Path, rows: list, name: str = "verdicts.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def row(run: Run, candidate: Candidate, verdict: str, rater: str = "alice", **extra) -> dict:
    return {
        "run": run.pk,
        "trajectory": candidate.trajectory.external_id,
        "rater": rater,
        "verdict": verdict,
        **extra,
    }


def run_command(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_verdicts", str(path), *args, stdout=out)
    return out.getvalue()


def test_it_imports_curation_and_audit_verdicts(setup, tmp_path, annotator):
    run, review, auto = setup
    path = write(
        tmp_path,
        [
            row(run, review, "edit", edited_goal="Report the lowest MOQ", reason="tighter"),
            row(run, auto, "invalid", reason="not achieved"),
            row(run, review, "reject", rater="bob", reason="vague"),
            "",
        ],
    )
    summary = json.loads(run_command(path, "--json").strip().splitlines()[-1])
    assert summary["imported"] == 3 and summary["curation"] == 2 and summary["audit"] == 1
    edit = Verdict.objects.get(decision="edit")
    assert (edit.kind, edit.source, edit.rater, edit.reason) == (
        "curation", "import", annotator, "tighter",
    )  # fmt: skip
    assert Verdict.objects.get(decision="invalid").kind == "audit"
    review.refresh_from_db()
    auto.refresh_from_db()
    assert review.review_state == "rejected"  # bob's reject came last
    assert auto.review_state == "rejected"  # found invalid in the audit: never exported
    # the queue slots they filled are done, and nobody is asked for them again
    assert ReviewTask.objects.get(candidate=auto, kind="audit").done_by == annotator
    assert ReviewTask.objects.claim_next(annotator) is None


def test_an_imported_edit_replaces_the_final_goal(setup, tmp_path):
    run, review, _ = setup
    run_command(write(tmp_path, [row(run, review, "edit", edited_goal="New goal")]))
    review.refresh_from_db()
    assert (review.review_state, review.final_goal) == ("edited", "New goal")


def test_it_prints_a_summary(setup, tmp_path):
    run, review, auto = setup
    out = run_command(write(tmp_path, [row(run, review, "accept"), row(run, auto, "valid")]))
    assert "imported 2 verdicts" in out and "accept 1" in out and "valid 1" in out


def test_importing_the_same_file_twice_adds_nothing(setup, tmp_path):
    run, review, auto = setup
    path = write(tmp_path, [row(run, review, "accept"), row(run, auto, "valid")])
    run_command(path)
    out = run_command(path)
    assert Verdict.objects.count() == 2 and "imported 0 verdicts" in out and "2 already" in out


@pytest.mark.parametrize(
    "bad, field, message",
    [
        ({"rater": "nobody"}, "rater", "no user named 'nobody'"),
        ({"run": 99999}, "run", "no run 99999"),
        ({"run": "x"}, "run", "must be a run id"),
        ({"trajectory": "missing-id"}, "trajectory", "'missing-id' has no candidate in run"),
        ({"verdict": "maybe"}, "verdict", "'maybe' is not one of"),
        ({"verdict": "edit"}, "edited_goal", "an edit needs the edited goal"),
        ({"reason": 5}, "reason", "must be a string"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(setup, tmp_path, bad, field, message):
    run, review, auto = setup
    path = write(tmp_path, [row(run, auto, "valid"), {**row(run, review, "accept"), **bad}])
    with pytest.raises(CommandError) as err:
        run_command(path)
    assert str(err.value).startswith(f"{path}, line 2, field {field!r}: ")
    assert message in str(err.value)
    assert not Verdict.objects.exists()


def test_a_trajectory_with_no_candidate_in_that_run_is_an_error(setup, tmp_path):
    run, review, _ = setup
    other_run = make_run(dataset=run.dataset)
    path = write(tmp_path, [row(other_run, review, "accept")])
    with pytest.raises(CommandError, match=f"has no candidate in run {other_run.pk}"):
        run_command(path)


def test_broken_json_and_missing_fields_are_named(setup, tmp_path):
    run, review, _ = setup
    with pytest.raises(CommandError, match=r"line 2: not valid JSON"):
        run_command(write(tmp_path, [row(run, review, "accept"), "{oops"]))
    missing = {k: v for k, v in row(run, review, "accept").items() if k != "rater"}
    with pytest.raises(CommandError, match=r"line 1, field 'rater': is missing"):
        run_command(write(tmp_path, [missing]))
    with pytest.raises(CommandError, match="no verdict in the file"):
        run_command(write(tmp_path, [""]))
    assert not Verdict.objects.exists()


def test_one_rater_cannot_rate_a_candidate_twice(setup, tmp_path, annotator):
    run, review, _ = setup
    path = write(tmp_path, [row(run, review, "accept"), row(run, review, "reject")])
    with pytest.raises(
        CommandError, match="line 2, field 'rater': alice already rated it on line 1"
    ):
        run_command(path)
    run_command(write(tmp_path, [row(run, review, "accept")]))
    with pytest.raises(CommandError, match="already gave verdict"):
        run_command(write(tmp_path, [row(run, review, "reject")]))
    assert Verdict.objects.count() == 1


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read it"):
        run_command(tmp_path / "absent.jsonl")


def test_one_rater_cannot_give_a_curation_and_an_audit_verdict_on_one_candidate(setup, tmp_path):
    run, _, auto = setup
    path = write(tmp_path, [row(run, auto, "accept"), row(run, auto, "valid")])
    with pytest.raises(CommandError, match="line 2.*rater.*already rated it on line 1"):
        run_command(path)
    assert not Verdict.objects.exists()


def test_a_candidate_the_gate_rejected_is_not_for_review(setup, tmp_path):
    run, _, _ = setup
    vetoed = make_candidate(run, confidence=0.9, gate=Candidate.Gate.REJECTED)
    path = write(tmp_path, [row(run, vetoed, "accept")])
    with pytest.raises(CommandError, match="line 1.*trajectory.*rejected by the gate"):
        run_command(path)
    vetoed.refresh_from_db()
    assert vetoed.review_state == "unreviewed" and not Verdict.objects.exists()


def test_an_imported_verdict_never_closes_a_slot_someone_is_rating(setup, tmp_path, colleague):
    run, review, _ = setup
    leased = ReviewTask.objects.get(candidate=review, kind="curation")
    assert leased.claim(colleague, timezone.now())
    run_command(write(tmp_path, [row(run, review, "accept")]))
    leased.refresh_from_db()
    assert leased.done_at is None and leased.leased_to == colleague
