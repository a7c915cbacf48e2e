"""The review pages through HTTP: roles, the queue, decisions, undo, blindness, browsing."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from relabel.models import Candidate, ImportJob, Run
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.conftest import client_for, make_user
from tests.factories import make_candidate, make_run, make_trajectory
from tests.review.helpers import queued, task_of, xss_trajectory

HX = {"HTTP_HX_REQUEST": "true"}


def decide(client: Client, task: ReviewTask, decision: str, **fields) -> object:
    data = {"decision": decision, "started_at": f"{time.time() - 7:.3f}", **fields}
    return client.post(reverse("decide", args=[task.pk]), data)


# -- roles ---------------------------------------------------------------------------------------


def researcher_urls(run: Run, candidate: Candidate) -> list[str]:
    return [
        reverse("run", args=[run.pk]),
        reverse("run_progress", args=[run.pk]),
        reverse("candidates", args=[run.pk]),
        reverse("candidate", args=[candidate.pk]),
    ]


def test_anonymous_people_are_sent_to_the_login_page(client, run):
    (candidate,) = queued(run, 0.3)
    task = task_of(candidate)
    for url in ["/", "/review/", *researcher_urls(run, candidate)]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/login/?next={url}"
    for url in [reverse("decide", args=[task.pk]), reverse("undo"), reverse("upload")]:
        assert client.post(url)["Location"].startswith("/login/?next="), url
    assert not Verdict.objects.exists()


def test_a_user_without_a_role_is_refused_everywhere(stranger_client, run):
    (candidate,) = queued(run, 0.3)
    task = task_of(candidate)
    pages = [
        "/",
        "/review/",
        *researcher_urls(run, candidate),
        reverse("run_review", args=[run.pk]),
    ]
    pages += [reverse("precision:run", args=[run.pk]), reverse("exports:index")]
    for url in pages:
        assert stranger_client.get(url).status_code == 403, url
    for url in [reverse("decide", args=[task.pk]), reverse("undo"), reverse("upload")]:
        assert stranger_client.post(url).status_code == 403, url
    assert not Verdict.objects.exists()


def test_an_annotator_cannot_reach_researcher_or_admin_pages(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    for url in researcher_urls(run, candidate):
        assert annotator_client.get(url).status_code == 403, url
    assert annotator_client.post(reverse("upload")).status_code == 403
    assert annotator_client.post(reverse("run_start")).status_code == 403
    job = ImportJob.objects.create(dataset_name="d", path="/nowhere", original_name="x.json")
    assert annotator_client.get(reverse("import_progress", args=[job.pk])).status_code == 403
    assert annotator_client.get(reverse("precision:run", args=[run.pk])).status_code == 403
    assert annotator_client.get(reverse("exports:index")).status_code == 403


def test_a_researcher_cannot_reach_admin_pages(researcher_client, run):
    assert researcher_client.post(reverse("upload")).status_code == 403
    assert researcher_client.post(reverse("run_start")).status_code == 403
    assert researcher_client.get(reverse("run", args=[run.pk])).status_code == 200


def test_home_sends_annotators_to_the_queue(annotator_client):
    response = annotator_client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("review")


def test_home_shows_datasets_and_runs_to_researchers(researcher_client, run):
    make_trajectory(run.dataset, success=True)
    make_trajectory(run.dataset)
    make_trajectory(run.dataset)
    body = researcher_client.get("/").content.decode()
    assert run.dataset.name in body
    cells = '<td class="num">3</td><td class="num">1</td><td class="num">2</td>'
    assert cells in body.replace("\n", "")
    assert reverse("run", args=[run.pk]) in body
    assert "Upload trajectories" not in body  # admins only


def test_the_login_page_logs_people_in(client, annotator):
    response = client.post(
        "/login/?next=/review/",
        {"username": "alice", "password": "pw-for-tests-123", "next": "/review/"},
    )
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert client.get("/review/").status_code == 200


# -- the queue -------------------------------------------------------------------------------


def test_the_queue_shows_one_candidate_with_everything_a_curator_needs(annotator_client, run):
    judges = [
        {"name": "judge-a", "model": "m1", "accept": True, "confidence": 0.4, "reason": "fine"},
        {"name": "judge-b", "model": "m2", "accept": False, "confidence": 0.3, "reason": "vague"},
    ]
    (candidate,) = queued(run, 0.35, judges=judges)
    response = annotator_client.get("/review/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert candidate.hindsight_goal.split()[0] in body
    assert f'<p class="goal-original">{candidate.trajectory.goal}</p>' in body  # plain text
    assert f'<p class="goal" id="proposed-goal">{candidate.hindsight_goal}</p>' in body
    assert "judge-b" in body and "vague" in body and "0.35" in body
    assert "constraint violation" in body
    assert 'href="#step-0"' in body and 'id="step-1"' in body
    assert "&quot;query&quot;: &quot;copper wire supplier&quot;" in body  # pretty JSON input
    assert 'data-key="a"' in body and 'data-key="e"' in body and 'data-key="r"' in body
    assert task_of(candidate).leased_to.username == "alice"


def test_an_empty_queue_says_so(annotator_client):
    body = annotator_client.get("/review/").content.decode()
    assert "Nothing left for you" in body


def test_trajectory_markup_is_shown_as_text(annotator_client, run):
    candidate = make_candidate(run, confidence=0.3, trajectory=xss_trajectory(run))
    populate_queue(run)
    body = annotator_client.get("/review/").content.decode()
    assert task_of(candidate).leased_to is not None
    assert "<script>alert(1)" not in body and "<img src=x onerror" not in body
    assert "<script>alert(3)" not in body and "<b>flights" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; searching" in body
    assert "&lt;img src=x onerror=alert(2)&gt;" in body


def test_long_observations_start_collapsed(annotator_client, run):
    long_text = "row\n" * 200
    steps = [{"thought": "t", "action": "read", "action_input": {}, "observation": long_text}]
    make_candidate(run, confidence=0.3, trajectory=make_trajectory(run.dataset, steps=steps))
    populate_queue(run)
    body = annotator_client.get("/review/").content.decode()
    opening = re.search(r'<details class="turn turn-tool observation" data-observation(.*?)>', body)
    assert opening and "open" not in opening.group(1)  # collapsed
    assert "(800 characters)" in body


def test_accepting_records_a_verdict_and_serves_the_next(annotator_client, annotator, run):
    first, second = queued(run, 0.3, 0.4)
    annotator_client.get("/review/")
    response = decide(annotator_client, task_of(first), "accept")
    assert response.status_code == 302 and response["Location"] == reverse("review")
    verdict = Verdict.objects.get()
    assert (verdict.decision, verdict.kind, verdict.rater) == ("accept", "curation", annotator)
    assert 5 < verdict.seconds_spent < 60
    first.refresh_from_db()
    assert first.review_state == "accepted" and first.final_goal == first.hindsight_goal
    assert task_of(first).done_by == annotator
    body = annotator_client.get("/review/").content.decode()
    assert "<strong>1</strong> done today" in body and "<strong>1</strong> left" in body


def test_htmx_decisions_swap_in_the_next_candidate(annotator_client, run):
    first, second = queued(run, 0.3, 0.4)
    second.hindsight_goal = "A second, different goal"
    second.save()
    annotator_client.get("/review/")
    response = annotator_client.post(
        reverse("decide", args=[task_of(first).pk]), {"decision": "accept"}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="review"') and "<html" not in body
    assert "A second, different goal" in body


def test_an_edit_replaces_the_final_goal(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate), "edit", edited_goal="  Report the lowest MOQ  ")
    candidate.refresh_from_db()
    assert candidate.review_state == "edited"
    assert candidate.final_goal == "Report the lowest MOQ"
    assert candidate.hindsight_goal != candidate.final_goal


def test_an_edit_without_a_change_counts_as_an_accept(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate), "edit", edited_goal=candidate.hindsight_goal)
    assert Verdict.objects.get().decision == "accept"


def test_an_empty_edit_is_refused_with_a_reason(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    response = annotator_client.post(
        reverse("decide", args=[task_of(candidate).pk]),
        {"decision": "edit", "edited_goal": " "},
        **HX,
    )
    assert "edited_goal: an edit needs the edited goal" in response.content.decode()
    assert not Verdict.objects.exists() and task_of(candidate).done_at is None


def test_a_rejection_keeps_its_reason(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate), "reject", reason_code="too_vague", reason="meh")
    verdict = Verdict.objects.get()
    assert (verdict.reason_code, verdict.reason) == ("too_vague", "meh")
    candidate.refresh_from_db()
    assert candidate.review_state == "rejected"


def test_an_unknown_reject_reason_is_refused(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    response = decide(annotator_client, task_of(candidate), "reject", reason_code="nope")
    assert response.status_code == 302
    assert not Verdict.objects.exists()
    body = annotator_client.get("/review/").content.decode()
    assert "reason_code" in body and "nope" in body


def test_skipping_gives_the_task_back(annotator_client, colleague, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate), "skip")
    assert Verdict.objects.get().decision == "skip"
    assert task_of(candidate).done_at is None and task_of(candidate).leased_to is None
    assert "Nothing left for you" in annotator_client.get("/review/").content.decode()
    assert ReviewTask.objects.claim_next(colleague).candidate_id == candidate.pk


def test_undo_is_a_new_verdict_and_reopens_the_task(annotator_client, annotator, run):
    first, second = queued(run, 0.3, 0.4)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(first), "edit", edited_goal="Something else entirely")
    annotator_client.get("/review/")  # now looking at the second candidate
    response = annotator_client.post(reverse("undo"))
    assert response.status_code == 302
    edit, undo = Verdict.objects.order_by("id")
    assert (undo.decision, undo.undoes, undo.rater) == ("undo", edit, annotator)
    first.refresh_from_db()
    assert first.review_state == "unreviewed" and first.final_goal == first.hindsight_goal
    assert task_of(first).done_at is None and task_of(first).leased_to == annotator
    assert task_of(second).leased_to is None
    assert "Something else entirely" not in annotator_client.get("/review/").content.decode()
    assert ReviewTask.objects.claim_next(annotator).candidate_id == first.pk
    decide(annotator_client, task_of(first), "accept")
    first.refresh_from_db()
    assert first.review_state == "accepted" and Verdict.objects.count() == 3


def test_undo_with_nothing_to_undo_says_so(annotator_client):
    response = annotator_client.post(reverse("undo"), **HX)
    assert "Nothing to undo." in response.content.decode()
    assert not Verdict.objects.exists()


def test_a_task_leased_to_someone_else_cannot_be_decided(annotator_client, colleague, run):
    (candidate,) = queued(run, 0.3)
    task = ReviewTask.objects.claim_next(colleague)
    response = decide(annotator_client, task, "accept")
    assert response.status_code == 302
    assert not Verdict.objects.exists()
    task.refresh_from_db()
    assert task.leased_to == colleague and task.done_at is None


def test_a_free_task_never_served_to_me_cannot_be_decided(annotator_client, run):
    """Deciding by task id alone would let a rater probe tasks (and their kinds) unseen."""
    audit_run = make_run(run.dataset, review={"audit_share": 1.0})
    free = audit_candidate(audit_run)
    populate_queue(audit_run)
    task = task_of(free, kind="audit")
    response = decide(annotator_client, task, "edit", edited_goal="")
    assert not Verdict.objects.exists()
    page = annotator_client.get(response.headers["Location"]).content.decode()
    # The same words whatever the task's kind: nothing about valid/invalid or edits.
    assert "this candidate is not leased to you" in page
    assert "is not one of" not in page and "needs the edited goal" not in page


def test_deciding_an_unknown_task_is_not_found(annotator_client):
    assert (
        annotator_client.post(reverse("decide", args=[999]), {"decision": "accept"}).status_code
        == 404
    )


def audit_candidate(run: Run) -> Candidate:
    candidate = make_candidate(
        run,
        confidence=0.93,
        judges=[
            {"name": "panel-x", "model": "m", "accept": True, "confidence": 0.93, "reason": "WHY9"}
        ],
    )
    candidate.gate_reason = "GATEREASON7"
    candidate.rationale = "RATIONALE5"
    candidate.save()
    return candidate


def test_audit_items_are_blind(annotator_client, annotator):
    run = make_run(review={"audit_share": 1.0})
    candidate = audit_candidate(run)
    populate_queue(run)
    task = task_of(candidate, kind="audit")
    response = annotator_client.get("/review/")
    body = response.content.decode()
    assert task.pk == ReviewTask.objects.claim_next(annotator).pk
    assert candidate.hindsight_goal in body and "MicroMetals" in body  # goal and trajectory
    lowered = body.lower()
    for sign in ["audit", "confidence", "judge", "gate", "auto", "blind", "0.93", "panel-x"]:
        assert sign not in lowered, sign
    for hidden in [candidate.trajectory.goal, "GATEREASON7", "WHY9", "RATIONALE5", "Original"]:
        assert hidden not in body, hidden
    # The same buttons and values as any item: the words themselves must not give it away.
    assert 'value="accept"' in body and 'value="reject"' in body and "valid" not in lowered
    assert controls(body) == controls(curation_item_page())


def controls(body: str) -> tuple[list[str], list[str], list[str]]:
    """The keys, field names and fixed values a page's decisions offer (ids and tokens aside)."""
    keys = sorted(re.findall(r'data-key="([^"]+)"', body))
    names = sorted(set(re.findall(r'name="([^"]+)"', body)))
    values = sorted(
        v for v in re.findall(r'<input type="hidden" name="decision" value="([^"]+)"', body)
    )
    return keys, names, values


def curation_item_page() -> str:
    run = make_run(review={"audit_share": 0.0})
    queued(run, 0.3)
    return client_for(make_user("carol", "annotator")).get("/review/").content.decode()


def test_accept_and_reject_on_a_blind_item_are_stored_as_valid_and_invalid(
    annotator_client, annotator, colleague
):
    run = make_run(review={"audit_share": 1.0, "raters_per_candidate": 2})
    audit_candidate(run)
    populate_queue(run)
    decide(annotator_client, ReviewTask.objects.claim_next(annotator), "accept")
    decide(client_for(colleague), ReviewTask.objects.claim_next(colleague), "reject")
    decisions = set(Verdict.objects.values_list("kind", "decision"))
    assert decisions == {("audit", "valid"), ("audit", "invalid")}


def test_an_invalid_audit_verdict_marks_the_candidate_rejected(annotator_client):
    run = make_run(review={"audit_share": 1.0})
    candidate = audit_candidate(run)
    populate_queue(run)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate, kind="audit"), "invalid")
    verdict = Verdict.objects.get()
    assert (verdict.kind, verdict.decision) == ("audit", "invalid")
    candidate.refresh_from_db()
    assert candidate.review_state == "rejected"  # a person found it invalid: not exported
    response = decide(annotator_client, task_of(candidate, kind="audit"), "accept")
    assert response.status_code == 302 and Verdict.objects.count() == 1


def test_an_edit_on_a_blind_item_is_an_audit_edit_that_approves_the_new_goal(annotator_client):
    """The keys are the same on every item, e included: on a blind item an edit says the goal as
    stated was not valid (strict precision counts it so) and exports the edited goal."""
    run = make_run(review={"audit_share": 1.0})
    candidate = audit_candidate(run)
    populate_queue(run)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate, kind="audit"), "edit", edited_goal="A fixed goal")
    verdict = Verdict.objects.get()
    assert (verdict.kind, verdict.decision, verdict.edited_goal) == (
        "audit",
        "edit",
        "A fixed goal",
    )
    assert verdict.edit_source == "typed"
    candidate.refresh_from_db()
    assert (candidate.review_state, candidate.final_goal) == ("edited", "A fixed goal")


def test_a_rejection_on_a_blind_item_keeps_its_reason(annotator_client):
    run = make_run(review={"audit_share": 1.0})
    candidate = audit_candidate(run)
    populate_queue(run)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate, kind="audit"), "reject", reason_code="too_vague")
    verdict = Verdict.objects.get()
    assert (verdict.kind, verdict.decision, verdict.reason_code) == (
        "audit",
        "invalid",
        "too_vague",
    )


# -- browsing ------------------------------------------------------------------------------------


def test_browse_pages_with_a_keyset_not_an_offset(researcher_client, run):
    made = [make_candidate(run, confidence=0.2 + (i % 7) * 0.05) for i in range(120)]
    url = reverse("candidates", args=[run.pk])
    seen: list[int] = []
    query = ""
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            response = researcher_client.get(url + query)
            page = response.context["page"]
            seen += [c.pk for c in page]
            after = response.context["next_after"]
            query = f"?after={after}" if after else ""
    assert len(seen) == 120 == len(set(seen)) and set(seen) == {c.pk for c in made}
    assert not query  # the third page was the last
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
    confidences = [Candidate.objects.get(pk=pk).confidence for pk in seen]
    assert confidences == sorted(confidences)


def test_browse_filters_by_gate_confidence_failure_type_and_benchmark(researcher_client, run):
    low = make_candidate(run, confidence=0.25)
    make_candidate(run, confidence=0.45, failure_type="tool_error")
    make_candidate(run, confidence=0.9)
    tau = make_candidate(
        run, confidence=0.3, trajectory=make_trajectory(run.dataset, source_format="tau-bench")
    )
    url = reverse("candidates", args=[run.pk])

    def ids(**params) -> set[int]:
        return {c.pk for c in researcher_client.get(url, params).context["page"]}

    assert ids(gate="needs_review", max_confidence=0.35) == {low.pk, tau.pk}
    assert ids(failure_type="tool_error", min_confidence=0.4) == {
        Candidate.objects.get(confidence=0.45).pk
    }
    assert ids(benchmark="tau-bench") == {tau.pk}
    assert ids(review_state="accepted") == set()


def test_bad_browse_filters_are_reported(researcher_client, run):
    response = researcher_client.get(reverse("candidates", args=[run.pk]), {"min_confidence": "x"})
    assert response.status_code == 200
    assert "min_confidence" in response.content.decode() and response.context["page"] == []


def test_browse_answers_htmx_with_the_results_only(researcher_client, run):
    make_candidate(run, confidence=0.3)
    response = researcher_client.get(reverse("candidates", args=[run.pk]), **HX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"') and "<html" not in body


def test_the_candidate_page_shows_the_full_history(researcher_client, annotator, run):
    (candidate,) = queued(run, 0.3)
    task = ReviewTask.objects.claim_next(annotator)
    client = client_for(annotator)
    decide(client, task, "reject", reason_code="too_vague")
    client.post(reverse("undo"))
    decide(client, task, "edit", edited_goal="A better goal")
    body = researcher_client.get(reverse("candidate", args=[candidate.pk])).content.decode()
    for text in ["reject", "undo", "too_vague", "A better goal", "(undone)", "alice"]:
        assert text in body, text
    assert "grounded in steps 0-1" in body and "Original goal" in body


# -- runs, uploads -------------------------------------------------------------------------------


def test_a_running_runs_progress_polls_until_it_ends(researcher_client, run):
    run.status = Run.Status.RUNNING
    run.save()
    home = researcher_client.get("/").content.decode()
    url = reverse("run_progress", args=[run.pk])
    assert f'hx-get="{url}" hx-trigger="every 2s"' in home
    assert researcher_client.get(url, **HX).status_code == 200
    run.status = Run.Status.FINISHED
    run.save()
    response = researcher_client.get(url, **HX)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    assert "hx-trigger" not in researcher_client.get("/").content.decode()


AGENTHER_FILE = [
    {
        "trajectory_id": f"t{i}",
        "original_prompt": "Find copper wire under $5/kg",
        "steps": [
            {"thought": "search", "action_name": "search", "action_input": {"q": "copper"},
             "observation": "MicroMetals $5.30/kg MOQ 10 kg"},
        ],
        "final_answer": "MicroMetals at $5.30/kg",
        "failure_reason": "price above $5",
    }
    for i in range(3)
]  # fmt: skip


def upload_file(client: Client, content: bytes, name: str = "runs.json") -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"file": SimpleUploadedFile(name, content), "dataset": "uploaded", "format": "auto"}
    return client.post(reverse("upload"), {f"upload-{k}": v for k, v in data.items()})


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    return settings.UPLOAD_ROOT


def test_an_admin_uploads_a_file_that_is_imported_in_the_background(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload_file(admin_client_, json.dumps(AGENTHER_FILE).encode())
    assert response.status_code == 302 and len(callbacks) == 1
    job = ImportJob.objects.get()
    assert job.original_name == "runs.json" and str(uploads) in job.path
    assert job.status == "done", job.error
    assert job.summary["imported"] == 3
    url = reverse("import_progress", args=[job.pk])
    assert admin_client_.get(url, **HX).status_code == 286
    assert "uploaded" in admin_client_.get("/").content.decode()


def test_a_broken_upload_shows_a_clear_error(
    admin_client_, uploads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload_file(admin_client_, b'[{"trajectory_id": "x", "steps": "nope"}]', "bad.json")
    job = ImportJob.objects.get()
    assert job.status == "failed" and "bad.json" in job.error
    body = admin_client_.get("/").content.decode()
    assert "bad.json" in body and "failed" in body.lower()


def test_an_upload_without_a_file_is_refused(admin_client_, uploads):
    response = admin_client_.post(reverse("upload"), {"upload-dataset": "x"})
    assert response.status_code == 400
    assert "Upload refused: file:" in response.content.decode()
    assert 'value="x"' in response.content.decode()  # what was typed is kept
    assert not ImportJob.objects.exists()


def test_a_pending_import_keeps_polling(admin_client_):
    job = ImportJob.objects.create(dataset_name="d", path="/nowhere", original_name="x.json")
    url = reverse("import_progress", args=[job.pk])
    response = admin_client_.get(url, **HX)
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.content.decode()


def run_form(data: dict) -> dict:
    return {f"run-{key}": value for key, value in data.items()}  # the form's prefix


def test_an_admin_starts_a_run_and_sees_its_figures(
    admin_client_, django_capture_on_commit_callbacks
):
    run = make_run()
    for _ in range(2):
        make_trajectory(run.dataset)
    make_trajectory(run.dataset, success=True)
    data = {
        "dataset": run.dataset.pk,
        "backend": "rules",
        "accept_threshold": 0.6,
        "reject_threshold": 0.2,
        "raters_per_candidate": 1,
        "second_rater_share": 0,
        "audit_share": 0.5,
        "extra": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(reverse("run_start"), run_form(data))
    started = Run.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("run", args=[started.pk])
    assert (
        started.config["accept_threshold"] == 0.6 and started.config["review"]["audit_share"] == 0.5
    )
    body = admin_client_.get(response["Location"]).content.decode()
    assert "The 3 trajectories" in body and "None" not in body
    assert reverse("precision:run", args=[started.pk]) in body


def test_a_bad_run_configuration_is_refused_with_its_reason(admin_client_):
    run = make_run()
    data = {
        "dataset": run.dataset.pk, "backend": "rules", "accept_threshold": 0.5,
        "reject_threshold": 0.2, "raters_per_candidate": 1, "second_rater_share": 0,
        "audit_share": 0.1, "extra": '{"no_such_key": 1}',
    }  # fmt: skip
    response = admin_client_.post(reverse("run_start"), run_form(data))
    body = response.content.decode()
    assert response.status_code == 400 and "no_such_key" in body
    assert "{&quot;no_such_key&quot;: 1}" in body  # the form keeps what was typed
    assert Run.objects.count() == 1


def test_the_next_page_link_keeps_the_filters(researcher_client, run):
    for _ in range(51):
        make_candidate(run, confidence=0.3)
    response = researcher_client.get(reverse("candidates", args=[run.pk]), {"gate": "needs_review"})
    after = response.context["next_after"]
    assert f'href="?gate=needs_review&amp;after={after}"' in response.content.decode()


def test_a_cut_observation_says_how_much_is_shown(annotator_client, run):
    steps = [{"thought": "", "action": "read", "action_input": {}, "observation": "x" * 15_000}]
    make_candidate(run, confidence=0.3, trajectory=make_trajectory(run.dataset, steps=steps))
    populate_queue(run)
    body = annotator_client.get("/review/").content.decode()
    assert "Shown: the first 12000 of 15000 characters." in body


def test_a_second_rater_does_not_see_the_first_raters_edit(annotator_client, colleague):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    decide(annotator_client, task_of(candidate), "edit", edited_goal="EDITED BY ALICE")
    body = client_for(colleague).get("/review/").content.decode()
    assert candidate.hindsight_goal in re.sub(r"<[^>]+>", "", body)
    assert "EDITED BY ALICE" not in body
