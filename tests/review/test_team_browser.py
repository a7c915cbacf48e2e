"""A review team in the browser: an admin makes a queue with guidelines and two members, both
review it by keyboard with two raters per item, their disagreement is adjudicated, and the
rater pages show them both; someone in no queue sees nothing, and cannot decide by POST."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from relabel.models import Candidate
from review.models import ReviewQueue, ReviewTask, Verdict
from review.queue import populate_queue
from tests.conftest import client_for, make_user
from tests.factories import make_candidate, make_run

pytestmark = pytest.mark.browser

GUIDELINES = """# How to judge
Accept a goal only when **every** part of it is shown by the steps.
<script>alert('guidelines')</script> [handbook](https://example.org/handbook)"""


def log_in(page: Page, username: str, next_url: str = "/review/") -> None:
    page.context.clear_cookies()
    page.goto(f"/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    # The login page's own URL ends with the next one: wait until it is left behind.
    page.wait_for_url(lambda url: "/login/" not in url and url.endswith(next_url))
    page.wait_for_load_state()


def goal_on_screen(page: Page) -> str:
    return page.locator("#proposed-goal").inner_text()


def make_the_queue(page: Page, run) -> ReviewQueue:
    log_in(page, "adam", f"/review/runs/{run.pk}/queues/")
    page.fill("#id_name", "Team queue")
    page.select_option("#id_gate", "needs_review")
    page.fill("#id_overlap", "2")
    page.select_option("#id_members", label=["alice", "bob"])
    page.fill("#id_guidelines", GUIDELINES)
    page.get_by_role("button", name="Make the queue").click()
    expect(page.locator("h1").first).to_contain_text("Team queue")
    expect(page.locator(".guidelines-text h1")).to_have_text("How to judge")
    return ReviewQueue.objects.get(name="Team queue")


def review_both(page: Page, decisions: list[str], goals: dict[str, str]) -> None:
    """Decides the items in the order they come, by keyboard: a to accept; r, then 6 ("other"),
    a word, Enter to reject."""
    for n, decision in enumerate(decisions, 1):
        expect(page.locator("#proposed-goal")).to_be_visible()
        if decision == "accept":
            page.keyboard.press("a")
        else:
            page.keyboard.press("r")
            page.keyboard.press("6")
            expect(page.locator("#reject-text")).to_be_focused()
            page.keyboard.type(f"not shown ({goals and 'step 2'})")
            page.keyboard.press("Enter")
        expect(page.locator(".queue-progress")).to_contain_text(f"{n} done today")
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")


def test_a_team_reviews_a_queue_with_adjudication(page):
    for name, role in [("adam", "admin"), ("alice", "annotator"), ("bob", "annotator")]:
        make_user(name, role)
    make_user("judy", "adjudicator")
    carol = make_user("carol", "annotator")
    run = make_run(review={"audit_share": 0})
    first = make_candidate(run, confidence=0.3, goal="Report the supplier with the lowest MOQ")
    second = make_candidate(run, confidence=0.4, goal="List the suppliers' prices per kg")
    populate_queue(run)

    queue = make_the_queue(page, run)
    assert queue.overlap == 2 and queue.tasks.count() == 4

    log_in(page, "alice")
    guidelines = page.locator("details.guidelines")
    expect(guidelines).not_to_have_attribute("open", "")
    page.keyboard.press("g")
    expect(guidelines).to_have_attribute("open", "")
    expect(guidelines.locator("strong")).to_have_text("every")
    assert guidelines.locator("script").count() == 0
    expect(guidelines.get_by_role("link", name="handbook")).to_have_attribute(
        "rel", "noopener noreferrer"
    )
    review_both(page, ["accept", "accept"], {})

    log_in(page, "bob")
    order = [goal_on_screen(page)]
    page.keyboard.press("a")
    expect(page.locator(".queue-progress")).to_contain_text("1 done today")
    order.append(goal_on_screen(page))
    review_both(page, ["reject"], {"why": "step 2"})
    disputed = Candidate.objects.get(hindsight_goal=order[1])
    assert disputed.pk in (first.pk, second.pk)
    assert ReviewTask.objects.get(kind="adjudication").candidate_id == disputed.pk

    log_in(page, "judy", "/review/adjudicate/")
    verdicts = page.locator(".all-verdicts")
    expect(verdicts).to_contain_text("alice")
    expect(verdicts).to_contain_text("bob")
    expect(verdicts).to_contain_text("not shown")
    page.keyboard.press("a")
    expect(page.get_by_text("No disagreement waits for you")).to_be_visible()
    disputed.refresh_from_db()
    assert disputed.review_state == "accepted"  # the adjudication decides, not the tie

    log_in(page, "adam", f"/review/raters/?run={run.pk}")
    rows = page.locator("tr.rater-row")
    expect(rows).to_have_count(3)  # alice, bob and the adjudicator
    expect(page.locator("table.raters")).to_contain_text("alice")
    expect(page.locator("table.raters")).to_contain_text("bob")
    page.get_by_role("link", name="alice").click()
    expect(page.locator("table.agreement")).to_contain_text("bob")

    log_in(page, "carol")
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")
    task = queue.tasks.first()
    ReviewTask.objects.filter(pk=task.pk).update(done_at=None, done_by=None)
    before = Verdict.objects.count()
    response = client_for(carol).post(
        reverse("decide", args=[task.pk]), {"decision": "accept", "started_at": f"{time.time()}"}
    )
    assert response.status_code == 302 and Verdict.objects.count() == before
    assert page.problems == []
