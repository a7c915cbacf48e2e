"""Browser tests: Playwright drives Debian's chromium against the live server.

They fail (never skip) when /usr/bin/chromium is missing: `make test` installs it when it may
(bin/ensure-services).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from playwright.sync_api import Page, expect, sync_playwright

from relabel.models import Candidate
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.conftest import make_user
from tests.factories import make_candidate, make_run
from tests.review.helpers import XSS_OBSERVATION, XSS_THOUGHT, xss_trajectory

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(transactional_db, live_server, monkeypatch) -> Iterator[Page]:
    """A chromium page on the live server, recording console errors and dialogs."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are
    # still plain synchronous calls.
    monkeypatch.setitem(os.environ, "DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.problems = []  # console errors, uncaught exceptions and dialogs, as they happen
        page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
        yield page
        # The test's queries ran while Playwright's loop was current, on connections that
        # pytest-django does not see: close them here, or the test database cannot be dropped.
        connections.close_all()
        browser.close()


def log_in(page: Page, username: str) -> None:
    page.goto("/login/?next=/review/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/")
    expect(page.locator("#review")).to_be_visible()


def shown_goal(page: Page):
    return page.locator(".goal-box").first.locator(".goal").first


def test_a_whole_review_session_by_keyboard(page):
    alice = make_user("alice", "annotator")
    run = make_run(review={"audit_share": 0})
    c1, c2, c3, c4 = (
        make_candidate(run, confidence=0.21 + i / 100, goal=f"Goal number {i} about suppliers")
        for i in range(1, 5)
    )
    populate_queue(run)
    log_in(page, "alice")
    page.evaluate("window.sameDocument = true")  # gone if any decision reloads the page

    expect(shown_goal(page)).to_have_text(c1.hindsight_goal)
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_be_visible()
    page.keyboard.press("?")
    expect(page.locator("[data-help]")).to_be_hidden()
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator("#step-1")).to_have_class("step current-step")
    page.keyboard.press("k")
    expect(page.locator("#step-0")).to_have_class("step current-step")

    page.keyboard.press("a")  # accept
    expect(shown_goal(page)).to_have_text(c2.hindsight_goal)

    page.keyboard.press("e")  # edit: the goal box takes the keys until Ctrl+Enter saves
    expect(page.locator("#edited-goal")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("Report the supplier with the lowest MOQ")
    page.keyboard.press("Control+Enter")
    expect(shown_goal(page)).to_have_text(c3.hindsight_goal)

    page.keyboard.press("r")  # reject: pick the second reason, add a word, Enter sends
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.type("restates it")
    page.keyboard.press("Enter")
    expect(shown_goal(page)).to_have_text(c4.hindsight_goal)

    page.keyboard.press("u")  # undo the rejection: the third candidate comes back
    expect(shown_goal(page)).to_have_text(c3.hindsight_goal)
    page.keyboard.press("a")
    expect(shown_goal(page)).to_have_text(c4.hindsight_goal)
    expect(page.locator(".queue-progress")).to_contain_text("3 done today")

    assert page.evaluate("window.sameDocument") is True
    assert page.problems == []
    verdicts = list(Verdict.objects.order_by("id").values_list("candidate_id", "decision"))
    assert verdicts == [
        (c1.pk, "accept"),
        (c2.pk, "edit"),
        (c3.pk, "reject"),
        (c3.pk, "undo"),
        (c3.pk, "accept"),
    ]
    reject = Verdict.objects.get(decision="reject")
    assert (reject.reason_code, reject.reason) == ("mentions_original", "restates it")
    assert reject.undone_by.rater == alice
    assert all(v.seconds_spent is not None for v in Verdict.objects.exclude(decision="undo"))
    states = dict(Candidate.objects.values_list("pk", "review_state"))
    assert [states[c.pk] for c in (c1, c2, c3, c4)] == [
        "accepted",
        "edited",
        "accepted",
        "unreviewed",
    ]
    assert Candidate.objects.get(pk=c2.pk).final_goal == "Report the supplier with the lowest MOQ"


def test_trajectory_markup_is_shown_as_text_and_runs_nothing(page):
    make_user("alice", "annotator")
    run = make_run(review={"audit_share": 0})
    make_candidate(run, confidence=0.3, trajectory=xss_trajectory(run))
    populate_queue(run)
    log_in(page, "alice")
    trajectory = page.locator(".trajectory")
    expect(trajectory.get_by_text(XSS_THOUGHT)).to_be_visible()
    expect(trajectory.get_by_text(XSS_OBSERVATION)).to_be_visible()
    expect(trajectory.get_by_text("</pre><script>alert(3)</script>")).to_be_visible()
    assert trajectory.locator("img, script, b").count() == 0
    page.keyboard.press("j")  # the page's own script still works
    expect(page.locator("#step-0")).to_have_class("step current-step")
    page.wait_for_timeout(300)  # let any stray handler fire before looking
    assert page.problems == []  # no dialog, no CSP violation, no script error


def test_the_bundled_sample_is_reviewed_to_the_end_by_keyboard(page):
    sample = Path(__file__).resolve().parents[2] / "relabel" / "sample" / "agenther.jsonl"
    call_command("import_trajectories", str(sample), "--dataset", "sample", stdout=StringIO())
    call_command(
        "relabel", "--dataset", "sample", "--backend", "rules", "--wait", stdout=StringIO()
    )
    tasks = ReviewTask.objects.count()
    assert tasks >= 3 and ReviewTask.objects.filter(kind="audit").exists()
    make_user("alice", "annotator")
    log_in(page, "alice")
    for n in range(1, tasks + 1):
        page.keyboard.press("a" if n % 2 else "r")
        if n % 2 == 0 and page.locator("#reject-reason").count():  # curation: send the reason
            expect(page.locator("#reject-reason")).to_be_focused()
            page.keyboard.press("Tab")
            page.keyboard.press("Enter")
        expect(page.locator(".queue-progress")).to_contain_text(f"{n} done today")
    expect(page.get_by_text("Nothing left for you")).to_be_visible()
    assert page.problems == []
    # What is left open is at most the blind re-audit of some of alice's approvals, for others.
    left = ReviewTask.objects.filter(done_at__isnull=True)
    assert set(left.values_list("kind", flat=True)) <= {"audit"}
    assert not left.exclude(candidate__verdicts__rater__username="alice").exists()
    assert Verdict.objects.count() == tasks
    kinds = set(Verdict.objects.values_list("kind", "decision"))
    assert {kind for kind, _ in kinds} == {"audit", "curation"}
