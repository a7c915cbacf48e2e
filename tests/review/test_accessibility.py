"""Every page, for every role, checked by axe-core (the npm package, vendored under
static/vendor/axe-core/ and loaded by these tests only) at WCAG 2.1 A and AA, at 1280 px and at
320 px, where no page may scroll sideways either. The review page is checked in each of its
states: a curation item, a blind item, the reasons, the other goals, the diff, the help, empty."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Page, expect

from relabel.models import Candidate, ImportJob, Run
from review.models import ExportJob
from review.queue import populate_queue
from tests.browser import axe_violations, log_in, scrolls_sideways
from tests.conftest import make_user
from tests.factories import make_candidate, make_run, make_trajectory

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).resolve().parents[2] / "relabel" / "sample" / "agenther.jsonl"
NARROW = {"width": 320, "height": 640}
WIDE = {"width": 1280, "height": 800}


@pytest.fixture
def world(transactional_db) -> dict[str, Any]:
    """A relabeled sample with its queue, a failed and a finished import, a finished export."""
    call_command("import_trajectories", str(SAMPLE), "--dataset", "sample", stdout=StringIO())
    call_command("relabel", "--dataset", "sample", "--backend", "rules", stdout=StringIO())
    run = Run.objects.get()
    candidate = Candidate.objects.filter(run=run).first()
    ImportJob.objects.create(
        dataset_name="d", path="/x", original_name="bad.json", status="failed", error="line 1: no"
    )
    ImportJob.objects.create(
        dataset_name="d",
        path="/y",
        original_name="good.json",
        status="done",
        summary={"imported": 3, "successes": 1, "failures": 2, "format": "agenther"},
    )
    export = ExportJob.objects.create(run=run, format="sft", status="done", manifest={"files": []})
    return {"run": run, "candidate": candidate, "export": export}


def turn_shortcuts_off(page: Page) -> None:
    page.keyboard.press("Escape")  # the help
    with page.expect_response("**/review/shortcuts/"):
        page.get_by_role("button", name="Single-key shortcuts").click()


def check(page: Page, where: str, found: dict[str, Any]) -> None:
    """axe at 1280 px, then the width of a small phone: no violation, no sideways scrolling."""
    violations = axe_violations(page)
    if violations:
        found[f"{where} @1280"] = violations
    page.set_viewport_size(NARROW)
    if scrolls_sideways(page):
        found[f"{where} @320"] = "scrolls sideways"
    violations = axe_violations(page)
    if violations:
        found[f"{where} @320 axe"] = violations
    page.set_viewport_size(WIDE)


def visit(page: Page, urls: list[str], found: dict[str, Any]) -> None:
    for url in urls:
        page.goto(url)
        check(page, url, found)


def test_the_login_page_and_the_403_page(page, world):
    found: dict[str, Any] = {}
    visit(page, ["/login/"], found)
    make_user("eve", "annotator").groups.clear()  # an account with no role
    log_in(page, "eve", then="/")
    expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
    check(page, "403 for a user without a role", found)
    assert found == {}


def test_the_review_page_in_every_state(page, transactional_db):
    alice = make_user("alice", "annotator")
    run = make_run(review={"audit_share": 0})
    trajectory = make_trajectory(run.dataset, goal="Find copper wire under $5/kg from a supplier")
    item = make_candidate(
        run, confidence=0.3, trajectory=trajectory, goal="Find copper wire from a supplier in Lyon"
    )
    item.attempts = [{"attempt": 1, "goal": "Report the lowest MOQ", "refused": ""}]
    item.save()
    populate_queue(run)
    found: dict[str, Any] = {}
    log_in(page, "alice")
    expect(page.locator("#proposed-goal")).to_have_text(item.hindsight_goal)
    states: list[tuple[str, Callable[[], None]]] = [
        ("a curation item", lambda: None),
        ("the word diff", lambda: page.keyboard.press("d")),
        ("the reasons", lambda: page.keyboard.press("r")),
        ("the other goals", lambda: page.keyboard.press("c")),
        ("the help", lambda: page.keyboard.press("?")),
        ("shortcuts off", lambda: turn_shortcuts_off(page)),
    ]
    for name, action in states:
        action()
        check(page, f"review: {name}", found)
    page.goto(reverse("run", args=[run.pk]))  # not for annotators
    check(page, "403 for an annotator", found)
    assert found == {}
    assert alice.verdicts.count() == 0


def test_blind_and_empty_review_pages(page, transactional_db):
    make_user("alice", "annotator")
    run = make_run(review={"audit_share": 1.0})
    make_candidate(run, confidence=0.95)
    populate_queue(run)
    found: dict[str, Any] = {}
    log_in(page, "alice")
    check(page, "review: a blind item", found)
    page.keyboard.press("a")
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")
    check(page, "review: the empty queue", found)
    assert found == {}


def test_every_page_of_a_researcher(page, world):
    make_user("rachel", "researcher")
    run, candidate = world["run"], world["candidate"]
    found: dict[str, Any] = {}
    log_in(page, "rachel", then="/")
    visit(
        page,
        [
            "/",
            reverse("run", args=[run.pk]),
            reverse("candidates", args=[run.pk]),
            reverse("candidate", args=[candidate.pk]),
            reverse("run_review", args=[run.pk]),
            reverse("precision:run", args=[run.pk]),
            reverse("precision:compare") + f"?a={run.pk}&b={run.pk}",
        ],
        found,
    )
    assert found == {}


def test_every_page_of_an_admin(page, world):
    make_user("adam", "admin")
    found: dict[str, Any] = {}
    log_in(page, "adam", then="/")
    visit(page, ["/", "/exports/", reverse("exports:detail", args=[world["export"].pk])], found)
    page.goto("/")
    page.get_by_role("button", name="Start the run").click()  # refused: no dataset chosen
    expect(page.get_by_role("alert")).to_contain_text("Run not started")
    check(page, "home with a refused form", found)
    assert found == {}


def test_the_check_itself_finds_what_is_wrong(page, transactional_db):
    """A check that finds nothing must be able to find something: an image without a text
    alternative and a field without a name are reported, and the pages never load axe."""
    page.goto("/login/")
    assert page.evaluate("typeof window.axe") == "undefined"  # only the tests load it
    page.evaluate(
        """() => { document.querySelector('main').insertAdjacentHTML('beforeend',
        '<img src="data:,"><input type="text">'); }"""
    )
    assert {v["id"] for v in axe_violations(page)} >= {"image-alt", "label"}
