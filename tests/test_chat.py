"""The one conversion from trajectory to chat messages, and what an exported conversation holds:
only what happened, plus the goal where the model would see it."""

from __future__ import annotations

import json

import pytest

from relabel.chat import TASK_HEADING, trajectory_chat, trajectory_messages
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


def test_a_run_without_an_answer_ends_on_its_last_real_turn_and_says_so(trajectory):
    trajectory.final_answer = ""
    chat = trajectory_chat(trajectory)
    assert chat.messages[-1] == {"role": "assistant", "content": "I will answer"}
    assert chat.notes()["dropped_turns"] == [
        {"role": "user", "reason": "after the agent's last turn"}
    ]
    assert chat.notes()["ended_without_answer"] is False  # its last turn is a message


def test_a_run_that_stopped_on_a_tool_call_ends_on_that_call(trajectory):
    trajectory.final_answer = ""
    trajectory.steps.filter(index=1).delete()
    chat = trajectory_chat(trajectory)
    assert chat.messages[-1]["tool_calls"][0]["function"]["name"] == "search"
    assert chat.notes()["ended_without_answer"] is True
    assert chat.notes()["dropped_turns"] == [
        {"role": "tool", "reason": "after the agent's last turn"}
    ]
    assert all(m["content"] != "" or m.get("tool_calls") for m in chat.messages)


def test_simulator_control_tokens_leave_the_user_turns_with_a_note(trajectory):
    Step.build(
        trajectory=trajectory,
        index=2,
        thought="Anything else?",
        observation="###STOP###",
        observation_role="user",
    ).save()
    step = trajectory.steps.get(index=1)
    step.set_observation("ok, thanks ###STOP###")
    step.save()
    chat = trajectory_chat(trajectory)
    text = json.dumps(chat.messages)
    assert "###" not in text and {"role": "user", "content": "ok, thanks"} in chat.messages
    assert chat.notes()["control_tokens"] == ["STOP"]
    assert {"role": "user", "reason": "simulator control token"} in chat.notes()["dropped_turns"]


def test_a_conversation_opens_with_what_the_user_really_said(trajectory):
    trajectory.goal = "You are Noor. You want to cancel only the mug."  # the simulator's brief
    opening = "Hi, can I cancel just the mug?"
    own = trajectory_chat(trajectory, opening=opening)
    assert own.messages[1] == {"role": "user", "content": opening}
    assert own.messages[0] == {"role": "system", "content": "You are an agent."}
    assert own.goal_placement == "metadata"
    assert trajectory.goal not in json.dumps(own.messages)
    relabelled = trajectory_chat(trajectory, "Look up order #W1187", opening=opening)
    assert relabelled.messages[1] == {"role": "user", "content": opening}
    assert relabelled.messages[0]["content"] == (
        "You are an agent.\n\n" + TASK_HEADING + "Look up order #W1187"
    )
    assert relabelled.goal_placement == "system_prompt"


def test_an_opening_that_holds_the_goal_gets_the_exported_goal_in_its_place(trajectory):
    opening = f"Please help.\n{trajectory.goal}\nBegin!"
    chat = trajectory_chat(trajectory, "Report the lowest MOQ", opening=opening)
    assert chat.messages[1]["content"] == "Please help.\nReport the lowest MOQ\nBegin!"
    assert chat.goal_placement == "opening_message"
    assert trajectory_chat(trajectory, opening=opening).messages[1]["content"] == opening


def test_a_step_with_neither_thought_nor_action_adds_no_empty_turn(trajectory):
    Step.build(trajectory=trajectory, index=2, observation="hello?", observation_role="user").save()
    roles = [m["role"] for m in trajectory_messages(trajectory)]
    assert roles[-3:] == ["user", "user", "assistant"]


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
