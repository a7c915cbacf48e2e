from __future__ import annotations

import json

import pytest

from relabel.importers import TrajectoryImportError
from relabel.models import Trajectory
from tests.importers.conftest import write_json

INSTRUCTION = "You are kim_1. You want to cancel order #A1 because you no longer need it."


def run(task_id=12, trial=0, reward=0.0, reward_info=None, instruction=INSTRUCTION):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "cancel_order", "arguments": json.dumps({"order_id": "#A1"})},
    }
    return {
        "task_id": task_id,
        "trial": trial,
        "reward": reward,
        "info": {
            "task": {
                "user_id": "kim_1",
                "instruction": instruction,
                "actions": [{"name": "cancel_order", "kwargs": {}}],
            },
            "reward_info": reward_info,
        },
        "traj": [
            {"role": "system", "content": "Policy: confirm before cancelling."},
            {"role": "user", "content": "Hi, please cancel my order."},
            {"role": "assistant", "content": "Which order?"},
            {"role": "user", "content": "#A1"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "name": "cancel_order",
                "content": '{"status": "cancelled"}',
            },
            {"role": "assistant", "content": "Your order is cancelled."},
            {"role": "user", "content": "Thanks ###STOP###"},
        ],
    }


def test_it_imports_runs_with_task_and_trial_as_the_id(tmp_path, run_import):
    data = [run(reward=1.0, reward_info={"reward": 1.0, "info": {"r_actions": 1.0}}), run(trial=1)]
    summary = run_import(write_json(tmp_path, "gpt-4o-retail.json", data))
    assert summary.format == "tau-bench"
    assert (summary.imported, summary.successes, summary.failures) == (2, 1, 1)
    t = Trajectory.objects.get(external_id="12-0")
    assert t.goal == INSTRUCTION and t.success and t.raw_label == "reward=1.0"
    assert t.system_prompt == "Policy: confirm before cancelling."
    assert t.metadata["opening_message"] == "Hi, please cancel my order."
    assert t.metadata["ground_truth_actions"][0]["name"] == "cancel_order"


def test_it_makes_a_step_per_assistant_turn_answered_by_tool_or_user(tmp_path, run_import):
    run_import(write_json(tmp_path, "t.json", [run()]))
    steps = list(Trajectory.objects.get().ordered_steps())
    assert [(s.thought, s.action, s.observation_role) for s in steps] == [
        ("Which order?", "", "user"),
        ("", "cancel_order", "tool"),
        ("Your order is cancelled.", "", "user"),
    ]
    assert steps[0].observation == "#A1"
    assert steps[1].action_input == {"order_id": "#A1"} and steps[1].call_id == "call_1"
    assert steps[1].observation == '{"status": "cancelled"}'
    assert steps[2].observation == "Thanks ###STOP###"


def test_it_imports_a_failure_without_reward_info(tmp_path, run_import):
    run_import(write_json(tmp_path, "t.json", [run(reward_info=None)]))
    t = Trajectory.objects.get()
    assert t.success is False and t.metadata["reward_info"] is None
    assert "no reward breakdown" in t.failure_reason


def test_it_rejects_a_run_without_an_instruction(tmp_path, run_import):
    path = write_json(tmp_path, "t.json", [run(), run(task_id=13, instruction="")])
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="tau-bench")
    assert err.value.field == "info.task.instruction" and "'13-0'" in err.value.record
    assert Trajectory.objects.count() == 0


def test_it_rejects_a_message_without_a_role(tmp_path, run_import):
    bad = run()
    del bad["traj"][2]["role"]
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, "t.json", [bad]), fmt="tau-bench")
    assert err.value.field == "traj[2].role"
