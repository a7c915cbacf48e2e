"""Reviewing a candidate whose turns referred to its original goal: the findings are marked in
the trajectory, each rewritten turn is shown as original vs rewritten, and the verdict covers the
goal and the rewrite (accept, edit either, reject)."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from relabel.models import Candidate, Run, Step
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.exports.checks import read_jsonl
from tests.factories import make_candidate, make_trajectory

RESTATING = "The user wants <b>copper</b> wire under $5/kg with MOQ below 100 kg."
THOUGHT = f"{RESTATING} I will search suppliers first."
REWRITE = "I will search suppliers first."


def finding(text: str, quote: str, reason: str, turn: str = "thought", step: int = 0) -> dict:
    start = text.index(quote)
    return {
        "step": step,
        "turn": turn,
        "span": [start, start + len(quote)],
        "quote": quote,
        "reason": reason,
        "source": "rules",
    }


def flagged_candidate(run: Run, *, rewritten: bool = True) -> Candidate:
    """A queued candidate whose first thought restated its goal (rewritten, or flagged)."""
    steps = [
        {
            "thought": THOUGHT,
            "action": "search",
            "action_input": {"query": "copper wire supplier"},
            "observation": "MicroMetals: $5.30/kg, MOQ 10 kg.",
        },
        {"thought": "", "observation": "I still want it under $5/kg!", "observation_role": "user"},
    ]
    trajectory = make_trajectory(run.dataset, steps=steps)
    candidate = make_candidate(run, trajectory=trajectory, confidence=0.3)
    findings = [
        finding(THOUGHT, RESTATING, 'restates the task it was given ("the user wants ...")'),
        finding(steps[1]["observation"], "$5", "names '$5' from the original goal", "user", step=1),
    ]
    Candidate.objects.filter(pk=candidate.pk).update(
        consistency={
            "policy": "rewrite" if rewritten else "flag",
            "method": "rules" if rewritten else "",
            "findings": findings,
            "unresolved": findings[1:] if rewritten else findings,
            "flagged": True,
        },
        rewrites={"0": REWRITE} if rewritten else {},
    )
    populate_queue(run)
    candidate.refresh_from_db()
    return candidate


def decide(client: Client, task: ReviewTask, decision: str, **fields) -> object:
    data = {"decision": decision, "started_at": f"{time.time() - 7:.3f}", **fields}
    return client.post(reverse("decide", args=[task.pk]), data)


def test_the_queue_marks_the_findings_and_shows_the_rewrite_as_a_diff(annotator_client, run):
    flagged_candidate(run)
    body = annotator_client.get("/review/").content.decode()
    marked = re.findall(r'<mark class="finding" title="([^"]*)">([^<]*)</mark>', body)
    escaped = "The user wants &lt;b&gt;copper&lt;/b&gt; wire under $5/kg with MOQ below 100 kg."
    assert ("restates the task it was given (&quot;the user wants ...&quot;)", escaped) in marked
    assert ("names &#x27;$5&#x27; from the original goal", "$5") in marked  # the user's turn
    assert "Consistency with the goal" in body and "flagged: 1 unresolved" in body
    assert '<del class="diff-del">The user wants &lt;b&gt;copper&lt;/b&gt;' in body
    assert f"<span>{REWRITE}</span>" in body
    assert "User turns that still pursue the original goal" in body
    # The rewrite is editable in the edit form, as it will be exported.
    assert f'name="rewrite:0" rows="3" data-submit-on-ctrl-enter>{REWRITE}</textarea>' in body
    assert "<b>copper</b>" not in body


def test_the_candidate_page_shows_the_same_findings(researcher_client, run):
    candidate = flagged_candidate(run)
    body = researcher_client.get(reverse("candidate", args=[candidate.pk])).content.decode()
    assert body.count('<mark class="finding"') == 2 and "Consistency with the goal" in body


def test_an_annotator_edits_the_rewrite_and_the_export_carries_it(
    annotator_client, annotator, run, tmp_path
):
    candidate = flagged_candidate(run)
    annotator_client.get("/review/")
    decide(
        annotator_client,
        ReviewTask.objects.get(candidate=candidate),
        "edit",
        edited_goal=candidate.hindsight_goal,
        **{"rewrite:0": "First I search the\r\nsuppliers."},
    )
    verdict = Verdict.objects.get()
    assert verdict.decision == "edit" and verdict.edited_rewrites == {
        "0": "First I search the\nsuppliers."
    }
    candidate.refresh_from_db()
    assert candidate.review_state == "edited" and candidate.rewrites == {"0": REWRITE}
    out = tmp_path / "sft"
    call_command("export", *("--run", str(run.pk), "--format", "sft", "--out", str(out)))
    (row,) = read_jsonl(out / "sft.jsonl")
    assert [m["content"] for m in row["messages"] if m["role"] == "assistant"][0] == (
        "First I search the\nsuppliers."
    )
    # A person rewrote the turn: its findings are resolved; the user's turn's are not.
    resolved = {(f["turn"], f["resolved"]) for f in row["metadata"]["consistency"]["findings"]}
    assert resolved == {("thought", True), ("user", False)}
    # The original text stays in the database and in the verdicts export.
    assert Step.objects.get(trajectory=candidate.trajectory, index=0).thought == THOUGHT
    verdicts = tmp_path / "verdicts"
    call_command("export", *("--run", str(run.pk), "--format", "verdicts", "--out", str(verdicts)))
    (record,) = read_jsonl(verdicts / "verdicts.jsonl")
    assert record["verdicts"][0]["edited_rewrites"] == {"0": "First I search the\nsuppliers."}


def test_an_edit_that_changes_neither_goal_nor_rewrite_is_an_accept(annotator_client, run):
    candidate = flagged_candidate(run)
    annotator_client.get("/review/")
    decide(
        annotator_client,
        ReviewTask.objects.get(candidate=candidate),
        "edit",
        edited_goal=candidate.hindsight_goal,
        **{"rewrite:0": REWRITE},
    )
    assert Verdict.objects.get().decision == "accept"


def test_a_flagged_turn_can_be_rewritten_by_a_person_under_the_flag_policy(annotator_client, run):
    candidate = flagged_candidate(run, rewritten=False)
    body = annotator_client.get("/review/").content.decode()
    assert "not rewritten" in body and 'name="rewrite:0"' in body
    decide(
        annotator_client,
        ReviewTask.objects.get(candidate=candidate),
        "edit",
        edited_goal=candidate.hindsight_goal,
        **{"rewrite:0": "Searching now."},
    )
    assert Verdict.objects.get().edited_rewrites == {"0": "Searching now."}


def test_a_rewrite_of_a_turn_that_cannot_be_rewritten_is_refused(annotator_client, run):
    candidate = flagged_candidate(run)
    annotator_client.get("/review/")
    response = decide(
        annotator_client,
        ReviewTask.objects.get(candidate=candidate),
        "edit",
        edited_goal="Report the lowest MOQ",
        **{"rewrite:user:1": "I am happy now."},
    )
    assert response.status_code == 302 and not Verdict.objects.exists()
    page = annotator_client.get("/review/").content.decode()
    assert "edited_rewrites: turn &#x27;user:1&#x27; is not one of the rewritable turns" in page


@pytest.mark.parametrize("flag", ["--consistent-only", None])
def test_an_accepted_flagged_candidate_is_left_out_only_with_consistent_only(
    annotator_client, run, tmp_path, flag
):
    candidate = flagged_candidate(run)
    annotator_client.get("/review/")
    decide(annotator_client, ReviewTask.objects.get(candidate=candidate), "accept")
    stdout = io.StringIO()
    args = ["--run", str(run.pk), "--format", "sharegpt", "--out", str(tmp_path), "--json"]
    call_command("export", *args, *([flag] if flag else []), stdout=stdout)
    manifest = json.loads(stdout.getvalue().strip().splitlines()[-1])
    expected = {"rewritten": 1, "flagged": 0 if flag else 1, "excluded": 1 if flag else 0}
    assert manifest["consistency"] == expected
    assert manifest["total_rows"] == (0 if flag else 1)


def test_the_export_page_offers_consistent_only(admin_client_, run, tmp_path, settings):
    settings.EXPORT_ROOT = str(tmp_path)
    body = admin_client_.get(reverse("exports:index")).content.decode()
    assert 'name="consistent_only"' in body
    response = admin_client_.post(
        reverse("exports:index"),
        {"run": run.pk, "format": "sft", "observation_tokens": 2048, "consistent_only": "on"},
    )
    assert response.status_code == 302
    from review.models import ExportJob

    assert ExportJob.objects.get().filters["consistent_only"] is True


def test_a_run_started_from_the_home_page_takes_its_consistency_policy(
    admin_client_, run, django_capture_on_commit_callbacks
):
    make_trajectory(run.dataset)
    data = {
        "run-dataset": run.dataset.pk, "run-backend": "rules", "run-accept_threshold": 0.5,
        "run-reject_threshold": 0.2, "run-raters_per_candidate": 1, "run-second_rater_share": 0,
        "run-audit_share": 0.1, "run-extra": "", "run-consistency": "flag",
    }  # fmt: skip
    assert 'name="run-consistency"' in admin_client_.get("/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(reverse("run_start"), data)
    assert Run.objects.exclude(pk=run.pk).get().config["consistency"] == "flag"
