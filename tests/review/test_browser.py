"""Browser tests of the review page: a whole session by keyboard, trajectory markup shown as text,
and the bundled sample reviewed to the end (Playwright driving Debian's chromium against the live
server). They fail (never skip) when /usr/bin/chromium is missing: `make test` installs it when it
may (bin/ensure-services).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from relabel.models import Candidate
from review.models import ReviewTask, Verdict
from review.queue import populate_queue
from tests.browser import log_in
from tests.conftest import make_user
from tests.factories import make_candidate, make_run
from tests.review.helpers import XSS_OBSERVATION, XSS_THOUGHT, xss_trajectory

pytestmark = pytest.mark.browser


def shown_goal(page):
    return page.locator("#proposed-goal")


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

    page.keyboard.press("r")  # reject: the second reason, a word about it, Enter sends
    expect(page.locator("[data-choice='1']")).to_be_focused()
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
    expect(page.locator("#item-heading")).to_be_focused()

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
        if n % 2:
            page.keyboard.press("a")
        else:  # the same keys on every item, blind ones included: r, then a reason's number
            page.keyboard.press("r")
            page.keyboard.press("3")
        expect(page.locator(".queue-progress")).to_contain_text(f"{n} done today")
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")
    assert page.problems == []
    # What is left open is at most the blind re-audit of some of alice's approvals, for others.
    left = ReviewTask.objects.filter(done_at__isnull=True)
    assert set(left.values_list("kind", flat=True)) <= {"audit"}
    assert not left.exclude(candidate__verdicts__rater__username="alice").exists()
    assert Verdict.objects.count() == tasks
    kinds = set(Verdict.objects.values_list("kind", "decision"))
    assert {kind for kind, _ in kinds} == {"audit", "curation"}
    rejections = Verdict.objects.filter(decision__in=["reject", "invalid"])
    assert set(rejections.values_list("reason_code", flat=True)) == {"too_vague"}
