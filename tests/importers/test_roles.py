"""Any role string imports: the usual aliases, agents named in the role or in a name field, and
``--map role.VALUE=ROLE`` overrides (multi-agent logs: Magentic-One, AutoGen, AG2, CrewAI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relabel.importers import TrajectoryImportError, parse_mapping
from relabel.models import Trajectory
from tests.importers.conftest import write_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "messages"
MAGENTIC = {"goal": "question", "messages": "history", "success": "is_corrected"}


def test_the_usual_role_aliases_read_as_chat_roles(tmp_path, run_import):
    record = {
        "messages": [
            {"role": "human", "content": "Translate 'good morning' to Norwegian"},
            {"role": "gpt", "content": "", "tool_calls": [
                {"id": "c1", "function": {"name": "translate", "arguments": '{"to": "nb"}'}}
            ]},
            {"role": "observation", "tool_call_id": "c1", "content": "God morgen"},
            {"role": "model", "content": "God morgen."},
        ]
    }  # fmt: skip
    run_import(write_jsonl(tmp_path, "log.jsonl", [record]), fmt="messages")
    t = Trajectory.objects.get()
    step = t.ordered_steps().get()
    assert t.goal == "Translate 'good morning' to Norwegian" and t.final_answer == "God morgen."
    assert (step.action, step.observation) == ("translate", "God morgen")
    assert "speaker" not in step.metadata  # aliases are no agents' names


def test_a_magentic_one_log_keeps_each_agent_s_name(run_import):
    summary = run_import(FIXTURES / "magentic-one.json", fmt="messages", mapping=MAGENTIC)
    t = Trajectory.objects.get()
    assert summary.failures == 1 and t.raw_label == "is_corrected=False"
    steps = list(t.ordered_steps())
    assert [s.metadata["speaker"] for s in steps] == [
        "Orchestrator (thought)",
        "Orchestrator (-> WebSurfer)",
        "WebSurfer",
        "Orchestrator (thought)",
    ]
    assert steps[2].thought.startswith("I opened munchmuseet.no")
    assert t.final_answer == "FINAL ANSWER: Closed on Mondays"
    # mistake_step counts messages of the source: each step keeps its position there.
    assert t.metadata["mistake_step"] == "3" and steps[2].metadata["message_index"] == 3


def test_a_role_override_reads_an_agent_as_what_came_back(run_import):
    mapping = {**MAGENTIC, **parse_mapping(["role.WebSurfer=tool"])}
    run_import(FIXTURES / "magentic-one.json", fmt="messages", mapping=mapping)
    steps = list(Trajectory.objects.get().ordered_steps())
    asked = steps[1]
    assert asked.metadata["speaker"] == "Orchestrator (-> WebSurfer)"
    assert asked.observation.startswith("I opened munchmuseet.no")
    assert asked.observation_role == "tool" and asked.metadata["observed_from"] == "WebSurfer"


def test_an_ag2_log_keeps_the_agent_name_beside_a_plain_role(run_import):
    path = FIXTURES / "ag2-group-chat.jsonl"
    run_import(path, fmt="messages", mapping={"goal": "task", "success": "solved"})
    t = Trajectory.objects.get()
    steps = list(t.ordered_steps())
    assert t.success is True and [s.metadata["speaker"] for s in steps] == ["coder"]
    assert steps[0].observation == "exitcode: 0 (execution succeeded)"
    assert steps[0].metadata["observed_from"] == "executor"
    assert t.final_answer == "The plot covers all twelve months. TERMINATE"


def test_the_name_field_can_be_mapped(tmp_path, run_import):
    record = {
        "goal": "Count the rows",
        "messages": [
            {"role": "user", "content": "Count the rows"},
            {"role": "assistant", "sender": "analyst", "content": "There are 12 rows."},
        ],
    }
    path = write_jsonl(tmp_path, "log.jsonl", [record])
    run_import(path, fmt="messages", mapping=parse_mapping(["name=sender"]))
    t = Trajectory.objects.get()
    assert t.final_answer == "There are 12 rows." and t.steps.count() == 0
    record["messages"].append({"role": "user", "content": "thanks"})
    path = write_jsonl(tmp_path, "log2.jsonl", [record])
    run_import(path, dataset="two", fmt="messages", mapping=parse_mapping(["name=sender"]))
    step = Trajectory.objects.get(dataset__name="two").ordered_steps().get()
    assert step.metadata["speaker"] == "analyst"


def test_a_role_override_splits_at_the_last_equals_sign():
    mapping = parse_mapping(["role.Orchestrator (-> WebSurfer)=user", "role.a=b=system"])
    assert mapping == {"role.Orchestrator (-> WebSurfer)": "user", "role.a=b": "system"}


@pytest.mark.parametrize("item", ["role.WebSurfer=robot", "role.=user", "role=user"])
def test_a_bad_role_override_is_refused(item):
    with pytest.raises(TrajectoryImportError, match="--map"):
        parse_mapping([item])


def test_a_message_without_a_role_is_refused_naming_it(tmp_path, run_import):
    record = {"messages": [{"role": "user", "content": "hi"}, {"content": "no role"}]}
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_jsonl(tmp_path, "log.jsonl", [record]), fmt="messages")
    assert err.value.field == "messages[1].role" and err.value.record == "line 1"
