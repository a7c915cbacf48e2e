from __future__ import annotations

import pytest

from relabel.importers import TrajectoryImportError
from relabel.models import Trajectory
from tests.importers.conftest import write_json

ISSUE = "Dividing by zero crashes the calculator"


def traj(exit_status="submitted", demo=True):
    history = [{"role": "system", "content": "You are an autonomous programmer."}]
    if demo:
        history.append({"role": "user", "content": "Here is a demonstration...", "is_demo": "True"})
    history += [
        {
            "role": "user",
            "content": f"Here's the issue text:\nISSUE:\n{ISSUE}\n\nINSTRUCTIONS:\nFix it.",
        },
        {
            "role": "assistant",
            "thought": "Find the file.",
            "action": "find_file calc.py",
            "content": "x",
        },
        {"role": "user", "content": "Found 1 match: src/calc.py"},
        {"role": "assistant", "thought": "Submit.", "action": "submit"},
        {"role": "tool", "content": "diff --git a/src/calc.py b/src/calc.py"},
    ]
    return {
        "history": history,
        "info": {"exit_status": exit_status, "submission": "diff --git a/src/calc.py"},
    }


def test_it_imports_a_submitted_run_with_its_outcome_unknown(tmp_path, run_import):
    summary = run_import(write_json(tmp_path, "calc__calc-12.traj", traj()))
    t = Trajectory.objects.get()
    assert summary.format == "swe-agent" and t.external_id == "calc__calc-12"
    assert t.goal == ISSUE and t.system_prompt == "You are an autonomous programmer."
    assert t.success is None and t.raw_label == "exit_status=submitted"
    assert summary.unknown == 1 and summary.failures == 0
    assert t.metadata["label"] == "unknown" and t.failure_reason == ""
    assert t.final_answer.startswith("diff --git")
    steps = list(t.ordered_steps())
    assert [(s.thought, s.action, s.action_input) for s in steps] == [
        ("Find the file.", "find_file", {"command": "find_file calc.py"}),
        ("Submit.", "submit", {"command": "submit"}),
    ]
    assert steps[0].observation == "Found 1 match: src/calc.py"


def test_it_marks_a_run_that_hit_a_limit_as_a_known_failure(tmp_path, run_import):
    run_import(write_json(tmp_path, "calc__calc-13.traj", traj("exit_cost", demo=False)))
    t = Trajectory.objects.get()
    assert t.metadata["label"] == "failure" and "exit_cost" in t.failure_reason


def test_it_rejects_a_run_without_an_issue(tmp_path, run_import):
    data = traj()
    data["history"] = [m for m in data["history"] if m["role"] != "user"]
    with pytest.raises(TrajectoryImportError, match="missing goal"):
        run_import(write_json(tmp_path, "empty.traj", data))
