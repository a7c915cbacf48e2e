"""The rules backend's hindsight goals read as tasks and never contain the answer they ask for.

A training instruction that carries its own answer ("... find and report the following: Total
revenue was 18,430 EUR") teaches copying, not doing. These tests fail if a rules goal contains a
trajectory's final answer (or the value it states) verbatim.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from relabel.backends import ItemContext
from relabel.backends.rules import RulesBackend, answer_subject, leaks
from relabel.config import default_config
from relabel.importers import import_sample
from relabel.llm.client import CallLog
from relabel.models import Candidate, Dataset, RunItem
from relabel.pipeline.hindsight import goal_problem
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db


def normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def contains(goal: str, text: str) -> bool:
    return bool(normal(text)) and f" {normal(text)} " in f" {normal(goal)} "


def attempts_for(trajectory, outcome: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every template's reply, as the pipeline's K=3 rotation would ask for them."""
    backend = RulesBackend({})
    steps = list(trajectory.ordered_steps())
    ctx = ItemContext(trajectory, steps, default_config(), CallLog(None, trajectory.pk))
    ctx.memo["severity"] = 0.35
    outcome = outcome or backend.extract(ctx)
    return [backend.relabel(ctx, outcome, attempt=k, temperature=0.2, refused=[]) for k in range(3)]


SQL_STEPS = [
    {
        "thought": "Look at the file",
        "action": "read_csv_head",
        "action_input": {"path": "sales.csv", "rows": 3},
        "observation": "date,region,units,revenue_eur\n2025-07-02,North,120,1740.00",
    },
    {
        "thought": "Sum it",
        "action": "run_sql",
        "action_input": {"query": "SELECT SUM(revenue_eur) FROM sales WHERE quarter = 'Q3'"},
        "observation": "SUM(revenue_eur) | 18430",
    },
]
HOTEL_STEPS = [
    {
        "action": "search_hotels",
        "action_input": {"city": "Lisbon", "near": "FIL"},
        "observation": "1) Hotel Tejo Norte - 135 EUR/night, 0.6 km. 2) Oriente Suites - 158 EUR.",
    },
    {
        "action": "book_room",
        "action_input": {"hotel": "Hotel Tejo Norte", "nights": 2},
        "observation": "Booking confirmed: TN-88412. Hotel Tejo Norte, 2 nights x 135 EUR.",
    },
]
WEB_STEPS = [
    {
        "action": "fill",
        "action_input": {"bid": "20", "value": "blue running shoe"},
        "observation": "URL: http://shop.local:7770/\nRootWebArea 'Outdoor Shop', focused",
    },
    {
        "action": "press",
        "action_input": {"bid": "20", "key_comb": "Enter"},
        "observation": "URL: http://shop.local:7770/catalogsearch/result/?q=blue\n"
        "RootWebArea 'Search results', focused\n[31] link 'Blue Runner' StaticText '$39.99'",
    },
    {
        "action": "send_msg_to_user",
        "action_input": {"text": "$39.99"},
        "observation": "URL: http://shop.local:7770/catalogsearch/result/?q=blue\n"
        "RootWebArea 'Search results', focused\n[31] link 'Blue Runner' StaticText '$39.99'",
    },
]
CASES = [
    ("Work out Q3 sales", SQL_STEPS, "Total revenue for Q3 2025 was 18,430 EUR.", "18,430"),
    (
        "Find me somewhere to stay",
        HOTEL_STEPS,
        "I booked Hotel Tejo Norte for 14-16 May, confirmation TN-88412, at 135 EUR per night.",
        "TN-88412",
    ),
    ("What is the cheapest blue running shoe?", WEB_STEPS, "$39.99", "39.99"),
]


@pytest.mark.parametrize(("original", "steps", "answer", "value"), CASES)
def test_no_template_pastes_the_final_answer_or_the_value_it_states(original, steps, answer, value):
    trajectory = make_trajectory(goal=original, steps=steps, final_answer=answer)
    replies = attempts_for(trajectory)
    goals = [r["hindsight_goal"] for r in replies if r["hindsight_goal"]]
    assert goals, replies
    for goal in goals:
        assert not contains(goal, answer), goal
        assert value not in goal, goal
        assert "find and report the following" not in goal.lower()
        assert goal_problem(goal, original) == "", goal
    # The rotation offers different templates, not one wording three times.
    assert len(set(goals)) == len(goals)


def test_goals_name_what_the_run_did_and_the_kind_of_answer():
    sql = make_trajectory(goal="x", steps=SQL_STEPS, final_answer=CASES[0][2])
    goal = attempts_for(sql)[0]["hindsight_goal"]
    assert "read_csv_head" in goal and "run_sql" in goal and "sales.csv" in goal
    assert "total revenue for Q3 2025" in goal
    hotel = make_trajectory(goal="x", steps=HOTEL_STEPS, final_answer=CASES[1][2])
    assert attempts_for(hotel)[0]["hindsight_goal"] == (
        "Use search_hotels and book_room for Lisbon and report the booking confirmation"
    )
    web = make_trajectory(goal="x", steps=WEB_STEPS, final_answer="$39.99")
    assert attempts_for(web)[0]["hindsight_goal"] == (
        "On shop.local:7770, search for 'blue running shoe' and report the amount"
    )


def test_the_observation_template_asks_for_what_a_tool_gives_not_what_it_gave():
    steps = [
        {
            "action": "find_user_id_by_email",
            "action_input": {"email": "noor@example.com"},
            "observation": "noor_haddad_4410",
        }
    ]
    trajectory = make_trajectory(goal="x", steps=steps, final_answer="")
    goal = attempts_for(trajectory)[1]["hindsight_goal"]
    assert goal == "Use find_user_id_by_email on noor@example.com and report the user id"
    assert "noor_haddad_4410" not in goal


def test_an_answer_that_only_a_search_term_would_give_away_drops_the_term():
    steps = [dict(WEB_STEPS[0], action_input={"bid": "20", "value": "hollister"})]
    trajectory = make_trajectory(goal="x", steps=steps, final_answer="hollister")
    for reply in attempts_for(trajectory):
        assert "hollister" not in reply["hindsight_goal"].lower()


def test_rules_goals_are_deterministic():
    trajectory = make_trajectory(goal="x", steps=HOTEL_STEPS, final_answer=CASES[1][2])
    assert attempts_for(trajectory) == attempts_for(trajectory)


@pytest.mark.parametrize(
    ("goal", "answer", "value", "leak"),
    [
        ("Report this: total revenue was 18,430 EUR", "Total revenue was 18,430 EUR.", "", True),
        ("Use run_sql and report 18,430", "Total revenue was 18,430 EUR.", "", True),
        ("Use run_sql and report the total revenue", "Total revenue was 18,430 EUR.", "", False),
        ("Open the 'hollister' page", "hollister", "", True),
        ("Report the total revenue for Q3 2025", "Total revenue for Q3 2025 was 18.", "18.", False),
    ],
)
def test_leaks_spots_an_answer_in_a_goal(goal, answer, value, leak):
    assert leaks(goal, answer, value) is leak


def test_the_subject_of_an_answer_is_what_it_is_about_never_its_value():
    assert answer_subject("Total revenue for Q3 2025 was 18,430 EUR.") == (
        "the total revenue for Q3 2025",
        "18,430 EUR.",
    )
    assert answer_subject("The Alpine tent costs 249 EUR.")[0] == "the price of the Alpine tent"
    assert answer_subject("Right now in Oslo it is 4 C.") == ("", "Right now in Oslo it is 4 C.")
    assert answer_subject("I booked it.")[0] == ""


def test_on_the_bundled_sample_no_goal_or_attempt_contains_the_final_answer(relabel_now):
    import_sample("sample")
    run = relabel_now(Dataset.objects.get(name="sample"), "rules")
    candidates = list(Candidate.objects.filter(run=run).select_related("trajectory"))
    assert candidates
    values = ["18,430", "TN-88412", "000000187", "249 EUR", "doi:10.1000", "noor_haddad_4410"]
    for candidate in candidates:
        answer = candidate.trajectory.final_answer
        tried = [a["goal"] for a in candidate.attempts if a["goal"]]
        for goal in [candidate.hindsight_goal, *tried]:
            assert not contains(goal, answer), goal
            assert not any(v.lower() in goal.lower() for v in values), goal
            assert "find and report the following" not in goal.lower()
            assert "and report what it returns:" not in goal.lower()
    # Grounding: every achievement the goals rest on cites steps the trajectory has.
    for item in RunItem.objects.filter(run=run, status=RunItem.Status.CANDIDATE):
        indices = {s.index for s in item.trajectory.ordered_steps()}
        for achievement in item.outcome["achievements"]:
            assert achievement["steps"] and set(achievement["steps"]) <= indices


def test_the_rules_goal_of_a_dataset_with_a_leaky_answer_is_still_made(relabel_now):
    dataset = make_dataset()
    make_trajectory(dataset, goal="Work out Q3 sales", steps=SQL_STEPS, final_answer="18430")
    run = relabel_now(dataset, "rules")
    candidate = Candidate.objects.get(run=run)
    assert "18430" not in candidate.hindsight_goal
