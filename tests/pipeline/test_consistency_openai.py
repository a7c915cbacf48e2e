"""Stage 3b with the openai backend, against the project's own OpenAI-compatible test server:
one rewrite call per candidate (recorded, cached, budgeted), refused when it touches anything but
the agent's own free text, and the judges' contradictions among the findings."""

from __future__ import annotations

import pytest

from relabel.models import Candidate, LLMCall, Step
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

# The markers fix the test server's severity and confidence, so the candidate is gated in.
MARKERS = "TEST-SEVERITY=0.1 TEST-CONFIDENCE=0.9"
GOAL = f"Find copper wire suppliers under $5/kg with MOQ below 100 kg {MARKERS}"
# TEST-ACCEPT: no judge vetoes at random (the judges read the steps, not the goal's markers).
OBSERVATION = "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg. TEST-ACCEPT"


def steps(first: str, second: str = "Compare them by price and MOQ.") -> list[dict]:
    return [
        {
            "thought": first,
            "action": "search",
            "action_input": {"query": "copper wire supplier"},
            "observation": OBSERVATION,
        },
        {
            "thought": second,
            "action": "compare",
            "action_input": {"by": ["price", "moq"]},
            "observation": "Lowest MOQ: MicroMetals (10 kg) at $5.30/kg.",
        },
    ]


RESTATING = (
    "The user wants copper wire suppliers under $5/kg with MOQ below 100 kg. I search first."
)


def one_candidate(relabel_now, goal: str = GOAL, **config) -> Candidate:
    dataset = make_dataset()
    make_trajectory(dataset, goal=goal, steps=config.pop("steps", steps(RESTATING)))
    run = relabel_now(dataset, "openai", **config)
    return Candidate.objects.select_related("trajectory").get(run=run)


def test_the_rewrite_call_is_made_recorded_and_served_from_the_cache_the_second_time(
    llm_server, relabel_now
):
    candidate = one_candidate(relabel_now)
    assert candidate.gate != "rejected", (candidate.gate_reason, candidate.judges)
    assert candidate.consistency["method"] == "openai"
    assert candidate.rewrites == {"0": "I take the next step toward the goal (step 0)."}
    call = LLMCall.objects.get(run=candidate.run, stage="consistency")
    assert not call.cached and call.prompt_tokens > 0 and call.completion_tokens > 0
    assert call.cost_usd > 0 and call.estimated_prompt_tokens > 0

    dataset = candidate.trajectory.dataset
    again = relabel_now(dataset, "openai")
    cached = LLMCall.objects.get(run=again, stage="consistency")
    assert cached.cached and cached.cost_usd == 0
    assert Candidate.objects.get(run=again).rewrites == candidate.rewrites


def test_a_candidate_without_findings_costs_no_rewrite_call(llm_server, relabel_now):
    candidate = one_candidate(relabel_now, steps=steps("Search suppliers first."))
    assert candidate.consistency["findings"] == []
    assert not LLMCall.objects.filter(run=candidate.run, stage="consistency").exists()


def test_a_turn_longer_than_the_reply_budget_is_left_to_the_sentence_filter(
    llm_server, relabel_now
):
    long = RESTATING + " " + "Then I weigh every listing by its price per kilogram. " * 60
    candidate = one_candidate(relabel_now, steps=steps(long), max_completion_tokens=200)
    assert not LLMCall.objects.filter(run=candidate.run, stage="consistency").exists()
    assert candidate.rewrites["0"].startswith("I search first. Then I weigh")
    assert not candidate.is_flagged


def test_a_rewrite_that_touches_an_observation_is_refused(llm_server, relabel_now):
    candidate = one_candidate(relabel_now, goal=f"{GOAL} TEST-REWRITE-TOOL")
    refused = candidate.consistency["refused"]
    assert "'step 0 observation'" in refused and "never edited" in refused
    assert LLMCall.objects.filter(run=candidate.run, stage="consistency").count() == 1
    # Nothing of the refused reply is used: the sentence filter did the rewrite instead.
    assert candidate.rewrites == {"0": "I search first."}
    step = Step.objects.get(trajectory=candidate.trajectory, index=0)
    assert step.observation == OBSERVATION and step.thought == RESTATING


def test_the_judges_name_turns_that_contradict_the_goal_and_those_are_rewritten(
    llm_server, relabel_now
):
    contradicting = steps("Search suppliers first.", "I will order 200 kg now. TEST-CONTRADICT")
    candidate = one_candidate(relabel_now, steps=contradicting)
    judged = [f for f in candidate.consistency["findings"] if f["source"] == "judge:judge-1"]
    assert [(f["step"], f["quote"]) for f in judged] == [(1, "TEST-CONTRADICT")]
    assert judged[0]["reason"].startswith("contradicts the new goal")
    assert candidate.rewrites == {"1": "I take the next step toward the goal (step 1)."}
    assert not candidate.is_flagged


def test_with_the_flag_policy_a_judges_contradiction_sends_the_candidate_to_review(
    llm_server, relabel_now
):
    contradicting = steps("Search suppliers first.", "I will order 200 kg now. TEST-CONTRADICT")
    candidate = one_candidate(relabel_now, steps=contradicting, consistency="flag")
    assert candidate.is_flagged and candidate.rewrites == {}
    assert candidate.gate != Candidate.Gate.AUTO_ACCEPTED
    assert not LLMCall.objects.filter(run=candidate.run, stage="consistency").exists()
