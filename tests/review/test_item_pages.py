"""What the review page and the other pages show, through HTTP: where an item comes from, turns
named for who speaks, JSON and Markdown as readable text, the diff only when it helps, the
relabeler's other attempts, the shortcut setting, the 403 page, the run page, imports in words."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from relabel.models import Candidate, ImportJob
from review.models import RaterSettings, ReviewTask, Verdict
from review.queue import populate_queue
from tests.factories import make_candidate, make_run, make_trajectory
from tests.review.helpers import queued, task_of

ROOT = Path(__file__).resolve().parents[2]


def item_page(client, run, **trajectory) -> str:
    make_candidate(run, confidence=0.3, trajectory=make_trajectory(run.dataset, **trajectory))
    populate_queue(run)
    return client.get("/review/").content.decode()


# -- the item -----------------------------------------------------------------------------------


def test_an_item_says_where_it_comes_from(annotator_client, run):
    trajectory = make_trajectory(run.dataset, external_id="task_127", source_format="browsergym")
    make_candidate(run, confidence=0.3, trajectory=trajectory)
    populate_queue(run)
    body = annotator_client.get("/review/").content.decode()
    source = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    assert "Trajectory task_127 Dataset " + run.dataset.name in source
    assert f"Benchmark BrowserGym / WebArena Run {run.pk}" in source


def test_a_blind_item_says_where_it_comes_from_and_nothing_of_the_gate(annotator_client):
    run = make_run(review={"audit_share": 1.0})
    trajectory = make_trajectory(run.dataset, external_id="0-3", source_format="tau-bench")
    candidate = make_candidate(run, confidence=0.93, trajectory=trajectory)
    populate_queue(run)
    body = annotator_client.get("/review/").content.decode()
    assert "<code>0-3</code>" in body and run.dataset.name in body and "tau-bench" in body
    assert candidate.trajectory.goal not in body and "0.93" not in body
    assert "No other goal to choose from for this item." in body


@pytest.mark.parametrize(
    ("backend", "judge_view", "said"),
    [
        ("openai", "evidence", "The judges read steps 0, 1 in full and the calls of the other"),
        ("openai", "run", "The judges read the whole run."),
        ("rules", "evidence", None),
    ],
)
def test_an_item_says_what_its_model_judges_read(annotator_client, backend, judge_view, said):
    run = make_run(backend=backend, judge_view=judge_view)
    steps = [{"thought": f"t{i}", "action": "search", "observation": "o"} for i in range(4)]
    page = item_page(annotator_client, run, steps=steps)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    if said:
        assert said in text  # the factory's achievement cites steps 0 and 1
        if judge_view == "evidence":
            assert '<a href="#step-0">0</a>' in page  # each a link to the step
    else:
        assert "The judges read" not in text  # the rules panel reads every step


def test_tau_bench_turns_are_the_agent_the_customer_and_tools(annotator_client, run):
    steps = [
        {"thought": "May I have your user id?", "observation": "Sure, mia_li_3668.",
         "observation_role": "user"},
        {"thought": "", "action": "get_user_details", "action_input": {"user_id": "mia_li_3668"},
         "observation": '{"name": {"first_name": "Mia"}, "cards": [7447]}',
         "metadata": {"observed_from": "get_user_details"}},
    ]  # fmt: skip
    body = item_page(annotator_client, run, steps=steps, source_format="tau-bench")
    assert '<span class="role role-agent">Agent</span>' in body
    assert '<span class="role role-user">Customer</span>' in body
    assert '<span class="role role-call">Tool call</span>' in body
    assert '<span class="role role-tool">Tool</span>' in body
    to_the_customer = body.split('id="step-0"')[1].split('id="step-1"')[0]
    assert "thought" not in to_the_customer.lower()  # a message to the customer, not a thought
    pretty = "{\n  &quot;name&quot;: {\n    &quot;first_name&quot;: &quot;Mia&quot;\n  },"
    assert pretty in body  # the tool's JSON result, indented


def test_a_multi_agent_log_names_each_agent_and_who_answered(annotator_client, run):
    steps = [
        {"thought": "Let me load the sheet.", "observation": "exitcode: 0\nIndex(['ID'])",
         "observation_role": "user",
         "metadata": {"speaker": "Excel_Expert", "observed_from": "Computer_terminal"}},
    ]  # fmt: skip
    body = item_page(annotator_client, run, steps=steps, source_format="messages")
    assert '<span class="role role-agent">Excel_Expert</span>' in body
    assert '<span class="role role-user">Computer_terminal</span>' in body


def test_a_web_page_is_named_as_such_and_the_system_prompt_as_system(annotator_client, run):
    steps = [{"thought": "Open it", "action": "click", "action_input": {"bid": "12"},
              "observation": "RootWebArea 'Shops'"}]  # fmt: skip
    body = item_page(
        annotator_client, run, steps=steps, source_format="browsergym", system_prompt="Be brief."
    )
    assert '<span class="role role-tool">Web page</span>' in body
    assert '<span class="role role-system">System</span>' in body and "Be brief." in body
    assert '<span class="role-detail">thought</span>' in body  # the text beside an action


def test_markdown_keeps_its_line_breaks_and_code_blocks_as_escaped_text(annotator_client, run):
    message = "Here is **the plan**:\n1. search\n2. book\n\n```html\n<b>bold</b>\n```\nDone."
    body = item_page(annotator_client, run, steps=[{"thought": message, "observation": "ok"}])
    assert '<p class="text">Here is **the plan**:\n1. search\n2. book</p>' in body
    assert '<pre class="code" data-lang="html">&lt;b&gt;bold&lt;/b&gt;</pre>' in body
    assert '<p class="text">Done.</p>' in body and "<b>bold" not in body


def test_the_original_goal_is_plain_and_the_diff_only_offered_when_the_goals_share_words(
    annotator_client, run
):
    near = make_trajectory(run.dataset, goal="Find copper wire under $5/kg from a supplier")
    make_candidate(run, confidence=0.3, trajectory=near, goal="Find copper wire from a supplier")
    far = make_trajectory(run.dataset, goal=" ".join(["You are mia_li_3668 and want"] * 20))
    make_candidate(run, confidence=0.4, trajectory=far, goal="Book the cheapest flight to Seattle")
    populate_queue(run)
    first = annotator_client.get("/review/").content.decode()
    assert '<p class="goal-original">Find copper wire under $5/kg from a supplier</p>' in first
    assert '<del class="diff-del">under $5/kg </del>' in first and 'data-key="d"' in first
    task = ReviewTask.objects.get(done_at=None, leased_to__isnull=False)
    annotator_client.post(reverse("decide", args=[task.pk]), {"decision": "skip"})
    second = annotator_client.get("/review/").content.decode()
    assert "The two goals share few words: no word diff." in second
    assert "diff-del" not in second.split("diff-legend")[0].split("no-diff")[-1]


# -- the relabeler's attempts as alternatives -----------------------------------------------------


def with_attempts(run) -> Candidate:
    (candidate,) = queued(run, 0.3)
    candidate.attempts = [
        {"attempt": 1, "goal": "", "refused": "the goal is empty"},
        {"attempt": 2, "goal": "Report the <b>lowest</b> MOQ", "refused": "too close"},
        {"attempt": 3, "goal": candidate.hindsight_goal, "refused": ""},
    ]
    candidate.save()
    return candidate


def test_the_other_attempts_are_offered_and_one_is_taken_as_an_edit(annotator_client, run):
    candidate = with_attempts(run)
    body = annotator_client.get("/review/").content.decode()
    assert body.count('name="attempt"') == 1  # the empty and the chosen attempts are not offered
    assert "Report the &lt;b&gt;lowest&lt;/b&gt; MOQ" in body
    assert "Set aside by the pipeline: too close" in body
    data = {"decision": "edit", "attempt": "2", "edited_goal": "ignored: the server reads it"}
    annotator_client.post(reverse("decide", args=[task_of(candidate).pk]), data)
    verdict = Verdict.objects.get()
    assert (verdict.decision, verdict.edit_source) == ("edit", "attempt:2")
    assert verdict.edited_goal == "Report the <b>lowest</b> MOQ"


def test_an_attempt_that_was_not_offered_is_refused_and_nothing_is_stored(annotator_client, run):
    candidate = with_attempts(run)
    annotator_client.get("/review/")
    response = annotator_client.post(
        reverse("decide", args=[task_of(candidate).pk]), {"decision": "edit", "attempt": "1"}
    )
    assert response.status_code == 302 and not Verdict.objects.exists()
    body = annotator_client.get("/review/").content.decode()
    assert "Not recorded: attempt: the relabeler made no attempt 1 to pick" in body


def test_a_typed_edit_says_so(annotator_client, run):
    (candidate,) = queued(run, 0.3)
    annotator_client.get("/review/")
    data = {"decision": "edit", "edited_goal": "A better goal"}
    annotator_client.post(reverse("decide", args=[task_of(candidate).pk]), data)
    assert Verdict.objects.get().edit_source == "typed"


# -- the keys: the setting on the server, and axe kept out of the pages ---------------------------


def test_the_single_key_shortcut_setting_is_kept_on_the_server(annotator_client, annotator, run):
    queued(run, 0.3)
    assert 'data-shortcuts="on"' in annotator_client.get("/review/").content.decode()
    response = annotator_client.post(reverse("review_shortcuts"), {"single_key_shortcuts": "off"})
    assert response.status_code == 302  # without JavaScript: back to the queue
    assert RaterSettings.objects.get(user=annotator).single_key_shortcuts is False
    body = annotator_client.get("/review/").content.decode()
    assert 'data-shortcuts="off"' in body and 'aria-pressed="false"' in body
    assert "Single-key shortcuts are off." in body
    script = annotator_client.post(
        reverse("review_shortcuts"), {"single_key_shortcuts": "on"}, HTTP_HX_REQUEST="true"
    )
    assert script.status_code == 204
    assert RaterSettings.objects.get(user=annotator).single_key_shortcuts is True


def test_no_page_loads_axe_which_only_the_tests_use():
    templates = [p.read_text() for p in (ROOT / "templates").rglob("*.html")]
    assert not [t for t in templates if "axe-core" in t.lower() or "axe.min" in t.lower()]
    assert (ROOT / "static" / "vendor" / "axe-core" / "axe.min.js").is_file()
    assert (ROOT / "static" / "vendor" / "axe-core" / "LICENSE").is_file()


# -- other pages --------------------------------------------------------------------------------


def test_the_403_page_says_what_to_do(stranger_client, annotator_client, run):
    body = stranger_client.get("/").content.decode()
    assert "You cannot open this page" in body and "This page needs the annotator role." in body
    assert "your account has no role yet" in body and "manage.py adduser eve --role" in body
    body = annotator_client.get(reverse("run", args=[run.pk])).content.decode()
    assert "with the <strong>annotator</strong> role" in body and "the review queue" in body


# Committed, as in production: the work runs when the view's transaction commits.
@pytest.mark.django_db(transaction=True)
def test_the_run_page_is_tables_and_charts_not_a_dump_of_keys(researcher_client):
    call_command(
        "import_trajectories",
        str(ROOT / "relabel" / "sample" / "agenther.jsonl"),
        "--dataset",
        "sample",
        stdout=StringIO(),
    )
    call_command("relabel", "--dataset", "sample", "--backend", "rules", stdout=StringIO())
    run = Candidate.objects.first().run
    body = researcher_client.get(reverse("run", args=[run.pk])).content.decode()
    for dump in ["None", "cost_per_accepted_pair", "llm_calls", "{'", "wall_seconds"]:
        assert dump not in body, dump
    assert body.count('<svg class="stacked-bar"') == 2 and '<svg class="histogram"' in body
    assert "no approved pair yet" in body or "Cost per approved pair" in body
    assert "Model calls" in body and "rules (offline)" in body
    reasons = " ".join(str(j) for c in Candidate.objects.all() for j in c.judges)
    assert not re.search(r"\b1 (achievements|steps)\b", reasons)


@pytest.mark.parametrize(
    ("view", "read"),
    [
        ("evidence", "the cited steps in full, the other steps' calls in outline"),
        ("run", "the whole run"),
    ],
)
def test_an_openai_runs_page_says_what_its_judges_read(researcher_client, view, read):
    run = make_run(backend="openai", judge_view=view)
    body = researcher_client.get(reverse("run", args=[run.pk])).content.decode()
    assert "Judges read" in body and read.replace("'", "&#x27;") in body


def test_the_precision_page_counts_one_rater_as_one_rater(researcher_client, annotator, run):
    (candidate,) = queued(run, 0.3)
    ReviewTask.objects.claim_next(annotator).decide(annotator, "accept")
    body = researcher_client.get(reverse("precision:run", args=[run.pk])).content.decode()
    assert "on 1 candidate by 1 rater" in re.sub(r"\s+", " ", body)


# Committed, as in production: the work runs when the view's transaction commits.
@pytest.mark.django_db(transaction=True)
def test_import_results_are_words_and_a_failed_import_never_reads_as_in_progress(
    admin_client_, settings, tmp_path
):
    settings.UPLOAD_ROOT = tmp_path
    bad = SimpleUploadedFile("bad.json", b'[{"trajectory_id": "x", "steps": "nope"}]')
    data = {"upload-file": bad, "upload-dataset": "d", "upload-format": "auto"}
    body = admin_client_.post(reverse("upload"), data, follow=True).content.decode()
    assert "bad.json was not imported:" in body and "Importing" not in body
    assert 'class="message message-error"' in body
    ImportJob.objects.create(
        dataset_name="d",
        path="/x",
        original_name="good.json",
        status="done",
        summary={
            "imported": 1,
            "successes": 1,
            "failures": 0,
            "duplicates": 2,
            "format": "tau-bench",
        },
    )
    body = admin_client_.get("/").content.decode()
    assert "1 trajectory imported (1 success, 0 failures) as tau-bench." in body
    assert "2 duplicates already in the dataset: left as they were." in body
    assert "{&#x27;" not in body and "imported 1" not in body


def test_the_upload_and_run_forms_have_ids_of_their_own(admin_client_):
    body = admin_client_.get("/").content.decode()
    assert 'id="id_upload-dataset"' in body and 'id="id_run-dataset"' in body
    assert 'id="id_dataset"' not in body
    assert len(re.findall(r'\bid="([^"]+)"', body)) == len(set(re.findall(r'\bid="([^"]+)"', body)))


# Committed, as in production: the work runs when the view's transaction commits.
@pytest.mark.django_db(transaction=True)
def test_the_bundled_sample_uploads_through_the_page_with_its_result_in_words(
    admin_client_, settings, tmp_path
):
    settings.UPLOAD_ROOT = tmp_path
    lines = (ROOT / "relabel" / "sample" / "agenther.jsonl").read_text().splitlines()
    content = json.dumps([json.loads(line) for line in lines]).encode()
    data = {"upload-file": SimpleUploadedFile("s.json", content), "upload-dataset": "s"}
    data["upload-format"] = "auto"
    body = admin_client_.post(reverse("upload"), data, follow=True).content.decode()
    assert "Imported s.json into s:" in body and "trajectories imported" in body
