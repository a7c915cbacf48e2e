"""The review page's keyboard contract, driven by keyboard alone in chromium, checking what was
stored: the same keys on curation and on blind audit items (a, e, r + 1-9 / Enter / Esc, c + 1-9,
s, u, j/k, o, d, ?, g), no key swallowed by a focused control, the shortcuts turned off and on,
and focus and announcements after each decision."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from relabel.models import Candidate
from review.models import RaterSettings, Verdict
from review.queue import populate_queue
from tests.browser import log_in
from tests.conftest import make_user
from tests.factories import make_candidate, make_run, make_trajectory

pytestmark = pytest.mark.browser

REASONS = [code for code, _ in Verdict.REJECT_REASONS]


def curation_items(n: int, **candidate) -> list[Candidate]:
    run = make_run(review={"audit_share": 0})
    made = [
        make_candidate(
            run, confidence=0.21 + i / 100, goal=f"Goal number {i} about suppliers", **candidate
        )
        for i in range(n)
    ]
    populate_queue(run)
    return made


def audit_items(n: int) -> list[Candidate]:
    """Auto-accepted candidates, every one audited: blind items only."""
    run = make_run(review={"audit_share": 1.0})
    made = [
        make_candidate(run, confidence=0.9 + i / 100, goal=f"Audited goal {i}") for i in range(n)
    ]
    populate_queue(run)
    return made


def goal_shown(page: Page):
    return page.locator("#proposed-goal")


def verdicts() -> list[tuple[int, str, str, str]]:
    rows = Verdict.objects.order_by("id").values_list(
        "candidate_id", "kind", "decision", "reason_code"
    )
    return list(rows)


def next_item(page: Page, candidate: Candidate) -> None:
    """Waits for ``candidate`` to be the item on the page (the previous decision was stored)."""
    expect(goal_shown(page)).to_have_text(candidate.hindsight_goal)


# -- reject: r opens the reasons -----------------------------------------------------------------


def test_r_then_a_number_rejects_at_once_with_that_reason(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("r")
    page.keyboard.press("3")
    next_item(page, second)
    assert verdicts() == [(first.pk, "curation", "reject", REASONS[2])]
    assert page.problems == []


def test_r_then_enter_sends_the_highlighted_reason(page):
    make_user("alice", "annotator")
    first, second, third = curation_items(3)
    log_in(page, "alice")
    page.keyboard.press("r")  # the first reason is highlighted
    expect(page.locator("[data-choice='1']")).to_be_focused()
    page.keyboard.press("Enter")
    next_item(page, second)
    page.keyboard.press("r")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    next_item(page, third)
    assert verdicts() == [
        (first.pk, "curation", "reject", REASONS[0]),
        (second.pk, "curation", "reject", REASONS[2]),
    ]


def test_escape_closes_the_reasons_with_nothing_sent(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("r")
    page.keyboard.press("ArrowDown")  # a reason chosen, then abandoned
    page.keyboard.press("Escape")
    expect(page.locator(".reject-picker")).not_to_have_attribute("open", "")
    page.keyboard.press("r")
    page.keyboard.press("Tab")  # into the free text: Esc there closes too
    page.keyboard.type("no")
    page.keyboard.press("Escape")
    expect(page.locator(".reject-picker")).not_to_have_attribute("open", "")
    assert Verdict.objects.count() == 0
    page.keyboard.press("a")  # and every key still works
    next_item(page, second)
    assert verdicts() == [(first.pk, "curation", "accept", "")]


def test_other_asks_for_a_word_before_it_sends(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("r")
    page.keyboard.press(str(REASONS.index("other") + 1))
    expect(page.locator("#reject-text")).to_be_focused()
    page.keyboard.type("the goal names the wrong store")
    page.keyboard.press("Enter")
    next_item(page, second)
    verdict = Verdict.objects.get()
    assert (verdict.reason_code, verdict.reason) == ("other", "the goal names the wrong store")


def test_no_key_is_swallowed_by_a_focused_control(page):
    make_user("alice", "annotator")
    first, second, third = curation_items(3)
    log_in(page, "alice")
    page.keyboard.press("r")  # focus on a reason (a radio button): s still skips
    expect(page.locator("[data-choice='1']")).to_be_focused()
    page.keyboard.press("s")
    next_item(page, second)
    page.locator("[data-key='a']").focus()  # focus on a button: e still edits
    page.keyboard.press("e")
    expect(page.locator("#edited-goal")).to_be_focused()
    page.keyboard.press("Escape")
    page.locator(".reject-picker summary").focus()  # on a summary: a still accepts
    page.keyboard.press("a")
    next_item(page, third)
    assert [v[2] for v in verdicts()] == ["skip", "accept"]


# -- edit: e, Ctrl+Enter, Esc; c picks one of the relabeler's attempts ----------------------------


def test_e_edits_the_goal_ctrl_enter_saves_and_esc_cancels(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("e")
    page.keyboard.type(" quickly")
    page.keyboard.press("Escape")  # cancelled: nothing stored, the box as it was
    expect(page.locator("#edited-goal")).to_have_value(first.hindsight_goal)
    expect(page.locator("#item-heading")).to_be_focused()
    assert Verdict.objects.count() == 0
    page.keyboard.press("e")
    page.keyboard.type(", by price")
    page.keyboard.press("Control+Enter")
    next_item(page, second)
    verdict = Verdict.objects.get()
    assert verdict.decision == "edit" and verdict.edit_source == "typed"
    assert verdict.edited_goal == first.hindsight_goal + ", by price"


def test_c_then_a_number_takes_one_of_the_relabelers_attempts(page):
    make_user("alice", "annotator")
    run = make_run(review={"audit_share": 0})
    first = make_candidate(run, confidence=0.3)
    first.attempts = [
        {"attempt": 1, "goal": "Find copper wire", "refused": "the goal quotes the original goal"},
        {"attempt": 2, "goal": "Report the supplier with the lowest MOQ", "refused": ""},
        {"attempt": 3, "goal": first.hindsight_goal, "refused": ""},
    ]
    first.save()
    second = make_candidate(run, confidence=0.4, goal="The second goal")
    populate_queue(run)
    log_in(page, "alice")
    page.keyboard.press("c")
    expect(page.get_by_text("Report the supplier with the lowest MOQ")).to_be_visible()
    expect(page.get_by_text("Set aside by the pipeline: the goal quotes")).to_be_visible()
    page.keyboard.press("2")
    next_item(page, second)
    verdict = Verdict.objects.get()
    assert (verdict.decision, verdict.edit_source) == ("edit", "attempt:2")
    assert verdict.edited_goal == "Report the supplier with the lowest MOQ"
    first.refresh_from_db()
    assert first.final_goal == "Report the supplier with the lowest MOQ"


# -- skip, undo, steps, observations, diff, help, guidelines -------------------------------------


def test_s_skips_and_u_undoes(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("a")
    next_item(page, second)
    page.keyboard.press("u")
    next_item(page, first)  # the undone item comes back
    page.keyboard.press("s")
    next_item(page, second)
    assert [v[2] for v in verdicts()] == ["accept", "undo", "skip"]


def test_j_and_k_move_between_steps_and_o_opens_the_current_observation(page):
    make_user("alice", "annotator")
    long_rows = "\n".join(f"row {i}: MicroMetals $5.{i:02d}/kg" for i in range(40))
    steps = [
        {
            "thought": "Search",
            "action": "search",
            "action_input": {"q": "wire"},
            "observation": "short",
        },
        {"thought": "Read", "action": "read", "action_input": {}, "observation": long_rows},
    ]
    run = make_run(review={"audit_share": 0})
    make_candidate(run, confidence=0.3, trajectory=make_trajectory(run.dataset, steps=steps))
    populate_queue(run)
    log_in(page, "alice")
    observation = page.locator("#step-1 [data-observation]")
    expect(observation).not_to_have_attribute("open", "")  # long: starts collapsed
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator("#step-1")).to_have_class("step current-step")
    expect(page.locator("#step-1")).to_be_focused()
    page.keyboard.press("o")
    expect(observation).to_have_attribute("open", "")
    expect(page.get_by_text("row 39: MicroMetals")).to_be_visible()
    page.keyboard.press("o")
    expect(observation).not_to_have_attribute("open", "")
    page.keyboard.press("k")
    expect(page.locator("#step-0")).to_have_class("step current-step")
    page.keyboard.press("o")  # step 0's short observation starts open: o closes it
    expect(page.locator("#step-0 [data-observation]")).not_to_have_attribute("open", "")


def test_d_shows_and_hides_the_word_diff(page):
    make_user("alice", "annotator")
    run = make_run(review={"audit_share": 0})
    trajectory = make_trajectory(run.dataset, goal="Find copper wire under $5/kg from a supplier")
    make_candidate(
        run,
        confidence=0.3,
        trajectory=trajectory,
        goal="Find copper wire from a supplier near Lyon",
    )
    populate_queue(run)
    log_in(page, "alice")
    diff = page.locator("details.diff")
    expect(page.locator(".goal-original")).to_have_text(
        "Find copper wire under $5/kg from a supplier"
    )
    removed, added = diff.locator(".diff-line del"), diff.locator(".diff-line ins")
    expect(removed).to_be_hidden()  # plain text first
    page.keyboard.press("d")
    expect(removed).to_have_text("under $5/kg ")
    expect(added).to_have_text("near Lyon")
    page.keyboard.press("d")
    expect(removed).to_be_hidden()


def test_help_opens_in_view_over_the_page_and_esc_closes_it(page):
    make_user("alice", "annotator")
    curation_items(1)
    log_in(page, "alice")
    page.keyboard.press("j")
    page.keyboard.press("j")  # scrolled down to a step
    page.keyboard.press("?")
    help_dialog = page.locator("dialog[data-help]")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_be_in_viewport(ratio=1)
    page.keyboard.press("a")  # while the help is open, keys do nothing behind it
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    assert Verdict.objects.count() == 0


def test_the_keys_button_works_by_click_enter_and_space(page):
    make_user("alice", "annotator")
    curation_items(1)
    log_in(page, "alice")
    button = page.get_by_role("button", name="All keys")
    help_dialog = page.locator("dialog[data-help]")
    button.click()
    expect(help_dialog).to_be_visible()
    page.keyboard.press("Escape")
    for key in ("Enter", " "):
        button.focus()
        page.keyboard.press(key)
        expect(help_dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(help_dialog).to_be_hidden()
    button.click()
    help_dialog.get_by_role("button", name="Close").click()
    expect(help_dialog).to_be_hidden()
    assert page.problems == []  # no CSP report, no script error


def test_g_opens_the_guidelines_when_the_page_has_them(page):
    make_user("alice", "annotator")
    curation_items(1)
    log_in(page, "alice")
    expect(page.locator("[data-key-hint='g']")).to_be_hidden()  # no guidelines: not offered
    # Guidelines arrive as a partial with data-key="g"; the wiring is the same for any element.
    page.evaluate(
        """() => { const d = document.createElement('details'); d.id = 'guidelines';
        d.setAttribute('data-key', 'g');
        d.innerHTML = '<summary>Guidelines</summary><p>Be fair.</p>';
        document.querySelector('.item-main').prepend(d); }"""
    )
    page.keyboard.press("g")
    expect(page.get_by_text("Be fair.")).to_be_visible()


# -- blind audit items: the same keys, the same reasons ------------------------------------------


def test_audit_items_take_the_same_keys_and_the_same_reasons(page):
    make_user("alice", "annotator")
    items = audit_items(6)
    log_in(page, "alice")
    served = []

    def current() -> Candidate:
        goal = goal_shown(page).inner_text()
        served.append(next(c for c in items if c.hindsight_goal == goal))
        return served[-1]

    def then_next() -> None:
        expect(page.locator(".queue-progress")).to_contain_text(f"{len(served)} done today")

    current()
    page.keyboard.press("r")
    page.keyboard.press("2")  # a number sends at once
    then_next()
    current()
    page.keyboard.press("r")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # Enter sends the highlighted one
    then_next()
    current()
    page.keyboard.press("r")
    page.keyboard.press("Escape")  # nothing sent
    page.keyboard.press("a")
    then_next()
    current()
    page.keyboard.press("e")
    page.keyboard.type(" today")
    page.keyboard.press("Control+Enter")
    then_next()
    stored = [(v[0], v[1], v[2], v[3]) for v in verdicts()]
    assert stored == [
        (served[0].pk, "audit", "invalid", REASONS[1]),
        (served[1].pk, "audit", "invalid", REASONS[1]),
        (served[2].pk, "audit", "valid", ""),
        (served[3].pk, "audit", "edit", ""),
    ]
    assert Verdict.objects.get(decision="edit").edited_goal == served[3].hindsight_goal + " today"
    assert page.problems == []


# -- turning the shortcuts off; focus and announcements --------------------------------------------


def test_single_key_shortcuts_can_be_turned_off_and_the_choice_is_kept(page):
    alice = make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    toggle = page.get_by_role("button", name="Single-key shortcuts")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    with page.expect_response("**/review/shortcuts/"):
        toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    page.locator("#item-heading").focus()
    page.keyboard.press("a")
    page.keyboard.press("r")
    expect(page.locator(".reject-picker")).not_to_have_attribute("open", "")
    assert page.evaluate("localStorage.getItem('agenther.singleKeyShortcuts')") == "off"
    page.reload()  # kept on the server: still off
    expect(page.get_by_role("button", name="Single-key shortcuts")).to_have_attribute(
        "aria-pressed", "false"
    )
    assert RaterSettings.objects.get(user=alice).single_key_shortcuts is False
    page.get_by_role("button", name="Accept").click()  # buttons still do everything
    next_item(page, second)
    with page.expect_response("**/review/shortcuts/"):
        page.get_by_role("button", name="Single-key shortcuts").click()
    page.keyboard.press("a")
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")
    assert [v[2] for v in verdicts()] == ["accept", "accept"]
    assert RaterSettings.objects.get(user=alice).single_key_shortcuts is True


def test_after_a_decision_focus_is_on_the_new_item_and_it_is_announced(page):
    make_user("alice", "annotator")
    first, second = curation_items(2)
    log_in(page, "alice")
    page.keyboard.press("a")
    next_item(page, second)
    expect(page.locator("#item-heading")).to_be_focused()
    announcer = page.locator("#announcer")
    expect(announcer).to_have_text(
        f"Next item: trajectory {second.trajectory.external_id} from {second.run.dataset.name}. "
        "1 left."
    )
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.get_by_role("button", name="Accept").click()  # by mouse too
    expect(page.locator("#item-heading")).to_have_text("Nothing left for you in the queue")
    expect(page.locator("#item-heading")).to_be_focused()
    expect(announcer).to_have_text("Nothing left for you in the queue.")
