"""The prompts: lean (detection and extraction in one request; relabel and the judges work from the
steps the extraction cites), honest (the judges read those steps whole and every other call in
outline, never the extraction's account; or the whole run), cache-friendly (shared prefixes,
retries that only append) and within budget."""

from __future__ import annotations

import pytest

from relabel.config import PROMPT_VERSION
from relabel.llm import prompts
from relabel.llm.client import Endpoint, LLMClient
from relabel.models import LLMCall, RunItem
from relabel.tokens import estimate_tokens
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

HUGE = "<div class='product'>Camp stove 230g, in stock</div>\n" * 1000  # ~50 KB


def web_steps(n: int, observation: str = HUGE) -> list[dict]:
    return [
        {
            "thought": f"Open product page {i}",
            "action": "open",
            "action_input": {"url": f"/p/{i}"},
            "observation": observation,
        }
        for i in range(n)
    ]


OUTCOME = {
    "achievements": [
        {"text": "Opened the camp stove page", "steps": [3]},
        {"text": "Saw it is in stock", "steps": [3, 7]},
    ],
    "key_observations": ["The stove weighs 230g"],
    "limitations": ["Did not buy it"],
}
REFUSED = [
    {"goal": "Buy the stove", "rationale": "r", "confidence": 0.4, "refused": "too close"},
    {"goal": "Buy a stove now", "rationale": "r", "confidence": 0.5, "refused": "too close"},
]


def text_of(prompt: prompts.Prompt, json_object: bool = False) -> str:
    messages = prompts.with_schema_text(prompt.messages, prompt) if json_object else prompt.messages
    return "\n".join(m["content"] for m in messages)


def all_prompts(trajectory, steps, max_tokens: int) -> list[prompts.Prompt]:
    memo: dict = {}
    return [
        prompts.detect_prompt(trajectory, steps, max_tokens, memo),
        prompts.extract_prompt(trajectory, steps, max_tokens, memo),
        prompts.assess_prompt(trajectory, steps, max_tokens, memo),
        prompts.relabel_prompt(trajectory, steps, OUTCOME, max_tokens, REFUSED, memo),
        prompts.judge_prompt(
            trajectory, steps, "Open the stove page", max_tokens, memo, outcome=OUTCOME
        ),
        prompts.judge_prompt(
            trajectory, steps, "Open the stove page", max_tokens, memo, view="run"
        ),
    ]


@pytest.mark.parametrize("max_tokens", [2500, 4000, 6000, 12000])
def test_every_prompt_stays_within_the_token_budget_whatever_the_observations(max_tokens):
    trajectory = make_trajectory(goal="Find a stove " * 400, steps=web_steps(60))
    steps = list(trajectory.ordered_steps())
    for prompt in all_prompts(trajectory, steps, max_tokens):
        for json_object in (False, True):
            text = text_of(prompt, json_object)
            assert estimate_tokens(text) <= max_tokens, (prompt.stage, json_object)
            assert len(text) < 12 * max_tokens
        assert prompt.estimated_tokens <= max_tokens


def test_the_whole_run_is_shown_head_and_tail_when_it_is_long():
    trajectory = make_trajectory(steps=web_steps(60))
    text = text_of(prompts.assess_prompt(trajectory, list(trajectory.ordered_steps()), 4000))
    assert "omitted for length" in text  # steps were selected, not all sent
    assert "### Step 59" in text and "### Step 0" in text  # first and last kept


def test_detection_and_extraction_see_the_same_bytes_first():
    trajectory = make_trajectory(steps=web_steps(8, "row\n" * 300))
    steps = list(trajectory.ordered_steps())
    detect, extract, assess = all_prompts(trajectory, steps, 6000)[:3]
    view = detect.messages[1]["content"].split("\n\nTask (")[0]
    assert detect.messages[0] == extract.messages[0] == assess.messages[0]
    for prompt in (extract, assess):
        assert prompt.messages[1]["content"].startswith(view + "\n\nTask (")
    assert "### Step 0" in view and "### Step 7" in view


def test_relabel_works_from_the_grounded_evidence_not_the_whole_run():
    trajectory = make_trajectory(steps=web_steps(12, "row\n" * 300))
    steps = list(trajectory.ordered_steps())
    detect, _, _, relabel, *_ = all_prompts(trajectory, steps, 6000)
    evidence = relabel.messages[1]["content"].split("\n\nTask (")[0]
    assert "Opened the camp stove page (steps 3)" in evidence
    assert "### Step 3" in evidence and "### Step 7" in evidence
    assert "### Step 0" not in evidence and "### Step 11" not in evidence
    assert "The run has 12 steps" in evidence
    assert estimate_tokens(text_of(relabel)) < estimate_tokens(text_of(detect)) / 2


def test_judges_read_the_cited_steps_whole_and_every_other_call_in_outline():
    steps_data = web_steps(12, "row\n" * 300)
    steps_data[9]["action"] = "cancel_order"  # after the achievements: it could undo them
    steps_data[10]["action"] = ""  # a step with no call
    trajectory = make_trajectory(steps=steps_data)
    steps = list(trajectory.ordered_steps())
    _, _, _, relabel, judge, _ = all_prompts(trajectory, steps, 6000)
    judged = judge.messages[1]["content"]
    assert "### Step 3\n" in judged and "### Step 7\n" in judged  # cited: whole
    assert judged.count("### Step ") == 2
    assert "Step 9: cancel_order(" in judged  # uncited: its call, in outline
    for index in (0, 1, 2, 4, 5, 6, 8, 11):
        assert f"Step {index}: open(" in judged
    assert "Step 10: messages only" in judged
    assert "Open product page 9" not in judged  # an outlined step's thought is not sent
    # The judges judge the steps, not the extraction's account of them.
    assert "Opened the camp stove page" not in judged and "Did not buy it" not in judged
    assert "Opened the camp stove page" in relabel.messages[1]["content"]
    # The relabel attempts and the judges read the same bytes first.
    cited = judged.split("\n\nThe 10 other steps, in outline")[0]
    assert relabel.messages[1]["content"].startswith(cited + "\n\nWhat it achieved")
    assert relabel.messages[0] == judge.messages[0]
    assert "contradictions" in judge.schema["properties"]


def test_the_outline_of_a_long_run_keeps_its_last_calls_within_its_budget():
    trajectory = make_trajectory(steps=web_steps(400, "x"))
    steps = list(trajectory.ordered_steps())
    outline = prompts.outline_view(steps, OUTCOME, 2500)
    assert estimate_tokens(outline) <= prompts.outline_budget(2500)
    assert "(the earliest calls omitted for length)" in outline
    assert "Step 399: open(" in outline and "Step 0: open(" not in outline
    assert "Step 3: " not in outline  # cited: shown whole before it, not outlined


def test_the_outline_names_the_steps_with_no_call_as_ranges_within_its_budget():
    talk = [{"thought": f"Say {i}", "action": "", "observation": "ok"} for i in range(3000)]
    talk[1500] = {"thought": "t", "action": "refund", "observation": "done"}
    steps = list(make_trajectory(steps=talk).ordered_steps())
    outline = prompts.outline_view(steps, OUTCOME, 2500)
    assert estimate_tokens(outline) <= prompts.outline_budget(2500)
    assert "Steps 0-2, 4-6, 8-1499, 1501-2999: messages only" in outline
    assert "Step 1500: refund(" in outline


def test_a_run_can_have_its_judges_read_the_whole_run_as_detection_did():
    steps_data = web_steps(12, "row\n" * 300)
    steps_data[9]["thought"] = "The user wants the cheapest stove, so I keep looking"
    trajectory = make_trajectory(steps=steps_data)
    steps = list(trajectory.ordered_steps())
    detect, *_, judge = all_prompts(trajectory, steps, 6000)
    judged = judge.messages[1]["content"]
    for index in range(12):  # uncited steps too: step 9 is cited by no achievement
        assert f"### Step {index}\n" in judged
    assert "The user wants the cheapest stove" in judged
    # The same rendering as detection's, first: one shared prefix for an endpoint's cache.
    run = judged.split("\n\nTask (")[0]
    assert detect.messages[0] == judge.messages[0]
    assert detect.messages[1]["content"].startswith(run + "\n\nOriginal goal: ")


def test_the_judges_never_see_the_original_goal_and_the_relabel_is_told_to_avoid_it():
    trajectory = make_trajectory(goal="Buy the cheapest camp stove", steps=web_steps(4, "x"))
    steps = list(trajectory.ordered_steps())
    *_, relabel, judge, whole = all_prompts(trajectory, steps, 6000)
    assert "do not repeat, quote or mention it): Buy the cheapest camp stove" in text_of(relabel)
    assert "Buy the cheapest camp stove" not in text_of(judge)
    assert "Buy the cheapest camp stove" not in text_of(whole)


def test_each_retry_of_k_appends_to_the_previous_attempts_prompt():
    trajectory = make_trajectory(steps=web_steps(8, "row\n" * 300))
    steps = list(trajectory.ordered_steps())
    memo: dict = {}
    attempts = [
        prompts.relabel_prompt(trajectory, steps, OUTCOME, 6000, REFUSED[:k], memo)
        for k in range(3)
    ]
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        assert later.messages[: len(earlier.messages)] == earlier.messages
        assert [m["role"] for m in later.messages[len(earlier.messages) :]] == [
            "assistant",
            "user",
        ]
    assert "Refused: too close" in attempts[2].messages[-1]["content"]


def test_json_object_mode_carries_the_schema_after_the_shared_view():
    trajectory = make_trajectory()
    steps = list(trajectory.ordered_steps())
    prompt = prompts.judge_prompt(trajectory, steps, "Compare suppliers", 6000)
    client = LLMClient(
        {
            "request_timeout": 1,
            "max_retries": 0,
            "retry_backoff": 0,
            "malformed_retries": 0,
            "max_completion_tokens": 100,
        }
    )
    endpoint = Endpoint("m", "http://x/v1")
    strict = client.request_body(endpoint, prompt.messages, prompt, 0.0, "json_schema")
    plain = client.request_body(endpoint, prompt.messages, prompt, 0.0, "json_object")
    assert strict["response_format"]["json_schema"]["name"] == f"agenther_judge_{PROMPT_VERSION}"
    assert "JSON schema" not in strict["messages"][1]["content"]
    assert plain["response_format"] == {"type": "json_object"}
    assert plain["messages"][1]["content"].startswith(strict["messages"][1]["content"])
    assert '"accept"' in plain["messages"][1]["content"]


def test_one_request_reads_the_run_when_detection_and_extraction_share_an_endpoint(
    llm_server, relabel_now
):
    dataset = make_dataset()
    steps = [{"thought": "TEST-SEVERITY=0.1", "action": "search", "observation": "found it"}]
    trajectory = make_trajectory(dataset, steps=steps)
    run = relabel_now(dataset, "openai")
    calls = LLMCall.objects.filter(run=run, trajectory=trajectory)
    stages = list(calls.values_list("stage", flat=True))
    assert stages.count("detect") == 1 and "extract" not in stages  # the run read once
    assert {"relabel", "judge:judge-1"} <= set(stages)
    item = RunItem.objects.get(run=run, trajectory=trajectory)
    assert item.failure_type and item.outcome["achievements"]


def test_detection_and_extraction_ask_apart_when_their_models_differ(llm_server, relabel_now):
    dataset = make_dataset()
    steps = [{"thought": "TEST-SEVERITY=0.1", "action": "search", "observation": "found it"}]
    trajectory = make_trajectory(dataset, steps=steps)
    stages = {"extract": {"model": "Qwen2.5-72B-Instruct"}}
    run = relabel_now(dataset, "openai", stages=stages)
    calls = LLMCall.objects.filter(run=run, trajectory=trajectory)
    assert {"detect", "extract"} <= set(calls.values_list("stage", flat=True))
    assert calls.get(stage="extract").model == "Qwen2.5-72B-Instruct"
    assert RunItem.objects.get(run=run, trajectory=trajectory).outcome["achievements"]


def test_judges_reading_the_evidence_cost_under_half_of_reading_the_run():
    trajectory = make_trajectory(steps=web_steps(12, "row\n" * 300))
    steps = list(trajectory.ordered_steps())
    memo: dict = {}
    lean = prompts.judge_prompt(
        trajectory, steps, "Open the stove page", 6000, memo, outcome=OUTCOME
    )
    whole = prompts.judge_prompt(trajectory, steps, "Open the stove page", 6000, memo, view="run")
    assert "### Step 0" not in lean.messages[1]["content"]
    assert estimate_tokens(text_of(lean)) < estimate_tokens(text_of(whole)) / 2


def test_the_judges_view_is_a_checked_run_setting(llm_server, relabel_now, tmp_path):
    from relabel.config import ConfigError, load_config

    assert load_config()["judge_view"] == "evidence"
    config = tmp_path / "run.toml"
    config.write_text('judge_view = "summary"\n')
    with pytest.raises(ConfigError, match="judge_view is 'summary'; expected one of run, evid"):
        load_config(config)
    dataset = make_dataset()
    steps = [{"thought": "TEST-SEVERITY=0.1", "action": "search", "observation": "row\n" * 400}]
    make_trajectory(dataset, steps=steps * 6)
    tokens = {}
    for view in ("run", "evidence"):
        run = relabel_now(dataset, "openai", judge_view=view)
        judged = LLMCall.objects.get(run=run, stage="judge:judge-1", cached=False)
        tokens[view] = judged.prompt_tokens
    assert tokens["evidence"] < tokens["run"]
