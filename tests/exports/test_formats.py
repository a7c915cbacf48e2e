from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from relabel.tokens import estimate_tokens
from review.exports.options import ExportOptions
from review.exports.sharegpt import conversation
from review.exports.writer import export_to_directory
from tests.exports.checks import (
    check_messages,
    check_preference,
    check_sharegpt,
    load_with_datasets,
    read_jsonl,
)
from tests.exports.conftest import EDITED_GOAL, LONG_OBSERVATION, TOOLS


def export(reviewed_run, out: Path, fmt: str, **filters) -> dict:
    return export_to_directory(reviewed_run.run, ExportOptions(fmt, **filters), out)


def by_trajectory(rows: list[dict]) -> dict[str, dict]:
    return {r["metadata"]["trajectory"]: r for r in rows}


def test_sft_holds_the_approved_candidates_under_their_exported_goal(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path, "sft")
    rows = by_trajectory(read_jsonl(tmp_path / "sft.jsonl"))
    assert set(rows) == {"t-auto", "t-edit", "t-long"}
    for row in rows.values():
        check_messages(row["messages"])
    edited = rows["t-edit"]
    assert [m for m in edited["messages"] if m["role"] == "user"][0]["content"] == EDITED_GOAL
    assert edited["metadata"]["goal_edited"] is True
    assert edited["metadata"]["verified_by"] == {
        "method": "human",
        "raters": [{"rater": "rita", "decision": "edit", "kind": "curation"}],
    }
    auto = rows["t-auto"]
    assert auto["weight"] == pytest.approx(0.8) and edited["weight"] == pytest.approx(0.6)
    assert auto["metadata"]["verified_by"]["method"] == "auto"
    assert auto["messages"][0] == {"role": "system", "content": "You are a procurement agent."}
    assert auto["messages"][2]["tool_calls"][0]["function"]["name"] == "search"
    assert auto["metadata"] | {"candidate": None, "run": None} == {
        "kind": "hindsight",
        "trajectory": "t-auto",
        "dataset": "webshop",
        "source_format": "agenther",
        "run": None,
        "candidate": None,
        "confidence": 0.9,
        "gate": "auto_accepted",
        "review_state": "unreviewed",
        "verified_by": {"method": "auto", "raters": []},
        "failure_type": "constraint_violation",
        "severity": 0.2,
        "weight": pytest.approx(0.8),
        "original_goal": reviewed_run.auto.trajectory.goal,
        "goal_edited": False,
        "rewritten_steps": [],
        "final_answer_rewritten": False,
        "consistency": {"policy": None, "flagged": False, "findings": []},
        "conversation": {
            "goal_placement": "first_user_turn",
            "ended_without_answer": False,
            "control_tokens": [],
            "dropped_turns": [],
        },
    }
    assert auto["tools"] == TOOLS and edited["tools"] == []


def test_sft_loads_with_datasets_and_keeps_weight_and_metadata(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path / "out", "sft", include_successes=True)
    ds = load_with_datasets(tmp_path / "out" / "sft.jsonl", tmp_path / "cache")
    assert ds.num_rows == 3
    assert {"messages", "weight", "metadata"} <= set(ds.column_names)
    assert sorted(ds["weight"]) == pytest.approx([0.6, 0.8, 1.0])
    for messages in ds["messages"]:
        check_messages(messages)  # as datasets gives them back, absent keys as None
    successes = load_with_datasets(tmp_path / "out" / "sft_successes.jsonl", tmp_path / "cache")
    assert successes["metadata"][0]["trajectory"] == "t-success"


def test_successes_are_a_separate_file_under_their_original_goal(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path, "sft", include_successes=True)
    (row,) = read_jsonl(tmp_path / "sft_successes.jsonl")
    check_messages(row["messages"])
    assert row["messages"][1]["content"] == reviewed_run.success.trajectory.goal
    assert row["metadata"]["kind"] == "success"
    assert "t-success" not in by_trajectory(read_jsonl(tmp_path / "sft.jsonl"))


def test_dpo_pairs_the_hindsight_goal_against_the_original_goal(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path / "out", "dpo")
    rows = read_jsonl(tmp_path / "out" / "dpo_hindsight.jsonl")
    assert {r["metadata"]["trajectory"] for r in rows} == {"t-auto", "t-edit", "t-long"}
    for row in rows:
        check_preference(row)
        assert "prompt" not in row
        chosen_goal = next(m for m in row["chosen"] if m["role"] == "user")["content"]
        rejected_goal = next(m for m in row["rejected"] if m["role"] == "user")["content"]
        assert rejected_goal == row["metadata"]["original_goal"] != chosen_goal
        # The same response: everything after the goal is identical.
        assert row["chosen"][-1] == row["rejected"][-1]
    ds = load_with_datasets(tmp_path / "out" / "dpo_hindsight.jsonl", tmp_path / "cache")
    assert ds.num_rows == 3 and {"chosen", "rejected", "weight"} <= set(ds.column_names)


def test_dpo_pairs_a_success_over_a_failure_of_the_same_task_with_a_shared_prompt(
    reviewed_run, tmp_path
):
    export(reviewed_run, tmp_path / "out", "dpo")
    (row,) = read_jsonl(tmp_path / "out" / "dpo_shared_prompt.jsonl")
    check_preference(row)
    assert row["prompt"][-1] == {"role": "user", "content": reviewed_run.success.trajectory.goal}
    assert row["metadata"]["chosen_trajectory"] == "t-success"
    assert row["metadata"]["rejected_trajectory"] == "t-auto"
    ds = load_with_datasets(tmp_path / "out" / "dpo_shared_prompt.jsonl", tmp_path / "cache")
    assert set(ds.column_names) >= {"prompt", "chosen", "rejected"}


def test_sharegpt_rows_obey_llama_factory_positions_and_load(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path / "out", "sharegpt", include_successes=True)
    rows = read_jsonl(tmp_path / "out" / "sharegpt.jsonl")
    assert len(rows) == 3
    for row in rows:
        check_sharegpt(row)
    auto = by_trajectory(rows)["t-auto"]
    assert auto["system"] == "You are a procurement agent."
    assert json.loads(auto["tools"])[0]["function"]["name"] == "search"
    assert json.loads(auto["conversations"][1]["value"]) == {
        "name": "search",
        "arguments": {"query": "copper wire supplier"},
    }
    assert by_trajectory(rows)["t-edit"]["conversations"][0]["value"] == EDITED_GOAL
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["agenther_hindsight"] == {
        "file_name": "sharegpt.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "observation_tag": "observation",
            "function_tag": "function_call",
        },
    }
    assert info["agenther_successes"]["file_name"] == "sharegpt_successes.jsonl"
    ds = load_with_datasets(tmp_path / "out" / "sharegpt.jsonl", tmp_path / "cache")
    assert ds.num_rows == 3


def test_sharegpt_merges_turns_of_one_side_so_positions_hold():
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "goal"},
        {"role": "assistant", "content": "thinking"},  # a step with no action and no reply
        {
            "role": "assistant",
            "content": "now call",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "oops"}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "ra"},
        {"role": "tool", "tool_call_id": "b", "content": "rb"},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "done"},
        {"role": "assistant", "content": "really done"},
    ]
    system, turns = conversation(messages)
    assert system == "sys"
    assert [t["from"] for t in turns] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(turns[1]["value"]) == [
        {"name": "f", "arguments": {}},
        {"name": "g", "arguments": "oops"},
    ]
    assert turns[2]["value"] == "ra\n\nrb\n\nand?"
    assert turns[3]["value"] == "done\n\nreally done"
    check_sharegpt({"conversations": turns, "system": system, "tools": ""})


def long_observation_in_each_format(reviewed_run, tmp_path, budget: int) -> dict[str, str]:
    seen = {}
    for fmt in ("sft", "dpo", "sharegpt"):
        out = tmp_path / f"{fmt}-{budget}"
        export(reviewed_run, out, fmt, observation_tokens=budget)
        name = {"sft": "sft.jsonl", "dpo": "dpo_hindsight.jsonl", "sharegpt": "sharegpt.jsonl"}
        row = by_trajectory(read_jsonl(out / name[fmt]))["t-long"]
        if fmt == "sft":
            seen[fmt] = next(m["content"] for m in row["messages"] if m["role"] == "tool")
        elif fmt == "dpo":
            seen[fmt] = next(m["content"] for m in row["chosen"] if m["role"] == "tool")
            seen["dpo-rejected"] = next(
                m["content"] for m in row["rejected"] if m["role"] == "tool"
            )
        else:
            seen[fmt] = next(t["value"] for t in row["conversations"] if t["from"] == "observation")
    return seen


def test_long_observations_are_cut_to_the_budget_identically_in_every_format(
    reviewed_run, tmp_path
):
    seen = long_observation_in_each_format(reviewed_run, tmp_path, 300)
    assert len(set(seen.values())) == 1
    (cut,) = set(seen.values())
    assert "characters omitted" in cut and len(cut) < len(LONG_OBSERVATION) // 10
    assert estimate_tokens(cut) <= 300 * 1.2
    larger = long_observation_in_each_format(reviewed_run, tmp_path, 1000)["sft"]
    assert len(larger) > len(cut)


def test_human_verified_only_keeps_what_a_person_approved(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path, "sft", human_verified_only=True)
    assert set(by_trajectory(read_jsonl(tmp_path / "sft.jsonl"))) == {"t-edit"}


def test_min_confidence_drops_candidates_below_it(reviewed_run, tmp_path):
    export(reviewed_run, tmp_path, "sft", min_confidence=0.75)
    assert set(by_trajectory(read_jsonl(tmp_path / "sft.jsonl"))) == {"t-auto"}


def test_an_undone_rejection_puts_nothing_back_but_an_undone_accept_no_longer_verifies(
    reviewed_run, tmp_path
):
    from tests.exports.conftest import verdict

    long = reviewed_run.long
    accept = verdict(long, reviewed_run.rater, "accept")
    export(reviewed_run, tmp_path / "a", "sft", human_verified_only=True)
    assert set(by_trajectory(read_jsonl(tmp_path / "a" / "sft.jsonl"))) == {"t-edit", "t-long"}
    verdict(long, reviewed_run.rater, "undo", undoes=accept)
    export(reviewed_run, tmp_path / "b", "sft", human_verified_only=True)
    assert set(by_trajectory(read_jsonl(tmp_path / "b" / "sft.jsonl"))) == {"t-edit"}


def test_the_manifest_counts_and_checksums_match_the_files(reviewed_run, tmp_path):
    manifest = export(reviewed_run, tmp_path, "sharegpt", include_successes=True)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    names = {f["name"] for f in manifest["files"]}
    assert names == {"sharegpt.jsonl", "sharegpt_successes.jsonl", "dataset_info.json"}
    for f in manifest["files"]:
        data = (tmp_path / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert len(data) == f["bytes"]
        if f["rows"] is not None:
            assert len(data.decode().splitlines()) == f["rows"] == manifest["counts"][f["name"]]
    assert manifest["total_rows"] == 4
    assert manifest["filters"]["include_successes"] is True
    assert manifest["run"]["config"] == reviewed_run.run.config
    assert "precision" in manifest and manifest["created_at"]
    assert not list(tmp_path.glob("*.part"))


def test_verdicts_list_every_candidate_and_the_discarded_trajectories(reviewed_run, tmp_path):
    manifest = export(reviewed_run, tmp_path, "verdicts")
    rows = {r["trajectory"]: r for r in read_jsonl(tmp_path / "verdicts.jsonl")}
    assert manifest["total_rows"] == len(rows) == 7
    assert {t: r["gate"] for t, r in rows.items()} == {
        "t-auto": "auto_accepted",
        "t-edit": "needs_review",
        "t-hrej": "auto_accepted",
        "t-grej": "rejected",
        "t-open": "needs_review",
        "t-long": "auto_accepted",
        "t-discard": "discarded",
    }
    assert rows["t-discard"]["hindsight_goal"] is None
    assert rows["t-discard"]["reason"] == "severity 0.9 above the discard line"
    assert rows["t-hrej"]["verdicts"][0]["decision"] == "reject"
    assert rows["t-hrej"]["approved"] is False
    assert rows["t-edit"]["verdicts"][0]["edited_goal"] == EDITED_GOAL
    assert rows["t-auto"]["judges"][0]["name"] == "judge-a"
    for row in rows.values():
        assert row["run"] == reviewed_run.run.pk and row["dataset"] == "webshop"


def test_verdicts_as_csv_have_the_same_rows(reviewed_run, tmp_path):
    manifest = export(reviewed_run, tmp_path, "verdicts", csv=True)
    with (tmp_path / "verdicts.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert manifest["counts"] == {"verdicts.csv": 7} and len(rows) == 7
    edit = next(r for r in rows if r["trajectory"] == "t-edit")
    assert json.loads(edit["verdicts"])[0]["decision"] == "edit"
    assert next(r for r in rows if r["trajectory"] == "t-discard")["confidence"] == ""


@pytest.mark.parametrize("fmt", ["sft", "dpo", "sharegpt", "verdicts"])
def test_the_number_of_queries_does_not_grow_with_the_rows(reviewed_run, tmp_path, fmt):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import make_candidate, make_trajectory

    def queries(out: Path) -> int:
        with CaptureQueriesContext(connection) as captured:
            export(reviewed_run, out, fmt)
        return len(captured)

    before = queries(tmp_path / "before")
    for i in range(12):
        trajectory = make_trajectory(reviewed_run.run.dataset, external_id=f"more-{i}")
        make_candidate(reviewed_run.run, trajectory=trajectory, confidence=0.95)
    assert queries(tmp_path / "after") == before
