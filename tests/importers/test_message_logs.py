from __future__ import annotations

import pytest

from relabel.importers import TrajectoryImportError, parse_mapping
from relabel.models import Trajectory
from tests.importers.conftest import write_json, write_jsonl

MAP = {"goal": "question", "messages": "history", "success": "is_correct"}


def openai_record(**extra):
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful agent."},
            {"role": "user", "content": "How tall is the Eiffel Tower?"},
            {"role": "assistant", "content": "It is 330 m tall."},
        ],
        **extra,
    }


def test_it_takes_the_goal_from_the_first_user_message(tmp_path, run_import):
    summary = run_import(write_jsonl(tmp_path, "log.jsonl", [openai_record(success=True)]))
    t = Trajectory.objects.get()
    assert summary.format == "messages" and t.external_id == "log:1"
    assert t.goal == "How tall is the Eiffel Tower?" and t.final_answer == "It is 330 m tall."
    assert t.success and t.raw_label == "success=True" and t.step_count == 0
    assert t.system_prompt == "You are a helpful agent."


def test_it_imports_a_log_without_a_success_signal_with_its_outcome_unknown(tmp_path, run_import):
    summary = run_import(write_jsonl(tmp_path, "log.jsonl", [openai_record()]))
    t = Trajectory.objects.get()
    assert t.success is None and t.raw_label == "" and t.metadata["label"] == "unknown"
    assert (summary.successes, summary.failures, summary.unknown) == (0, 0, 1)


def test_it_reads_sharegpt_conversations_with_function_calls(tmp_path, run_import):
    record = {
        "conversations": [
            {"from": "human", "value": "Book a table for two tonight"},
            {"from": "function_call", "value": '{"name": "book", "arguments": {"people": 2}}'},
            {"from": "observation", "value": "Booked at 19:30"},
            {"from": "gpt", "value": "Booked for 19:30."},
        ],
        "tools": '[{"name": "book", "parameters": {"type": "object"}}]',
    }
    run_import(write_jsonl(tmp_path, "sg.jsonl", [record]), fmt="messages")
    t = Trajectory.objects.get()
    step = t.ordered_steps().get()
    assert (step.action, step.action_input, step.observation) == (
        "book",
        {"people": 2},
        "Booked at 19:30",
    )
    assert t.final_answer == "Booked for 19:30."
    assert t.tools == [
        {"type": "function", "function": {"name": "book", "parameters": {"type": "object"}}}
    ]


def test_it_maps_fields_of_a_multi_agent_log_one_object_per_file(tmp_path, run_import):
    record = {
        "question": "How many clients face west?",
        "question_ID": "q-1",
        "is_correct": False,
        "mistake_agent": "Excel_Expert",
        "mistake_step": "2",
        "system_prompt": {"Excel_Expert": "You read sheets.", "Checker_Expert": "You verify."},
        "history": [
            {"role": "assistant", "name": "Excel_Expert", "content": "print(count_even())"},
            {"role": "user", "name": "Computer_terminal", "content": "exitcode: 0\n4"},
            {"role": "user", "name": "Checker_Expert", "content": "4 is verified."},
            {"role": "user", "name": "Computer_terminal", "content": "ok"},
        ],
    }
    path = write_json(tmp_path, "7.json", record)
    summary = run_import(path, fmt="messages", mapping={**MAP, "id": "question_ID"})
    t = Trajectory.objects.get()
    assert summary.failures == 1 and t.external_id == "q-1"
    assert t.goal == "How many clients face west?" and t.raw_label == "is_correct=False"
    assert t.metadata["mistake_agent"] == "Excel_Expert" and t.metadata["mistake_step"] == "2"
    assert "## Checker_Expert\nYou verify." in t.system_prompt
    steps = list(t.ordered_steps())
    # Every agent speaks as "user" to the others: the agents' messages are the agent's turns.
    assert [(s.metadata["speaker"], s.observation) for s in steps] == [
        ("Excel_Expert", "exitcode: 0\n4"),
        ("Checker_Expert", "ok"),
    ]
    assert [s.metadata["message_index"] for s in steps] == [0, 2]


def test_it_names_a_mapped_field_missing_from_a_record(tmp_path, run_import):
    path = write_jsonl(tmp_path, "log.jsonl", [{"question": "q", "history": []}])
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="messages", mapping=MAP)
    assert err.value.field == "is_correct" and err.value.record == "line 1"


def test_it_rejects_a_record_with_no_goal(tmp_path, run_import):
    path = write_jsonl(
        tmp_path, "log.jsonl", [{"messages": [{"role": "assistant", "content": "hi"}]}]
    )
    with pytest.raises(TrajectoryImportError, match="missing goal"):
        run_import(path, fmt="messages")


def test_it_rejects_messages_that_are_not_a_list(tmp_path, run_import):
    path = write_jsonl(tmp_path, "log.jsonl", [{"messages": "hello"}])
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="messages")
    assert err.value.field == "messages" and "log.jsonl" in str(err.value)


def test_it_rejects_a_success_label_it_cannot_read(tmp_path, run_import):
    path = write_jsonl(tmp_path, "log.jsonl", [openai_record(success="maybe")])
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="messages")
    assert err.value.field == "success"


@pytest.mark.parametrize("item", ["goal", "goal=", "=question", "colour=red"])
def test_it_rejects_a_bad_map_option(item):
    with pytest.raises(TrajectoryImportError) as err:
        parse_mapping([item])
    assert "--map" in str(err.value)


def test_it_refuses_a_map_for_other_formats(tmp_path, run_import):
    path = write_jsonl(
        tmp_path, "a.jsonl", [{"trajectory_id": "a", "original_prompt": "x", "steps": []}]
    )
    with pytest.raises(TrajectoryImportError, match=r"goal=original_prompt applies to the .*"):
        run_import(path, mapping={"goal": "original_prompt"})
