"""The import_trajectories command, driven as a user or a script would."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from relabel.models import Dataset, Trajectory
from tests.importers.conftest import agenther_record, write_json

KEYS = {
    "dataset",
    "format",
    "imported",
    "duplicates",
    "skipped",
    "successes",
    "failures",
    "unknown",
    "skipped_reasons",
    "files",
}


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_trajectories", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_it_ends_with_one_json_object_and_says_nothing_on_stderr(tmp_path):
    path = write_json(
        tmp_path, "a.json", [agenther_record("a"), agenther_record("b", success=True)]
    )
    out, err = run(str(path), "--dataset", "new", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary) >= KEYS
    assert summary["skipped"] == 0 and summary["skipped_reasons"] == {}
    assert (summary["dataset"], summary["format"]) == ("new", "agenther")
    assert (summary["imported"], summary["successes"], summary["failures"]) == (2, 1, 1)
    assert err == ""
    assert Dataset.objects.filter(name="new").exists()


@pytest.mark.django_db
def test_it_says_which_format_it_detected_and_ends_on_a_summary_line(tmp_path):
    path = write_json(tmp_path, "a.json", [agenther_record("a")])
    out, _ = run(str(path), "--dataset", "d")
    lines = out.strip().splitlines()
    assert lines[0] == "format: agenther (detected)"
    assert lines[-1].startswith("dataset d (agenther): imported 1")


@pytest.mark.django_db
def test_it_counts_duplicates_on_a_second_import(tmp_path):
    path = write_json(tmp_path, "a.json", [agenther_record("a")])
    run(str(path), "--dataset", "d", "--json")
    out, _ = run(str(path), "--dataset", "d", "--json")
    summary = json.loads(out)
    assert (summary["imported"], summary["duplicates"]) == (0, 1)
    assert Trajectory.objects.count() == 1


@pytest.mark.django_db
def test_it_fails_naming_the_file_record_and_field_and_imports_nothing_from_it(tmp_path):
    good = write_json(tmp_path, "good.json", [agenther_record("g")])
    bad = write_json(
        tmp_path, "bad.json", [agenther_record("ok"), agenther_record("bad", steps="nope")]
    )
    with pytest.raises(CommandError) as err:
        run(str(good), str(bad), "--dataset", "d", "--format", "agenther", "--json")
    message = str(err.value)
    assert "bad.json" in message and "record 2 (id 'bad')" in message and "'steps'" in message
    # The good file before it stays imported; nothing of the bad one is.
    assert list(Trajectory.objects.values_list("external_id", flat=True)) == ["g"]
    assert "run again" in message


@pytest.mark.django_db
def test_it_rejects_an_unknown_format(tmp_path):
    path = write_json(tmp_path, "a.json", [agenther_record("a")])
    with pytest.raises(CommandError, match="invalid choice"):
        run(str(path), "--dataset", "d", "--format", "csv")


@pytest.mark.django_db
def test_it_rejects_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError) as err:
        run(str(tmp_path / "missing.json"), "--dataset", "d")
    assert "missing.json" in str(err.value) and "no such file" in str(err.value)
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_it_rejects_bad_map_syntax(tmp_path):
    path = write_json(tmp_path, "a.json", [{"messages": []}])
    with pytest.raises(CommandError, match="not KEY=FIELD"):
        run(str(path), "--dataset", "d", "--map", "goal")


@pytest.mark.django_db
def test_it_cannot_guess_a_file_it_does_not_know(tmp_path):
    path = write_json(tmp_path, "odd.json", [{"hello": "world"}])
    with pytest.raises(CommandError, match="cannot tell the format"):
        run(str(path), "--dataset", "d")


@pytest.mark.django_db
def test_it_rejects_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("these are notes, not JSON")
    with pytest.raises(CommandError, match="notes.json: not valid JSON"):
        run(str(path), "--dataset", "d", "--format", "tau-bench")


@pytest.mark.django_db
def test_it_reports_per_file_what_it_detected_and_why(tmp_path):
    fixtures = Path(__file__).resolve().parent / "fixtures"
    agenther = write_json(tmp_path, "a.json", [agenther_record("a")])
    cassette = fixtures / "anthropic" / "currency.cassette.yaml"
    out, _ = run(str(agenther), str(cassette), "--dataset", "d", "--json")
    summary = json.loads(out)
    assert summary["format"] == "agenther+anthropic"
    assert (summary["imported"], summary["failures"], summary["unknown"]) == (2, 1, 1)
    assert summary["files"] == [
        {
            "path": str(agenther),
            "format": "agenther",
            "why": "the AgentHER schema (original_prompt / trajectory_id + steps)",
            "imported": 1,
            "duplicates": 0,
            "skipped": 0,
            "successes": 0,
            "failures": 1,
            "unknown": 0,
        },
        {
            "path": str(cassette),
            "format": "anthropic",
            "why": "a VCR cassette of Anthropic Messages API calls",
            "imported": 1,
            "duplicates": 0,
            "skipped": 0,
            "successes": 0,
            "failures": 0,
            "unknown": 1,
        },
    ]
    text, _ = run(str(agenther), "--dataset", "e")
    assert f"  {agenther}: agenther (the AgentHER schema" in text


@pytest.mark.django_db
def test_it_takes_a_success_score_for_langfuse_traces(tmp_path):
    trace = Path(__file__).resolve().parent / "fixtures" / "langfuse" / "support-triage.trace.json"
    out, _ = run(str(trace), "--dataset", "d", "--success-score", "resolved>=1", "--json")
    assert json.loads(out)["failures"] == 1
    with pytest.raises(CommandError, match="--success-score"):
        run(str(trace), "--dataset", "d", "--success-score", "resolved", "--json")
