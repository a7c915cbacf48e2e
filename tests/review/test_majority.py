"""The raters' majority is one rule: the review state a candidate is given (what is exported)
and the validity the precision figures count agree for every sequence of verdicts."""

from __future__ import annotations

import pytest

from review.models import Verdict
from review.precision.ratings import load_ratings
from tests.conftest import make_user
from tests.factories import make_candidate, make_run

GOAL = "Report the cheapest supplier's price per kg"

# Each step: (rater, decision, edited goal or the index of the step an undo undoes).
SEQUENCES = {
    "one accept": ([("a", "accept")], "accepted", GOAL),
    "one reject": ([("a", "reject")], "rejected", GOAL),
    "an undone accept": ([("a", "accept"), ("a", "undo", 0)], "unreviewed", GOAL),
    "an undo undone": ([("a", "accept"), ("a", "undo", 0), ("a", "undo", 1)], "accepted", GOAL),
    "a restored reject older than the rater's accept": (
        [("a", "reject"), ("a", "undo", 0), ("a", "accept"), ("a", "undo", 1)],
        "accepted",
        GOAL,
    ),
    "an undo of an undo of the only verdict": (
        [("a", "reject"), ("a", "undo", 0), ("a", "undo", 1)],
        "rejected",
        GOAL,
    ),
    "a tie": ([("a", "accept"), ("b", "reject")], "rejected", GOAL),
    "two to one": ([("a", "accept"), ("b", "reject"), ("c", "accept")], "accepted", GOAL),
    "an edit and an accept": ([("a", "edit", "Report X"), ("b", "accept")], "edited", "Report X"),
    "the latest edit wins": (
        [("a", "edit", "Report X"), ("b", "edit", "Report Y"), ("c", "reject")],
        "edited",
        "Report Y",
    ),
    "an edit outvoted": ([("a", "edit", "Report X"), ("b", "reject")], "rejected", GOAL),
    "a rater changes their mind": (
        [("a", "reject"), ("a", "undo", 0), ("a", "edit", "Report Z")],
        "edited",
        "Report Z",
    ),
    "a second rater's undo": (
        [("a", "accept"), ("b", "reject"), ("b", "undo", 1)],
        "accepted",
        GOAL,
    ),
    "audit verdicts": ([("a", "valid"), ("b", "invalid"), ("c", "invalid")], "rejected", GOAL),
    "a skip says nothing": ([("a", "skip")], "unreviewed", GOAL),
}


def record(candidate, steps) -> None:
    """The verdicts as they would be stored: undos point at what they undo."""
    raters = {name: make_user(f"rater-{name}", "annotator") for name in {s[0] for s in steps}}
    made: list[Verdict] = []
    for name, decision, *extra in steps:
        undoes = made[extra[0]] if decision == "undo" else None
        goal = extra[0] if decision == "edit" else ""
        kind = "audit" if decision in ("valid", "invalid") else "curation"
        made.append(
            Verdict.objects.create(
                candidate=candidate,
                rater=raters[name],
                kind=kind,
                decision=decision,
                edited_goal=goal,
                undoes=undoes,
            )
        )


@pytest.mark.django_db
@pytest.mark.parametrize("name", SEQUENCES)
def test_decisions_and_precision_give_the_same_state(name):
    steps, state, final_goal = SEQUENCES[name]
    run = make_run()
    candidate = make_candidate(run, confidence=0.3, goal=GOAL)
    record(candidate, steps)

    Verdict.objects.update_review_state(candidate)  # what a decision or an undo calls
    candidate.refresh_from_db()
    rated = {c.id: c for c in load_ratings(run)[0]}  # what the precision figures count

    assert (candidate.review_state, candidate.final_goal) == (state, final_goal)
    assert (candidate.id in rated) == (state != "unreviewed")
    if candidate.id in rated:
        approved = candidate.review_state in ("accepted", "edited")
        assert rated[candidate.id].valid(lenient=True) == approved
        assert candidate.is_approved == approved  # the export's rule says the same


# Adjudication: the adjudicator's effective verdict is final, whatever the raters' majority.
ADJUDICATED = {
    "a tie adjudicated valid": ([("a", "accept"), ("b", "reject")], "accept", "accepted", GOAL),
    "a tie adjudicated invalid": ([("a", "accept"), ("b", "reject")], "reject", "rejected", GOAL),
    "a majority overturned": (
        [("a", "accept"), ("b", "accept"), ("c", "reject")],
        "reject",
        "rejected",
        GOAL,
    ),
    "the adjudicator's edit is exported": (
        [("a", "edit", "Report X"), ("b", "reject")],
        "edit",
        "edited",
        "Report Y",
    ),
    "an audit split adjudicated": ([("a", "valid"), ("b", "invalid")], "accept", "accepted", GOAL),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ADJUDICATED)
def test_an_adjudication_is_final_for_the_state_the_figures_and_the_export(name):
    steps, adjudication, state, final_goal = ADJUDICATED[name]
    run = make_run()
    candidate = make_candidate(run, confidence=0.3, goal=GOAL)
    record(candidate, steps)
    Verdict.objects.update_review_state(candidate)
    assert candidate.tasks.filter(kind="adjudication").exists()  # the raters disagree
    Verdict.objects.create(
        candidate=candidate,
        rater=make_user("judge-j", "adjudicator"),
        kind="adjudication",
        decision=adjudication,
        edited_goal="Report Y" if adjudication == "edit" else "",
    )
    Verdict.objects.update_review_state(candidate)
    candidate.refresh_from_db()
    rated = {c.id: c for c in load_ratings(run)[0]}

    assert (candidate.review_state, candidate.final_goal) == (state, final_goal)
    approved = state in ("accepted", "edited")
    assert rated[candidate.id].valid(lenient=True) == approved == candidate.is_approved
