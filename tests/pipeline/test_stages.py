"""Each stage and the gate, through the test LLM server (openai backend) and the rules backend."""

from __future__ import annotations

from typing import Any

import pytest

from relabel.backends import ItemContext
from relabel.backends.rules import RulesBackend
from relabel.config import default_config
from relabel.importers import import_sample
from relabel.llm.client import CallLog
from relabel.models import Candidate, LLMCall, RunItem
from relabel.pipeline.extract import extract_outcome
from relabel.pipeline.gate import aggregate, gate
from relabel.pipeline.hindsight import goal_problem, relabel_attempts
from relabel.pipeline.summary import run_summary
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db


def thought_steps(thought: str) -> list[dict[str, Any]]:
    return [
        {
            "thought": thought,
            "action": "search",
            "action_input": {"query": "copper wire supplier"},
            "observation": "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg.",
        },
        {
            "thought": "Compare them",
            "action": "compare",
            "action_input": {"by": ["price", "moq"]},
            "observation": "Lowest MOQ: MicroMetals (10 kg) at $5.30/kg.",
        },
    ]


def item_of(run, trajectory) -> RunItem:
    return RunItem.objects.get(run=run, trajectory=trajectory)


# -- stage 1 ---------------------------------------------------------------------------------


def test_it_keeps_successes_marked_and_never_asks_a_model_about_them(llm_server, relabel_now):
    dataset = make_dataset()
    won = make_trajectory(dataset, success=True, reward=1.0)
    lost = make_trajectory(dataset)
    run = relabel_now(dataset, "openai")
    item = item_of(run, won)
    assert item.status == RunItem.Status.SUCCESS
    assert item.is_failure is False
    assert not Candidate.objects.filter(item=item).exists()
    assert not LLMCall.objects.filter(trajectory=won).exists()
    assert LLMCall.objects.filter(trajectory=lost, stage="detect").count() == 1
    assert run_summary(run)["successes"] == 1


def test_it_stores_severity_and_weight_as_separate_fields(llm_server, relabel_now):
    dataset = make_dataset()
    trajectory = make_trajectory(dataset, steps=thought_steps("TEST-SEVERITY=0.2"))
    run = relabel_now(dataset, "openai")
    item = item_of(run, trajectory)
    assert item.severity == pytest.approx(0.2)
    assert item.weight == pytest.approx(0.8)
    assert item.failure_type in {code for code, _ in RunItem.FAILURE_TYPES}
    assert item.detection["severity"] == pytest.approx(0.2)


def test_it_discards_a_failure_whose_weight_is_below_delta_with_the_reason(llm_server, relabel_now):
    dataset = make_dataset()
    severe = make_trajectory(dataset, steps=thought_steps("TEST-SEVERITY=0.9"))
    mild = make_trajectory(dataset, steps=thought_steps("TEST-SEVERITY=0.5"))
    run = relabel_now(dataset, "openai")
    item = item_of(run, severe)
    assert item.status == RunItem.Status.DISCARDED
    assert item.weight == pytest.approx(0.1)
    assert "below delta 0.30" in item.reason
    assert not Candidate.objects.filter(item=item).exists()
    # A discarded trajectory costs no further calls.
    assert not LLMCall.objects.filter(trajectory=severe).exclude(stage="detect").exists()
    assert item_of(run, mild).status != RunItem.Status.DISCARDED


def test_a_run_with_a_higher_delta_discards_more(llm_server, relabel_now):
    dataset = make_dataset()
    trajectory = make_trajectory(dataset, steps=thought_steps("TEST-SEVERITY=0.5"))
    run = relabel_now(dataset, "openai", severity_delta=0.6)
    assert item_of(run, trajectory).status == RunItem.Status.DISCARDED
    assert run.config["severity_delta"] == 0.6


# -- stage 2 ---------------------------------------------------------------------------------


class ScriptedBackend(RulesBackend):
    """The rules backend with some answers replaced, to drive one stage precisely."""

    def __init__(self, config, **answers):
        super().__init__(config)
        self.answers = answers

    def extract(self, ctx):
        return self.answers.get("extract") or super().extract(ctx)

    def relabel(self, ctx, outcome, *, attempt, temperature, refused):
        goals = self.answers.get("goals")
        if goals is None:
            return super().relabel(
                ctx, outcome, attempt=attempt, temperature=temperature, refused=refused
            )
        return {"hindsight_goal": goals[attempt], "rationale": "scripted", "confidence": 0.8}


def context(trajectory) -> ItemContext:
    steps = list(trajectory.ordered_steps())
    return ItemContext(trajectory, steps, default_config(), CallLog(None, trajectory.pk))


def test_it_keeps_only_achievements_grounded_to_steps_that_exist():
    trajectory = make_trajectory()
    answer = {
        "achievements": [
            {"text": "Found MicroMetals", "steps": [0, 99]},
            {"text": "Invented a supplier", "steps": [42]},
        ],
        "key_observations": ["WireCo has MOQ 500 kg"],
        "limitations": ["price above $5"],
    }
    outcome = extract_outcome(ScriptedBackend({}, extract=answer), context(trajectory))
    assert outcome["achievements"] == [{"text": "Found MicroMetals", "steps": [0]}]
    assert outcome["ungrounded"] == ["Invented a supplier"]


def test_the_extract_stage_grounds_what_the_model_says_to_step_numbers(llm_server, relabel_now):
    dataset = make_dataset()
    trajectory = make_trajectory(dataset)
    run = relabel_now(dataset, "openai")
    outcome = item_of(run, trajectory).outcome
    assert outcome["achievements"]
    for achievement in outcome["achievements"]:
        assert achievement["steps"] and set(achievement["steps"]) <= {0, 1}


# -- stage 3: attempts -----------------------------------------------------------------------

ORIGINAL = "Find copper wire suppliers under $5/kg with MOQ below 100 kg"


@pytest.mark.parametrize(
    "goal",
    [
        ORIGINAL,
        "find copper wire suppliers under $5/kg with MOQ below 100 kg.",
        f"Please {ORIGINAL.lower()} and then stop",
        "Do what the original task asked, but report the cheapest",
        "Look up copper wire suppliers under $5/kg and list them",
        "ok",
    ],
)
def test_it_refuses_goals_that_restate_quote_or_mention_the_original(goal):
    assert goal_problem(goal, ORIGINAL)


def test_it_accepts_a_goal_that_differs_from_the_original():
    goal = "Compare suppliers by price per kg and MOQ and report the option with the lowest MOQ"
    assert goal_problem(goal, ORIGINAL) == ""


def test_it_records_every_attempt_and_why_it_was_refused():
    trajectory = make_trajectory(goal=ORIGINAL)
    goals = [ORIGINAL, "Report the supplier with the lowest MOQ and its price per kg", "unused"]
    ctx = context(trajectory)
    chosen, attempts = relabel_attempts(ScriptedBackend({}, goals=goals), ctx, {})
    assert chosen["goal"] == goals[1]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["refused"] == "the goal is the original goal"
    assert attempts[1]["refused"] == ""
    assert [a["temperature"] for a in attempts] == [0.2, 0.5]


def test_no_acceptable_goal_after_k_attempts_means_no_candidate_with_the_reason(
    llm_server, relabel_now
):
    dataset = make_dataset()
    trajectory = make_trajectory(
        dataset,
        goal="TEST-ECHO list the copper wire suppliers",
        steps=thought_steps("TEST-SEVERITY=0.1"),  # never discarded, whatever the hash
    )
    run = relabel_now(dataset, "openai", attempts=2)
    item = item_of(run, trajectory)
    assert item.status == RunItem.Status.NO_CANDIDATE
    assert "no acceptable goal after 2 attempts" in item.reason
    assert len(item.outcome["relabel_attempts"]) == 2
    assert all("original" in a["refused"] for a in item.outcome["relabel_attempts"])
    assert LLMCall.objects.filter(trajectory=trajectory, stage="relabel").count() == 2
    assert not Candidate.objects.filter(item=item).exists()


# -- stage 3: judges and gate ----------------------------------------------------------------


def test_a_judge_veto_is_binding_whatever_the_confidence(llm_server, relabel_now):
    dataset = make_dataset()
    trajectory = make_trajectory(dataset, steps=thought_steps("TEST-CONFIDENCE=0.95 TEST-VETO"))
    relabel_now(dataset, "openai")
    candidate = Candidate.objects.get(trajectory=trajectory)
    assert candidate.generator_confidence == pytest.approx(0.95)
    assert candidate.gate == Candidate.Gate.REJECTED
    assert "vetoed by judge judge-1" in candidate.gate_reason
    assert candidate.aggregation["vetoed_by"] == ["judge-1"]
    assert candidate.judges[0]["accept"] is False


def test_each_judge_asks_its_own_model_at_its_own_endpoint(llm_server, relabel_now, settings):
    from relabel.llm.offline_server import start_in_thread

    other = start_in_thread()
    settings.AGENTHER_ENDPOINTS = {"vllm": {"base_url": other.base_url}}
    try:
        judges = [
            {"name": "mini", "model": "gpt-4o-mini"},
            {"name": "qwen", "model": "Qwen2.5-72B-Instruct", "endpoint": "vllm"},
        ]
        dataset = make_dataset()
        trajectory = make_trajectory(dataset, steps=thought_steps("TEST-SEVERITY=0.1"))
        run = relabel_now(dataset, "openai", judges=judges)
    finally:
        other.shutdown()
        other.server_close()
    candidate = Candidate.objects.get(trajectory=trajectory)
    assert [(j["name"], j["model"], j["endpoint"]) for j in candidate.judges] == [
        ("mini", "gpt-4o-mini", llm_server.base_url),
        ("qwen", "Qwen2.5-72B-Instruct", other.base_url),
    ]
    calls = LLMCall.objects.filter(run=run, stage__startswith="judge:")
    assert {(c.stage, c.model, c.endpoint) for c in calls} == {
        ("judge:mini", "gpt-4o-mini", llm_server.base_url),
        ("judge:qwen", "Qwen2.5-72B-Instruct", other.base_url),
    }
    assert set(candidate.aggregation["inputs"]) == {"generator", "judge:mini", "judge:qwen"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, Candidate.Gate.AUTO_ACCEPTED),
        (0.93, Candidate.Gate.AUTO_ACCEPTED),
        (0.49, Candidate.Gate.NEEDS_REVIEW),
        (0.2, Candidate.Gate.NEEDS_REVIEW),
        (0.19, Candidate.Gate.REJECTED),
    ],
)
def test_the_gate_bins_by_the_thresholds(value, expected):
    decision, reason = gate({"value": value, "vetoed_by": []}, accept=0.5, reject=0.2)
    assert decision == expected
    assert f"{value:.2f}" in reason


def test_the_aggregation_is_explicit_and_min_takes_the_least_convinced():
    verdicts = [
        {"name": "a", "accept": True, "confidence": 0.9},
        {"name": "b", "accept": True, "confidence": 0.4},
    ]
    assert aggregate(0.8, verdicts, "min") == {
        "method": "min",
        "inputs": {"generator": 0.8, "judge:a": 0.9, "judge:b": 0.4},
        "value": 0.4,
        "vetoed_by": [],
    }
    assert aggregate(0.8, verdicts, "mean")["value"] == pytest.approx(0.7)


def test_the_gate_uses_the_runs_own_thresholds(llm_server, relabel_now):
    dataset = make_dataset()
    trajectory = make_trajectory(dataset, steps=thought_steps("TEST-CONFIDENCE=0.3"))
    run = relabel_now(dataset, "openai", accept_threshold=0.25, reject_threshold=0.1)
    candidate = Candidate.objects.get(trajectory=trajectory)
    assert candidate.generator_confidence == pytest.approx(0.3)
    if not candidate.aggregation["vetoed_by"]:
        assert candidate.confidence <= 0.3
        expected = candidate.confidence >= 0.25
        assert (candidate.gate == Candidate.Gate.AUTO_ACCEPTED) == expected
    assert run.accept_threshold == 0.25


def test_the_rules_backend_fills_all_three_bins_on_the_bundled_sample(relabel_now):
    import_sample("sample")
    from relabel.models import Dataset

    run = relabel_now(Dataset.objects.get(name="sample"), "rules")
    summary = run_summary(run)
    assert summary["errors"] == 0
    assert summary["auto_accepted"] > 0
    assert summary["needs_review"] > 0
    assert summary["rejected"] > 0
    for candidate in Candidate.objects.filter(run=run):
        assert goal_problem(candidate.hindsight_goal, candidate.trajectory.goal) == ""
        assert candidate.judges and candidate.aggregation["method"] == "min"
        assert candidate.gate_reason


def test_goals_in_scripts_without_spaces_are_judged_like_any_other():
    original = "找到价格最低的铜线供应商并报告其最小起订量"
    assert goal_problem("比较各供应商的每公斤价格和起订量并报告起订量最低的选项", original) == ""
    assert "consecutive words" in goal_problem("找到价格最低的铜线供应商并报告", original)


def test_accented_words_are_words():
    original = "Réserve une table au café de Zürich pour deux personnes ce soir"
    assert goal_problem("Trouve les horaires d'ouverture du café près de Zürich", original) == ""
    assert goal_problem(original.upper(), original) == "the goal is the original goal"
