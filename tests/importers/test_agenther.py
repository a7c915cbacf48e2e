from __future__ import annotations

import pytest

from relabel.importers import TrajectoryImportError
from relabel.models import Trajectory
from tests.importers.conftest import agenther_record, write_json, write_jsonl


def test_it_imports_a_json_array_with_steps_and_outcome(tmp_path, run_import):
    path = write_json(tmp_path, "runs.json", [agenther_record("a"), agenther_record("b")])
    summary = run_import(path, fmt="agenther")
    assert (summary.imported, summary.failures, summary.successes) == (2, 2, 0)
    t = Trajectory.objects.get(external_id="a")
    assert t.goal == "Find a bike shop open on Sunday"
    assert t.final_answer == "Velo Corner is open on Sundays 10-16."
    assert t.success is False and t.source_format == "agenther"
    assert t.metadata["domain"] == "local"
    assert t.raw_record["trajectory_id"] == "a"
    step = t.ordered_steps().get()
    assert (step.thought, step.action) == ("Search shops", "web_search")
    assert step.action_input == {"query": "bike shop open Sunday"}
    assert step.observation.startswith("Velo Corner")


def test_it_reads_jsonl_and_a_success_flag(tmp_path, run_import):
    path = write_jsonl(tmp_path, "runs.jsonl", [agenther_record("ok", success=True)])
    summary = run_import(path)
    assert summary.format == "agenther" and summary.successes == 1
    assert Trajectory.objects.get(external_id="ok").raw_label == "success=True"


def test_it_keeps_long_observations_whole_but_compressed(tmp_path, run_import):
    long = "row " * 10_000
    record = agenther_record("long")
    record["steps"][0]["observation"] = long
    run_import(write_json(tmp_path, "long.json", [record]))
    step = Trajectory.objects.get(external_id="long").ordered_steps().get()
    assert step.is_truncated and len(step.observation) == step.EXCERPT_CHARS
    assert step.full_observation == long


def test_it_rejects_a_file_with_one_broken_record_whole(tmp_path, run_import):
    path = write_json(
        tmp_path, "bad.json", [agenther_record("good"), {"trajectory_id": "bad", "steps": "nope"}]
    )
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="agenther")
    message = str(err.value)
    assert "bad.json" in message and "record 2" in message and "'bad'" in message
    assert Trajectory.objects.count() == 0


def test_it_names_the_field_when_steps_is_not_a_list(tmp_path, run_import):
    record = agenther_record("x", steps="nope")
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, "x.json", [record]), fmt="agenther")
    assert err.value.field == "steps" and "must be a list" in str(err.value)


def test_it_rejects_a_record_without_a_goal(tmp_path, run_import):
    record = agenther_record("nogoal")
    del record["original_prompt"]
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, "g.json", [record]), fmt="agenther")
    assert err.value.field == "original_prompt" and "missing goal" in str(err.value)


def test_it_rejects_a_step_whose_input_is_not_an_object(tmp_path, run_import):
    record = agenther_record("s")
    record["steps"][0]["action_input"] = [1, 2]
    with pytest.raises(TrajectoryImportError) as err:
        run_import(write_json(tmp_path, "s.json", [record]), fmt="agenther")
    assert err.value.field == "steps[0].action_input"


def test_it_rejects_text_that_is_not_json(tmp_path, run_import):
    path = tmp_path / "broken.json"
    path.write_text('[{"trajectory_id": "a",')
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="agenther")
    assert "broken.json" in str(err.value) and "not valid JSON" in str(err.value)


def test_it_names_the_line_of_a_broken_jsonl_record(tmp_path, run_import):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"trajectory_id": "a", "original_prompt": "x", "steps": []}\n{oops\n')
    with pytest.raises(TrajectoryImportError) as err:
        run_import(path, fmt="agenther")
    assert err.value.record == "line 2"
    assert Trajectory.objects.count() == 0


def test_it_counts_duplicates_instead_of_importing_twice(tmp_path, run_import):
    path = write_json(tmp_path, "runs.json", [agenther_record("a"), agenther_record("a")])
    first = run_import(path)
    again = run_import(path)
    assert (first.imported, first.duplicates) == (1, 1)
    assert (again.imported, again.duplicates) == (0, 2)
    assert Trajectory.objects.count() == 1


def test_it_gives_records_without_an_id_one_from_file_and_position(tmp_path, run_import):
    record = agenther_record()
    del record["trajectory_id"]
    run_import(write_json(tmp_path, "anon.json", [agenther_record("x"), record]))
    assert Trajectory.objects.filter(external_id="anon:2").exists()
