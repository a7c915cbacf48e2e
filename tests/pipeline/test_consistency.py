"""Stage 3b: every turn of a relabelled trajectory must fit its new goal, not only the goal text.

The rules backend runs offline; each test runs the real pipeline on a trajectory whose agent
restates the task it failed, and reads what the run stored on the candidate.
"""

from __future__ import annotations

from typing import Any

import pytest

from relabel.backends import ItemContext
from relabel.backends.rules import RulesBackend
from relabel.config import ConfigError, default_config, load_config
from relabel.llm.client import CallLog
from relabel.models import Candidate, Step
from relabel.pipeline.consistency import Reference, Turn, check_consistency, find
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

GOAL = "Find copper wire suppliers under $5/kg with MOQ below 100 kg"
RESTATING = "The user wants copper wire suppliers under $5/kg with MOQ below 100 kg."
STEPS = [
    {
        "thought": f"{RESTATING} I will search suppliers first.",
        "action": "search",
        "action_input": {"query": "copper wire supplier"},
        "observation": "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg.",
    },
    {
        "thought": "Compare them by price and MOQ.",
        "action": "compare",
        "action_input": {"by": ["price", "moq"]},
        "observation": "Lowest MOQ: MicroMetals (10 kg) at $5.30/kg.",
    },
]
# Every candidate would auto-accept but for the consistency check.
OPEN_GATE = {"accept_threshold": 0.01, "reject_threshold": 0.0, "severity_delta": 0.0}


def candidate_of(relabel_now, policy: str, steps: list[dict[str, Any]] = STEPS, **fields) -> Any:
    dataset = make_dataset()
    make_trajectory(dataset, goal=fields.pop("goal", GOAL), steps=steps, **fields)
    run = relabel_now(dataset, "rules", consistency=policy, **OPEN_GATE)
    return Candidate.objects.select_related("trajectory").get(run=run)


def test_a_thought_restating_the_original_goal_is_found_at_its_span_with_its_reason(
    relabel_now,
):
    candidate = candidate_of(relabel_now, "flag")
    thought = STEPS[0]["thought"]
    findings = candidate.consistency["findings"]
    assert findings and {f["step"] for f in findings} == {0}
    for finding in findings:
        start, end = finding["span"]
        assert thought[start:end] == finding["quote"]
        assert finding["turn"] == "thought" and finding["source"] == "rules"
    reasons = " | ".join(f["reason"] for f in findings)
    assert "consecutive words of the original goal" in reasons
    assert "names '$5' from the original goal" in reasons
    assert "restates the task" in reasons


def test_a_flagged_candidate_never_auto_accepts_and_nothing_is_changed(relabel_now):
    candidate = candidate_of(relabel_now, "flag")
    assert candidate.is_flagged and candidate.rewrites == {}
    assert candidate.gate == Candidate.Gate.NEEDS_REVIEW
    assert "flagged by the consistency check" in candidate.gate_reason


def test_rewrite_drops_the_restating_sentences_and_keeps_the_rest(relabel_now):
    candidate = candidate_of(relabel_now, "rewrite")
    assert candidate.rewrites == {"0": "I will search suppliers first."}
    assert candidate.consistency["unresolved"] == [] and not candidate.is_flagged
    assert candidate.gate == Candidate.Gate.AUTO_ACCEPTED
    # The original text stays where it was recorded.
    assert Step.objects.get(trajectory=candidate.trajectory, index=0).thought == STEPS[0]["thought"]


def test_strip_drops_a_restating_thought_beside_an_action(relabel_now):
    candidate = candidate_of(relabel_now, "strip")
    assert candidate.rewrites == {"0": ""}
    assert not candidate.is_flagged


def test_off_checks_nothing(relabel_now):
    candidate = candidate_of(relabel_now, "off")
    assert candidate.consistency["policy"] == "off"
    assert candidate.consistency["findings"] == [] and candidate.rewrites == {}
    assert candidate.gate == Candidate.Gate.AUTO_ACCEPTED


def test_a_final_answer_that_is_all_restatement_is_kept_and_flagged(relabel_now):
    answer = "No supplier under $5/kg with MOQ below 100 kg exists."
    candidate = candidate_of(relabel_now, "rewrite", final_answer=answer)
    assert "final_answer" not in candidate.rewrites  # an emptied answer teaches nothing
    assert {f["turn"] for f in candidate.consistency["unresolved"]} == {"final_answer"}
    assert candidate.gate == Candidate.Gate.NEEDS_REVIEW


CONVERSATION = [
    {
        "thought": "Could you give me your user id?",
        "observation": "Sure, noor_4410. I want to cancel only the Trail Mug and keep the lamp.",
        "observation_role": "user",
    },
    {
        "thought": "",
        "action": "get_user_details",
        "action_input": {"user_id": "noor_4410"},
        "observation": '{"orders": ["#W1187"]}',
    },
    {
        "thought": "",
        "action": "cancel_pending_order",
        "action_input": {"order_id": "#W1187", "reason": "no longer needed"},
        "observation": '{"order_id": "#W1187", "status": "cancelled"}',
    },
    {
        "thought": "Your order #W1187 is cancelled.",
        "observation": "Wait, I wanted to cancel only the Trail Mug and keep the lamp!",
        "observation_role": "user",
    },
]


def test_user_turns_that_pursue_the_original_goal_flag_the_candidate_and_stay_as_they_are(
    relabel_now,
):
    goal = "You are noor_4410. You want to cancel only the Trail Mug and keep the lamp."
    candidate = candidate_of(relabel_now, "rewrite", CONVERSATION, goal=goal, final_answer="")
    # The rules goal is the user's request as the run delivered it, naming only what they said.
    assert candidate.hindsight_goal.startswith("I'm noor_4410. Please cancel my pending order")
    user_findings = [f for f in candidate.consistency["unresolved"] if f["turn"] == "user"]
    assert {f["step"] for f in user_findings} == {0, 3}
    for step in (0, 3):
        reasons = [f["reason"] for f in user_findings if f["step"] == step]
        assert any("consecutive words of the original goal" in r for r in reasons), reasons
    assert not any(key.startswith("user") for key in candidate.rewrites)
    assert candidate.is_flagged and candidate.gate == Candidate.Gate.NEEDS_REVIEW
    replies = Step.objects.filter(trajectory=candidate.trajectory, observation_role="user")
    assert [s.observation for s in replies.order_by("index")] == [
        CONVERSATION[0]["observation"],
        CONVERSATION[3]["observation"],
    ]


def turns(*texts: tuple[str, str]) -> list[Turn]:
    return [Turn(f"{kind}:{i}", i, kind, text) for i, (kind, text) in enumerate(texts)]


def test_a_user_who_does_not_know_what_the_new_goal_gives_contradicts_it():
    reference = Reference.of(
        "You want to change your Houston trip (reservation id not remembered).",
        "Update reservation flights for OBUT9V and report the outcome",
    )
    found = find(reference, turns(("user", "I don't remember the reservation ID.")))
    assert [f.reason for f in found] == [
        "the user says they do not know or have what the new goal gives (OBUT9V)"
    ]


def test_an_entity_the_environment_showed_first_is_the_agents_finding_not_a_restatement():
    reference = Reference.of(
        "Tell me the coordinates of Apple Store near Pitt",
        "Search for 'Apple Shadyside' and report the coordinates",
    )
    before = find(reference, turns(("thought", "I look for the Apple Store near the campus.")))
    assert [f.reason for f in before] == [
        "names 'Apple Store' from the original goal, which the new goal does not ask about"
    ]
    shown = turns(
        ("observation", "Search results: Electronics Shop Apple Store, Walnut Street"),
        ("thought", "The Apple Store result is the one to open."),
    )
    assert find(reference, shown) == []


def test_a_number_of_the_original_goal_is_a_constraint_even_on_a_page_that_shows_it():
    reference = Reference.of("Find airports within 50 km of the campus", "Report the address")
    shown = turns(("observation", "[50] banner ''"), ("thought", "It must be within 50 km."))
    assert [f.reason for f in find(reference, shown)] == [
        "names '50' from the original goal, which the new goal does not ask about"
    ]


def test_the_month_of_a_date_is_not_a_name_but_may_as_a_verb_is_no_finding_either():
    reference = Reference.of("You want to fly on May 20 to Seattle", "Book the flight")
    found = find(reference, turns(("thought", "This may take a while; the date is May 24.")))
    assert found == []


def test_an_unknown_consistency_policy_is_refused_naming_the_key(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('consistency = "sometimes"\n')
    with pytest.raises(ConfigError, match="consistency is 'sometimes'; expected one of rewrite"):
        load_config(config)
    assert load_config()["consistency"] == "rewrite"


def test_a_run_frozen_before_the_check_existed_is_not_checked_when_resumed():
    trajectory = make_trajectory(goal=GOAL, steps=STEPS)
    config = default_config()
    del config["consistency"]  # as a run frozen before the key existed holds it
    ctx = ItemContext(trajectory, list(trajectory.ordered_steps()), config, CallLog(None, None))
    result = check_consistency(RulesBackend(config), ctx, "Use search and report it", [])
    assert result.policy == "off" and result.findings == [] and not result.flagged
