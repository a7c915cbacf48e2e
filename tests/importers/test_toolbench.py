from __future__ import annotations

import json

import pytest

from relabel.importers import TrajectoryImportError
from relabel.models import Trajectory
from tests.importers.conftest import write_json

QUERY = "What is the weather in Lyon and the exchange rate EUR to CHF?"
FUNCTIONS = [
    {"name": "weather_for_meteo", "description": "Weather", "parameters": {"type": "object"}},
    {"name": "Finish", "description": "Finish", "parameters": {"type": "object"}},
]


def finish(return_type: str, answer: str = "") -> str:
    args = {"return_type": return_type}
    if answer:
        args["final_answer"] = answer
    return json.dumps(args)


def dfs_answer(win, return_type="give_answer", answer="Lyon: 12C. 1 EUR = 0.94 CHF.", valid=True):
    final = finish(return_type, answer if return_type == "give_answer" else "")
    messages = [
        {"role": "system", "content": "You are AutoGPT..."},
        {"role": "user", "content": f"\n{QUERY}\nBegin!\n"},
        {
            "role": "assistant",
            "content": "I will check the weather first.",
            "function_call": {"name": "weather_for_meteo", "arguments": '{"city": "Lyon"}'},
        },
        {"role": "function", "name": "weather_for_meteo", "content": '{"temp_c": 12}'},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "Finish", "arguments": final},
        },
    ]
    return {
        "win": win,
        "tree": {"size": 3},
        "answer_generation": {
            "valid_data": valid,
            "query": QUERY,
            "final_answer": final,
            "finish_type": return_type,
            "function": FUNCTIONS,
            "train_messages": [messages[:2], messages] if valid else [],
            "chain": [],
        },
    }


def test_it_reads_a_dfs_answer_from_its_last_train_messages(tmp_path, run_import):
    path = write_json(tmp_path / "G1_answer", "10_ChatGPT_DFS_woFilter_w2.json", dfs_answer(True))
    summary = run_import(path)
    assert summary.format == "toolbench" and summary.successes == 1
    t = Trajectory.objects.get()
    assert t.external_id == "G1_answer/10_ChatGPT_DFS_woFilter_w2"
    assert t.goal == QUERY and t.system_prompt == "You are AutoGPT..."
    assert t.final_answer == "Lyon: 12C. 1 EUR = 0.94 CHF."
    assert t.tools[0] == {"type": "function", "function": FUNCTIONS[0]}
    [step] = t.ordered_steps()  # Finish is the answer, not a step
    assert (step.thought, step.action, step.action_input) == (
        "I will check the weather first.",
        "weather_for_meteo",
        {"city": "Lyon"},
    )
    assert step.observation == '{"temp_c": 12}' and step.observation_role == "tool"


def test_it_keeps_a_plain_message_before_the_finish_call_as_a_step(tmp_path, run_import):
    data = dfs_answer(True)
    conversation = data["answer_generation"]["train_messages"][-1]
    conversation.insert(-1, {"role": "assistant", "content": "Lyon is mild today."})
    run_import(write_json(tmp_path, "q.json", data))
    t = Trajectory.objects.get()
    assert [s.thought for s in t.ordered_steps()][-1] == "Lyon is mild today."
    assert t.final_answer == "Lyon: 12C. 1 EUR = 0.94 CHF."


def test_it_keeps_same_named_files_of_two_groups_apart(tmp_path, run_import):
    a = write_json(tmp_path / "G1_answer", "10_x.json", dfs_answer(True))
    b = write_json(tmp_path / "G2_answer", "10_x.json", dfs_answer(False))
    assert run_import(a, b).imported == 2


def test_it_gives_the_same_file_the_same_id_wherever_it_was_uploaded(tmp_path, run_import):
    a = write_json(tmp_path / "3f9c0e", "12_x.json", dfs_answer(True))
    b = write_json(tmp_path / "77ab01", "12_x.json", dfs_answer(True))
    assert (run_import(a).imported, run_import(b).duplicates) == (1, 1)
    assert Trajectory.objects.get().external_id == "12_x"


def test_it_counts_a_give_up_as_a_failure(tmp_path, run_import):
    path = write_json(tmp_path, "q.json", dfs_answer(False, "give_up_and_restart"))
    summary = run_import(path)
    t = Trajectory.objects.get()
    assert summary.failures == 1 and "give_up_and_restart" in t.raw_label
    assert "gave up" in t.failure_reason


def test_it_reads_win_stored_as_a_string_and_invalid_cot_runs_from_their_chain(
    tmp_path, run_import
):
    data = dfs_answer("False", valid=False)
    data["trys"] = [
        {
            "chain": [
                {"node_type": "Thought", "description": "Try the weather"},
                {"node_type": "Action", "description": "weather_for_meteo"},
                {
                    "node_type": "Action Input",
                    "description": '{"city": "Lyon"}',
                    "observation": "{}",
                },
            ],
            "win": False,
        }
    ]
    data["answer_generation"]["final_answer"] = ""
    run_import(write_json(tmp_path, "588_CoT@1.json", data))
    t = Trajectory.objects.get()
    assert t.success is False and t.metadata["method"] == "CoT"
    assert "valid_data: false" in t.failure_reason
    [step] = t.ordered_steps()
    assert (step.thought, step.action, step.action_input) == (
        "Try the weather",
        "weather_for_meteo",
        {"city": "Lyon"},
    )


def test_it_imports_every_run_of_an_eval_file_keyed_by_query_id(tmp_path, run_import):
    def tool_message(name, args, response):
        return str({"name": name, "arguments": args, "response": response})[:100]

    def run(answer, calls):
        details, node = [], None
        for name, args, response in calls:
            new = {"role": "tool", "message": tool_message(name, args, response), "next": []}
            (node["next"] if node else details).append(new)
            node = new
        return {
            "query": QUERY,
            "available_tools": FUNCTIONS,
            "answer": {
                "method": "CoT",
                "total_steps": 3,
                "final_answer": answer,
                "answer_details": details,
            },
        }

    data = {
        "101": run(
            finish("give_answer", "12C"), [("weather_for_meteo", '{"city": "Lyon"}', "12C")]
        ),
        "102": run("", [("weather_for_meteo", '{\n  "city": "Lyon"\n}', "x" * 200)]),
        "103": run(finish("give_up_and_restart"), []),
    }
    summary = run_import(write_json(tmp_path, "CoT_G1_instruction.json", data))
    assert (summary.imported, summary.successes, summary.failures) == (3, 1, 2)
    ok = Trajectory.objects.get(external_id="101")
    assert ok.final_answer == "12C" and ok.ordered_steps().get().action_input == {"city": "Lyon"}
    cut = Trajectory.objects.get(external_id="102")
    # The converter cut the message at 100 characters: the call is still read.
    assert cut.ordered_steps().get().action_input == {"city": "Lyon"}
    assert cut.raw_label == "empty"
    assert Trajectory.objects.get(external_id="103").raw_label == "give_up_and_restart"


def test_it_rejects_an_answer_file_without_a_query(tmp_path, run_import):
    data = dfs_answer(True)
    data["answer_generation"]["query"] = ""
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, "q.json", data), fmt="toolbench")
    assert err.value.field == "answer_generation.query" and "q.json" in str(err.value)


def test_it_rejects_a_file_that_is_not_toolbench(tmp_path, run_import):
    with pytest.raises(TrajectoryImportError, match="not a ToolBench file"):
        run_import(write_json(tmp_path, "x.json", [{"a": 1}]), fmt="toolbench")
