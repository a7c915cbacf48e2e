"""In the browser: a candidate the consistency check flagged never auto-accepts, reaches the
queue with its findings marked in the trajectory, and its flagged turn is rewritten by keyboard.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from relabel.models import Candidate
from review.models import Verdict
from tests.browser import log_in
from tests.conftest import make_user
from tests.factories import make_dataset, make_trajectory
from tests.pipeline.test_consistency import GOAL, STEPS

pytestmark = pytest.mark.browser

FLAG_EVERYTHING = """
consistency = "flag"
accept_threshold = 0.05
reject_threshold = 0.0
severity_delta = 0.0
[review]
audit_share = 0.0
"""


def test_a_flagged_candidate_goes_to_review_with_its_findings_marked(page, tmp_path):
    make_trajectory(make_dataset("copper"), goal=GOAL, steps=STEPS)
    config = tmp_path / "flag.toml"
    config.write_text(FLAG_EVERYTHING)
    call_command("relabel", "--dataset", "copper", "--config", str(config), stdout=StringIO())
    candidate = Candidate.objects.get()
    assert candidate.confidence >= 0.05 and candidate.is_flagged
    assert candidate.gate == Candidate.Gate.NEEDS_REVIEW  # never auto-accepted

    make_user("alice", "annotator")
    log_in(page, "alice")
    marks = page.locator("#step-0 mark.finding")
    expect(marks.first).to_be_visible()
    expect(marks.first).to_have_attribute("title", re.compile("original goal|restates the task"))
    expect(page.locator("[data-consistency]")).to_contain_text("flagged")
    expect(page.locator("#rewrite-0")).to_contain_text("not rewritten")

    page.keyboard.press("e")  # the goal box, then Tab to the flagged turn as it will be exported
    expect(page.locator("#edited-goal")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#rewrite-field-0")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("I search the suppliers first.")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("Nothing left for you")).to_be_visible()
    assert page.problems == []
    verdict = Verdict.objects.get()
    assert verdict.decision == "edit"
    assert verdict.edited_rewrites == {"0": "I search the suppliers first."}
