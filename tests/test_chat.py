"""The one conversion from trajectory to chat messages."""

from __future__ import annotations

import json

import pytest

from relabel.chat import NO_FINAL_ANSWER, trajectory_messages
from relabel.models import Dataset, Step, Trajectory, compress_json


@pytest.fixture
def trajectory(db) -> Trajectory:
    dataset = Dataset.objects.create(name="d")
    t = Trajectory.objects.create(
        dataset=dataset,
        external_id="t1",
        source_format="agenther",
        goal="Find copper wire",
        success=False,
        final_answer="MicroMetals at $5.30/kg",
        raw=compress_json({}),
        system_prompt="You are an agent.",
    )
    Step.build(
        trajectory=t,
        index=0,
        thought="search",
        action="search",
        action_input={"q": "copper"},
        observation="MicroMetals $5.30/kg MOQ 10kg",
    ).save()
    Step.build(
        trajectory=t,
        index=1,
        thought="I will answer",
        observation="ok, thanks",
        observation_role="user",
    ).save()
    return t


def test_it_renders_tool_calls_and_tool_results(trajectory):
    msgs = trajectory_messages(trajectory)
    assert [m["role"] for m in msgs] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    call = msgs[2]["tool_calls"][0]
    assert call["function"]["name"] == "search"
    assert json.loads(call["function"]["arguments"]) == {"q": "copper"}
    assert msgs[3]["tool_call_id"] == call["id"]
    assert msgs[-1]["content"] == "MicroMetals at $5.30/kg"


def test_it_uses_the_goal_it_is_given(trajectory):
    msgs = trajectory_messages(trajectory, "Report the lowest MOQ supplier", include_system=False)
    assert msgs[0] == {"role": "user", "content": "Report the lowest MOQ supplier"}


def test_it_always_ends_on_an_assistant_message(trajectory):
    trajectory.final_answer = ""
    msgs = trajectory_messages(trajectory)
    assert msgs[-1] == {"role": "assistant", "content": NO_FINAL_ANSWER}


def test_it_cuts_observations_to_a_token_budget(trajectory):
    step = trajectory.steps.get(index=0)
    step.set_observation("word " * 5000)
    step.save()
    msgs = trajectory_messages(trajectory, observation_tokens=100)
    assert len(msgs[3]["content"]) < 1000
    assert "characters omitted" in msgs[3]["content"]


def test_a_long_observation_keeps_its_full_text_compressed(db, trajectory):
    long = "x" * (Step.EXCERPT_CHARS + 500)
    step = Step.build(trajectory=trajectory, index=5, action="a", observation=long)
    step.save()
    step.refresh_from_db()
    assert len(step.observation) == Step.EXCERPT_CHARS
    assert step.is_truncated and step.full_observation == long
    assert step.observation_chars == len(long)
