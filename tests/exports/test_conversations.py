"""What a row holds, on the bundled sample (imported, relabelled with the rules backend, reviewed
and exported through the commands): the conversation that happened, the goal where the agent
would see it, nothing invented; and what the manifest says about the rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relabel.chat import TASK_HEADING, estimated_tokens, message_texts
from relabel.importers import SAMPLE_PATHS
from relabel.models import Candidate, Trajectory
from review.exports import dpo
from review.exports.manifest import MEASURED_ROWS, LeftOut, Rows
from review.exports.sharegpt import NO_ANSWER
from tests.exports.checks import read_jsonl
from tests.exports.runs import Export, accept_what_awaits_review, export_formats, import_and_relabel


@pytest.fixture
def sample_export(db, tmp_path, django_capture_on_commit_callbacks) -> Export:
    with django_capture_on_commit_callbacks(execute=True):
        run = import_and_relabel(SAMPLE_PATHS, "sample", tmp_path)
    accept_what_awaits_review(run, tmp_path)
    return export_formats(run, tmp_path)


def tau_rows(path: Path) -> list[dict]:
    return [r for r in read_jsonl(path) if r["metadata"]["source_format"] == "tau-bench"]


def said_first(trajectory: Trajectory) -> str:
    return next(m["content"] for m in trajectory.raw_record["traj"] if m["role"] == "user")


def test_a_conversation_opens_with_what_the_user_said_and_keeps_the_hidden_brief_out(
    sample_export,
):
    rows = tau_rows(sample_export.folders["sft"] / "sft_successes.jsonl")
    assert len(rows) == 2
    for row in rows:
        trajectory = Trajectory.objects.get(external_id=row["metadata"]["trajectory"])
        messages = row["messages"]
        assert messages[0] == {"role": "system", "content": trajectory.system_prompt}
        assert messages[1] == {"role": "user", "content": said_first(trajectory)}
        assert trajectory.goal not in json.dumps(messages)  # the simulator's instruction
        assert row["metadata"]["original_goal"] == trajectory.goal
        notes = row["metadata"]["conversation"]
        assert notes["goal_placement"] == "metadata"
        # The user's last turn ("Thanks! ###STOP###") came after the agent's answer.
        assert notes["control_tokens"] == ["STOP"]
        assert notes["dropped_turns"] == [{"role": "user", "reason": "after the agent's last turn"}]
        assert messages[-1]["role"] == "assistant" and not notes["ended_without_answer"]


def test_a_relabelled_conversation_gets_its_goal_as_the_agents_task_in_the_system_prompt(
    sample_export,
):
    rows = tau_rows(sample_export.folders["sft"] / "sft.jsonl")
    assert rows
    for row in rows:
        candidate = Candidate.objects.get(pk=row["metadata"]["candidate"])
        trajectory = candidate.trajectory
        system = row["messages"][0]["content"]
        assert system == f"{trajectory.system_prompt}\n\n{TASK_HEADING}{candidate.final_goal}"
        assert row["messages"][1]["content"] == said_first(trajectory)
        assert row["metadata"]["conversation"]["goal_placement"] == "system_prompt"


def test_hindsight_pairs_leave_out_conversations_whose_goal_the_agent_never_saw(sample_export):
    hindsight = read_jsonl(sample_export.folders["dpo"] / dpo.HINDSIGHT_FILE)
    assert hindsight and all(r["metadata"]["source_format"] != "tau-bench" for r in hindsight)
    tau_candidates = len(tau_rows(sample_export.folders["sft"] / "sft.jsonl"))
    left_out = sample_export.manifest("dpo")["left_out"][dpo.HINDSIGHT_FILE]
    assert left_out == {dpo.NOT_THE_AGENTS_GOAL: tau_candidates}
    for row in hindsight:  # the sample's agenther runs have no system prompt
        assert row["chosen"][0]["role"] == "user" and row["rejected"][0]["role"] == "user"


def test_shared_prompt_pairs_of_conversations_share_the_system_prompt_only(sample_export):
    pairs = read_jsonl(sample_export.folders["dpo"] / dpo.SHARED_FILE)
    assert len(pairs) == 2  # task 1: one success, two failures
    for pair in pairs:
        assert [m["role"] for m in pair["prompt"]] == ["system"]
        for side in ("chosen", "rejected"):
            trajectory = Trajectory.objects.get(external_id=pair["metadata"][f"{side}_trajectory"])
            assert pair[side][0] == {"role": "user", "content": said_first(trajectory)}
        assert pair["chosen"] != pair["rejected"]


def test_a_run_that_stopped_on_a_tool_call_keeps_its_sft_row_and_leaves_sharegpt(
    sample_export,
):
    stopped = [
        r
        for r in read_jsonl(sample_export.folders["sft"] / "sft.jsonl")
        if r["metadata"]["conversation"]["ended_without_answer"]
    ]
    assert stopped
    for row in stopped:
        assert row["messages"][-1]["tool_calls"]
    sharegpt = sample_export.manifest("sharegpt")
    assert sharegpt["left_out"]["sharegpt.jsonl"] == {NO_ANSWER: len(stopped)}
    written = {
        r["metadata"]["trajectory"]
        for r in read_jsonl(sample_export.folders["sharegpt"] / "sharegpt.jsonl")
    }
    assert not written & {r["metadata"]["trajectory"] for r in stopped}


def test_the_manifest_gives_each_files_row_lengths_per_source_format(sample_export):
    manifest = sample_export.manifest("sft")
    rows = read_jsonl(sample_export.folders["sft"] / "sft.jsonl")
    lengths = sorted(estimated_tokens(*message_texts(r["messages"], r["tools"])) for r in rows)
    figures = manifest["row_tokens"]["sft.jsonl"]
    assert figures["rows"] == figures["measured"] == len(rows)
    assert figures["max"] == lengths[-1] and figures["median"] == pytest.approx(
        (lengths[(len(lengths) - 1) // 2] + lengths[len(lengths) // 2]) / 2
    )
    by_source = figures["by_source_format"]
    assert set(by_source) == {r["metadata"]["source_format"] for r in rows}
    assert sum(s["rows"] for s in by_source.values()) == len(rows)
    assert "estimate" in manifest["row_tokens_method"]


def test_a_large_file_measures_a_sample_that_always_holds_its_longest_rows():
    n = 3 * MEASURED_ROWS
    row = {"messages": [{"role": "user", "content": "a few words"}], "tools": []}
    longest = {"messages": [{"role": "user", "content": "word " * 500}], "tools": []}

    def results():
        for i in range(n):
            yield longest if i == n - 7 else (LeftOut("x") if i == 5 else row)

    stream = Rows(results(), lambda r: message_texts(r["messages"], r["tools"]), n)
    assert sum(1 for _ in stream) == n - 1
    figures = stream.figures()
    assert figures["left_out"] == {"x": 1}
    tokens = figures["tokens"]
    assert tokens["rows"] == n - 1
    assert MEASURED_ROWS <= tokens["measured"] <= MEASURED_ROWS + 10
    assert tokens["max"] == estimated_tokens(*message_texts(longest["messages"]))
