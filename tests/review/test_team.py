"""An annotation team through HTTP: queues and their members, a researcher's queues and studies,
adjudication, guidelines (versioned, rendered safely), comments, and the rater pages."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from django.urls import reverse

from relabel.models import Candidate
from review.models import Comment, ReviewQueue, ReviewTask, Verdict
from review.queue import create_queue, default_queues, populate_queue
from tests.conftest import client_for, make_user
from tests.factories import make_candidate, make_run
from tests.review.helpers import queued, record_decision, task_of

HX = {"HTTP_HX_REQUEST": "true"}


def decide(client: Client, task: ReviewTask, decision: str, **fields) -> object:
    data = {"decision": decision, "started_at": f"{time.time() - 5:.3f}", **fields}
    return client.post(reverse("decide", args=[task.pk]), data)


def served(client: Client) -> ReviewTask | None:
    """The task the review page leased to this client's user, if any."""
    body = client.get("/review/").content.decode()
    found = re.search(r'action="/review/tasks/(\d+)/"', body)
    return ReviewTask.objects.get(pk=int(found.group(1))) if found else None


@pytest.fixture
def adjudicator(db):
    return make_user("judy", "adjudicator")


# -- queues and who rates in them ---------------------------------------------------------------


def test_a_finished_run_has_curation_audit_and_adjudication_queues_open_to_annotators(
    db, annotator
):
    run = make_run(review={"audit_share": 1.0})
    make_candidate(run, confidence=0.3)
    make_candidate(run, confidence=0.9)
    populate_queue(run)
    queues = {q.purpose: q for q in ReviewQueue.objects.for_run(run)}
    assert set(queues) == {"curation", "audit", "adjudication"}
    assert queues["audit"].blind and not queues["curation"].blind
    assert {t.queue.purpose for t in ReviewTask.objects.all()} == {"curation", "audit"}
    assert set(ReviewQueue.objects.rating_ids_for(annotator)) == {
        queues["curation"].pk,
        queues["audit"].pk,
    }


def test_once_members_are_assigned_people_rate_only_in_their_queues(db, annotator, colleague):
    """Audit-only raters: bob audits, alice curates, nobody does both."""
    run = make_run(review={"audit_share": 1.0})
    curated = make_candidate(run, confidence=0.3)
    audited = make_candidate(run, confidence=0.9)
    populate_queue(run)
    default_queues(run)["audit"].members.set([colleague])
    assert ReviewTask.objects.claim_next(colleague).candidate_id == audited.pk
    assert ReviewTask.objects.claim_next(annotator).candidate_id == curated.pk
    record_decision(task_of(curated).pk, annotator, "accept")
    assert ReviewTask.objects.claim_next(annotator) is None  # the audit item is bob's


def test_researchers_and_admins_rate_only_where_they_are_members(db, researcher, admin_user):
    run = make_run(review={"audit_share": 0})
    (candidate,) = queued(run, 0.3)
    assert ReviewTask.objects.claim_next(researcher) is None
    assert ReviewTask.objects.claim_next(admin_user) is None
    default_queues(run)["curation"].members.set([researcher])
    assert ReviewTask.objects.claim_next(researcher).candidate_id == candidate.pk


def test_a_member_of_no_queue_sees_nothing_once_the_work_is_assigned(
    run, annotator_client, colleague
):
    queued(run, 0.3, 0.35)
    queue, added = create_queue(
        run, None, name="Team A", purpose="custom", filters={"gate": "needs_review"},
        members=[colleague],
    )  # fmt: skip
    assert added == 2
    # The team's queue took the open work out of the run's curation queue.
    assert not ReviewTask.objects.filter(queue__purpose="curation").exists()
    assert "Nothing left for you" in annotator_client.get("/review/").content.decode()
    assert served(client_for(colleague)).queue == queue


def test_a_non_members_post_to_a_queue_item_is_refused(run, annotator_client, colleague):
    (candidate,) = queued(run, 0.3)
    create_queue(run, None, name="Team A", filters={"gate": "needs_review"}, members=[colleague])
    task = ReviewTask.objects.get(candidate=candidate)
    response = decide(annotator_client, task, "accept")
    assert response.status_code == 302
    assert not Verdict.objects.exists()
    page = annotator_client.get(response["Location"]).content.decode()
    assert "this candidate is not leased to you" in page
    # Not even with the task leased to her by some other route: membership is checked again.
    ReviewTask.objects.filter(pk=task.pk).update(leased_to=User_of(annotator_client))
    decide(annotator_client, task, "accept")
    assert not Verdict.objects.exists()


def User_of(client: Client):  # noqa: N802 - reads like the user it returns
    from django.contrib.auth.models import User

    return User.objects.get(pk=client.session["_auth_user_id"])


def test_leases_are_per_queue(run, annotator):
    first, second = queued(run, 0.3, 0.4)
    other, _ = create_queue(run, None, name="Second opinion", filters={"gate": "needs_review"})
    curation = default_queues(run)["curation"]
    held = ReviewTask.objects.claim_next(annotator, queues=[other.pk])
    assert held.queue == other
    # Holding a task in one queue does not stop taking one in another (nor serve it there).
    assert ReviewTask.objects.claim_next(annotator, queues=[curation.pk]) is None  # moved away
    assert ReviewTask.objects.claim_next(annotator, queues=[other.pk]).pk == held.pk


def test_a_rater_can_work_in_one_of_their_queues_only(run, annotator_client, annotator):
    queued(run, 0.3)
    create_queue(run, None, name="Tau only", filters={"gate": "needs_review"})
    make_candidate(run, confidence=0.25)
    populate_queue(run)  # the new candidate lands in the run's curation queue
    tau = ReviewQueue.objects.get(name="Tau only")
    annotator_client.get(f"/review/?queue={tau.pk}")
    assert served(annotator_client).queue == tau
    body = annotator_client.get("/review/").content.decode()
    assert "Working in one queue: <strong>Tau only</strong>" in body
    annotator_client.get("/review/?queue=all")
    assert "Working in all my queues" in annotator_client.get("/review/").content.decode()


# -- a researcher's queues and studies ----------------------------------------------------------


def test_an_admin_creates_a_queue_with_guidelines_and_members_from_the_page(
    run, admin_client_, annotator, colleague
):
    queued(run, 0.3, 0.45)
    data = {
        "name": "Hard ones", "purpose": "custom", "gate": "needs_review", "max_confidence": "0.4",
        "overlap": "2", "order": "lowest_confidence_first",
        "members": [annotator.pk, colleague.pk], "guidelines": "# Rules\nOnly **grounded** goals.",
    }  # fmt: skip
    response = admin_client_.post(reverse("run_queues", args=[run.pk]), data)
    queue = ReviewQueue.objects.get(name="Hard ones")
    assert response.status_code == 302 and response["Location"] == reverse(
        "queue_detail", args=[queue.pk]
    )
    assert set(queue.members.values_list("username", flat=True)) == {"alice", "bob"}
    assert queue.overlap == 2 and queue.tasks.count() == 2  # one item (0.3), two raters
    assert queue.current_guidelines().version == 1
    page = admin_client_.get(reverse("run_queues", args=[run.pk])).content.decode()
    assert "Hard ones" in page and "alice, bob" in page and "0 / 2" in page


def test_a_bad_queue_is_refused_with_its_reason(run, researcher_client):
    url = reverse("run_queues", args=[run.pk])
    data = {"name": "S", "purpose": "study", "overlap": "3", "order": "random"}
    response = researcher_client.post(url, data, follow=True)
    assert "sample_size: a study needs its sample size N" in response.content.decode()
    data = {"name": "Curation", "purpose": "custom", "overlap": "1", "order": "random"}
    default_queues(run)
    body = researcher_client.post(url, data, follow=True).content.decode()
    assert "already has a queue named" in body and ReviewQueue.objects.count() == 3


def test_annotators_cannot_manage_queues(run, annotator_client):
    queue = default_queues(run)["curation"]
    assert annotator_client.get(reverse("run_queues", args=[run.pk])).status_code == 403
    assert annotator_client.post(reverse("queue_detail", args=[queue.pk])).status_code == 403


def test_a_study_samples_n_candidates_for_k_blind_raters(db):
    run = make_run(review={"audit_share": 0})
    for i in range(30):
        make_candidate(run, confidence=0.3 + i / 50)
    make_candidate(run, confidence=0.1)  # rejected by the gate: never sampled
    populate_queue(run)
    study, added = create_queue(run, None, name="Paper", purpose="study", sample_size=12, overlap=3)
    assert added == 36 and study.blind
    assert set(study.tasks.values_list("kind", flat=True)) == {"audit"}
    sampled = set(study.tasks.values_list("candidate_id", flat=True))
    assert len(sampled) == 12
    assert not Candidate.objects.filter(pk__in=sampled, gate="rejected").exists()
    # It takes nothing from anyone: the curation queue keeps its work (the 10 below 0.5).
    assert ReviewTask.objects.filter(queue__purpose="curation").count() == 10


def test_a_studys_precision_and_fleiss_kappa_are_on_the_precision_page(db, researcher_client):
    run = make_run(review={"audit_share": 0})
    for _ in range(12):
        make_candidate(run, confidence=0.8)
    study, _ = create_queue(run, None, name="Paper", purpose="study", sample_size=10, overlap=3)
    raters = [make_user(f"r{i}", "annotator") for i in range(3)]
    study.members.set(raters)
    for n, rater in enumerate(raters):
        for i in range(10):
            task = ReviewTask.objects.claim_next(rater)
            record_decision(task.pk, rater, "reject" if (i == 0 and n < 2) else "accept")
    body = researcher_client.get(reverse("precision:run", args=[run.pk])).content.decode()
    assert "Studies" in body and "Paper" in body
    f = researcher_client.get(reverse("precision:download", args=[run.pk, "json"])).json()
    (figure,) = f["studies"]
    assert (figure["sample"], figure["complete"], figure["raters_per_item"]) == (10, 10, 3)
    assert figure["precision"]["k"] == 9 and figure["precision"]["n"] == 10
    # Fleiss: one item split 1-2, nine unanimous of three raters.
    agreement, valid_share = (9 + 1 / 3) / 10, 28 / 30
    chance = valid_share**2 + (1 - valid_share) ** 2
    assert figure["kappa"]["value"] == pytest.approx((agreement - chance) / (1 - chance))
    assert figure["kappa_text"] in body


# -- adjudication -------------------------------------------------------------------------------


def test_a_disagreement_goes_to_adjudication_and_the_adjudicator_decides(
    db, annotator, colleague, adjudicator
):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    (candidate,) = queued(run, 0.3)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
    assert not ReviewTask.objects.filter(kind="adjudication").exists()
    record_decision(
        ReviewTask.objects.claim_next(colleague).pk, colleague, "reject", reason="vague"
    )
    candidate.refresh_from_db()
    assert candidate.review_state == "rejected"  # a tie, until adjudicated
    client = client_for(adjudicator)
    page = client.get(reverse("adjudicate")).content.decode()
    assert "alice" in page and "bob" in page and "vague" in page  # every verdict and reason
    task = ReviewTask.objects.get(kind="adjudication")
    assert task.leased_to == adjudicator
    decide(client, task, "edit", edited_goal="Report the MOQ of MicroMetals")
    candidate.refresh_from_db()
    assert (candidate.review_state, candidate.final_goal) == (
        "edited",
        "Report the MOQ of MicroMetals",
    )
    assert Verdict.objects.get(rater=adjudicator).kind == "adjudication"
    assert "No disagreement waits for you" in client.get(reverse("adjudicate")).content.decode()


def test_annotators_cannot_adjudicate_and_raters_never_adjudicate_their_own(
    db, annotator, colleague, researcher
):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    queued(run, 0.3)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
    record_decision(ReviewTask.objects.claim_next(colleague).pk, colleague, "reject")
    assert client_for(annotator).get(reverse("adjudicate")).status_code == 403
    task = ReviewTask.objects.get(kind="adjudication")
    assert ReviewTask.objects.claim_next(annotator, queues=[task.queue_id]) is None  # rated it
    assert ReviewTask.objects.claim_next(researcher, queues=[task.queue_id]).pk == task.pk


def test_an_undo_that_ends_the_disagreement_takes_it_out_of_adjudication(db, annotator, colleague):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    queued(run, 0.3)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
    record_decision(ReviewTask.objects.claim_next(colleague).pk, colleague, "reject")
    assert ReviewTask.objects.filter(kind="adjudication").exists()
    Verdict.objects.undo_last(colleague)
    assert not ReviewTask.objects.filter(kind="adjudication").exists()


def test_a_share_of_single_approvals_is_reaudited_blind_by_someone_else(db, annotator, colleague):
    run = make_run(review={"audit_share": 0, "reaudit_share": 1.0})
    (candidate,) = queued(run, 0.3)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
    reaudit = ReviewTask.objects.get(kind="audit")
    assert reaudit.queue.purpose == "audit" and reaudit.candidate_id == candidate.pk
    assert ReviewTask.objects.claim_next(annotator) is None  # never the rater who approved it
    body = client_for(colleague).get("/review/").content.decode()
    assert "Original" not in body and "confidence" not in body.lower()  # blind
    assert candidate.hindsight_goal in body


# -- guidelines ---------------------------------------------------------------------------------


HOSTILE_MARKDOWN = """# Rules
<script>alert('raw')</script>
<img src=x onerror="alert('img')">
<div style="position:fixed;top:0">covered</div>
<a href="javascript:alert('a')" onclick="alert('click')">raw link</a>
[md link](javascript:alert('md')) [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[vb](vbscript:msgbox(1)) <javascript:alert('autolink')>
![pixel](https://tracker.example/p.png "x\\" onerror=\\"alert('t')")
<iframe src="https://evil.example"></iframe><style>body{display:none}</style>
<!-- <script>alert('comment')</script> -->
[the handbook](https://example.org/handbook "Handbook") and **bold** text
"""


def guidelines_html(body: str) -> str:
    """The rendered guidelines, inside the page's own collapsed wrapper."""
    start = body.index('<div class="guidelines-text">') + len('<div class="guidelines-text">')
    return body[start : body.index("</details>", start)]


def test_hostile_markdown_in_guidelines_renders_nothing_that_runs(run, annotator_client):
    queued(run, 0.3)
    default_queues(run)["curation"].set_guidelines(HOSTILE_MARKDOWN, None)
    body = annotator_client.get("/review/").content.decode()
    assert '<details class="guidelines" data-key="g" data-key-action="toggle">' in body  # collapsed
    html = guidelines_html(body)[: -len("</div>\n")]
    tags = re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>", html)  # real markup, not escaped text
    assert {name for name, _ in tags} <= {"h1", "p", "a", "strong"}
    for name, attributes in tags:
        assert not re.search(r"\son\w+\s*=|style\s*=", attributes, re.I), (name, attributes)
    assert "<!--" not in html
    links = re.findall(r"<a\s[^>]*>", html)
    assert links == [
        '<a href="https://example.org/handbook" title="Handbook" target="_blank" '
        'rel="noopener noreferrer">'
    ]
    assert "&lt;script&gt;alert('raw')&lt;/script&gt;" in html  # shown as text, escaped
    assert "<h1>Rules</h1>" in html and "<strong>bold</strong>" in html


def test_each_verdict_records_the_guidelines_version_it_was_made_under(run, annotator_client):
    first, second = queued(run, 0.3, 0.4)
    curation = default_queues(run)["curation"]
    curation.set_guidelines("Version one", None)
    decide(annotator_client, served(annotator_client), "accept")
    assert curation.set_guidelines("Version one", None).version == 1  # unchanged: no version
    curation.set_guidelines("Version two", None)
    decide(annotator_client, served(annotator_client), "accept")
    versions = list(Verdict.objects.order_by("id").values_list("guidelines__version", flat=True))
    assert versions == [1, 2]


def test_a_researcher_edits_members_and_guidelines_of_a_queue(run, researcher_client, annotator):
    queue = default_queues(run)["audit"]
    url = reverse("queue_detail", args=[queue.pk])
    data = {"members": [annotator.pk], "guidelines": "Judge the goal only.", "active": "on"}
    assert researcher_client.post(url, data).status_code == 302
    assert list(queue.members.all()) == [annotator]
    page = researcher_client.get(url).content.decode()
    assert "Judge the goal only." in page and "version 1" in page.lower()


# -- comments -----------------------------------------------------------------------------------


def test_raters_and_researchers_comment_on_a_candidate(run, annotator_client, researcher_client):
    (candidate,) = queued(run, 0.3)
    served(annotator_client)
    url = reverse("comment", args=[candidate.pk])
    response = annotator_client.post(url, {"text": "<b>unsure</b> about step 2"}, **HX)
    body = response.content.decode()
    assert "&lt;b&gt;unsure&lt;/b&gt; about step 2" in body and "<b>unsure" not in body
    researcher_client.post(url, {"text": "Agreed, see step 2", "next": "/review/"})
    page = annotator_client.get("/review/").content.decode()
    assert "Agreed, see step 2" in page and "rachel" in page
    assert Comment.objects.count() == 2


def test_comments_never_show_on_a_blind_item(db, annotator, colleague, researcher):
    run = make_run(review={"audit_share": 1.0})
    candidate = make_candidate(run, confidence=0.9)
    populate_queue(run)
    Comment.objects.create(candidate=candidate, author=researcher, text="LOOKS WRONG TO ME")
    client = client_for(annotator)
    body = client.get("/review/").content.decode()
    assert task_of(candidate, kind="audit").leased_to == annotator
    assert "LOOKS WRONG TO ME" not in body
    # The same form as on every item (its absence would give a blind item away); what comes back
    # is the rater's own note only, never other people's.
    assert "Add a comment" in body and "No comments yet." in body
    url = reverse("comment", args=[candidate.pk])
    answer = client.post(url, {"text": "mine"}, headers={"HX-Request": "true"}).content.decode()
    assert "mine" in answer and "LOOKS WRONG TO ME" not in answer


def test_a_rater_cannot_comment_on_a_candidate_they_never_saw(run, annotator_client):
    (candidate,) = queued(run, 0.3)
    response = annotator_client.post(reverse("comment", args=[candidate.pk]), {"text": "hi"})
    assert response.status_code == 403 and not Comment.objects.exists()


# -- rater pages --------------------------------------------------------------------------------


def test_the_rater_pages_show_each_raters_figures_to_researchers(
    db, annotator, colleague, adjudicator, researcher_client
):
    run = make_run(review={"raters_per_candidate": 2, "audit_share": 0})
    queued(run, *[0.21 + i / 100 for i in range(12)])
    for i in range(12):
        record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
        decision = "reject" if i < 3 else "accept"
        record_decision(ReviewTask.objects.claim_next(colleague).pk, colleague, decision)
    for _ in range(3):  # the adjudicator sides with alice twice, with bob once
        task = ReviewTask.objects.claim_next(
            adjudicator, queues=[default_queues(run)["adjudication"].pk]
        )
        decision = "accept" if Verdict.objects.filter(rater=adjudicator).count() < 2 else "reject"
        record_decision(task.pk, adjudicator, decision)
    page = researcher_client.get(reverse("raters") + f"?run={run.pk}").content.decode()
    assert "alice" in page and "bob" in page
    alice = researcher_client.get(reverse("rater", args=[annotator.pk]) + f"?run={run.pk}")
    body = alice.content.decode()
    f = alice.context["f"]
    assert f["decisions"] == 12 and f["shares"]["accept"]["n"] == 12
    assert f["accuracy_adjudication"]["k"] == 2 and f["accuracy_adjudication"]["n"] == 3
    (bob,) = f["agreement"]
    assert (bob["username"], bob["n"]) == ("bob", 12) and "bob" in body
    assert '<svg class="chart drift"' in body and "<polyline" in body
    assert f["median_seconds"] is None  # decided through the ORM, with no time recorded


def test_annotators_see_their_own_progress_only(run, annotator_client, annotator, colleague):
    queued(run, 0.3, 0.4)
    decide(annotator_client, served(annotator_client), "accept")
    page = annotator_client.get(reverse("my_progress")).content.decode()
    assert "Curation" in page and "Decisions in all</dt><dd>1" in page
    assert annotator_client.get(reverse("raters")).status_code == 403
    assert annotator_client.get(reverse("rater", args=[colleague.pk])).status_code == 403
    assert annotator_client.get(reverse("rater", args=[annotator.pk])).status_code == 403
