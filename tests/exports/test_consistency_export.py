"""Exports of a relabelled run carry its rewritten turns, and nothing the environment recorded
changes: the bundled sample, relabelled with the rules backend, every candidate the gate sent to
people accepted by them, exported as SFT with consistency on (the default) and off."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from relabel.importers import import_sample
from relabel.models import Candidate, Dataset, Run, Step
from relabel.pipeline.hindsight import word_spans
from relabel.runs import start_run
from review.models import ReviewTask
from tests.conftest import make_user
from tests.exports.checks import check_messages, load_with_datasets, read_jsonl

pytestmark = pytest.mark.django_db


def accept_everything(run: Run, rater) -> None:
    """A person accepts every task the run put in the queue (curation and blind audit)."""
    while (task := ReviewTask.objects.for_run(run).claim_next(rater)) is not None:
        task.decide(rater, "accept")


def export(run: Run, out: Path, *flags: str) -> dict[str, Any]:
    stdout = io.StringIO()
    args = ("--run", str(run.pk), "--format", "sft", "--out", str(out), "--json", *flags)
    call_command("export", *args, stdout=stdout)
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


@pytest.fixture
def sample_runs(django_capture_on_commit_callbacks, tmp_path) -> dict[str, Any]:
    import_sample("sample")
    dataset = Dataset.objects.get(name="sample")
    rater = make_user("rita", "annotator")
    runs = {}
    for policy in ("rewrite", "off"):
        # The default configuration, but for the policy of the second run.
        config = {} if policy == "rewrite" else {"consistency": "off"}
        with django_capture_on_commit_callbacks(execute=True):
            run = start_run(dataset, backend="rules", config=config)
        accept_everything(run, rater)
        manifest = export(run, tmp_path / policy)
        rows = {r["metadata"]["trajectory"]: r for r in read_jsonl(tmp_path / policy / "sft.jsonl")}
        runs[policy] = {"run": run, "rows": rows, "manifest": manifest, "dir": tmp_path / policy}
    return runs


def first_assistant(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in messages if m["role"] == "assistant")


def six_word_quotes(row: dict[str, Any]) -> list[str]:
    """The assistant messages of a row holding six consecutive words of its original goal."""
    original = [w for w, _, _ in word_spans(row["metadata"]["original_goal"])]
    runs = {tuple(original[i : i + 6]) for i in range(len(original) - 5)}
    quoting = []
    for message in row["messages"]:
        words = [w for w, _, _ in word_spans(message.get("content") or "")]
        grams = {tuple(words[i : i + 6]) for i in range(len(words) - 5)}
        if message["role"] == "assistant" and grams & runs:
            quoting.append(message["content"])
    return quoting


def test_no_exported_row_quotes_six_consecutive_words_of_its_original_goal(sample_runs):
    before = [t for t, row in sample_runs["off"]["rows"].items() if six_word_quotes(row)]
    assert before, "the sample must hold a run whose agent restates its task (task_102)"
    after = {t: six_word_quotes(row) for t, row in sample_runs["rewrite"]["rows"].items()}
    assert set(after) == set(sample_runs["off"]["rows"])
    assert not any(after.values()), after


def environment_of(messages: list[dict[str, Any]]) -> list[Any]:
    """Everything the environment recorded in a row: tool calls with their arguments and ids,
    tool results, and every user turn after the goal."""
    recorded = []
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    for i, message in enumerate(messages):
        if message.get("tool_calls"):
            recorded.append(("calls", i, json.dumps(message["tool_calls"], sort_keys=True)))
        elif message["role"] == "tool":
            recorded.append(("tool", i, message["tool_call_id"], message["content"]))
        elif message["role"] == "user" and i != users[0]:
            recorded.append(("user", i, message["content"]))
    return recorded


def test_tool_calls_arguments_and_observations_are_byte_identical_to_the_export_with_it_off(
    sample_runs,
):
    rewritten, plain = sample_runs["rewrite"]["rows"], sample_runs["off"]["rows"]
    assert any(r["metadata"]["rewritten_steps"] for r in rewritten.values())
    for trajectory, row in rewritten.items():
        check_messages(row["messages"], answer=False)  # a run may stop on a tool call
        assert len(row["messages"]) == len(plain[trajectory]["messages"])
        assert environment_of(row["messages"]) == environment_of(plain[trajectory]["messages"])
        assert environment_of(row["messages"])  # each has something recorded to compare


def test_rows_list_their_rewritten_steps_and_findings_and_the_manifest_counts_them(sample_runs):
    export_ = sample_runs["rewrite"]
    row = export_["rows"]["task_102"]
    assert row["metadata"]["rewritten_steps"] == [0, 1]
    assert row["metadata"]["final_answer_rewritten"] is False
    consistency = row["metadata"]["consistency"]
    assert consistency["policy"] == "rewrite" and consistency["flagged"] is False
    assert consistency["findings"] and all(f["resolved"] for f in consistency["findings"])
    assert first_assistant(row["messages"]) == "Orders are under My Account."
    rows = export_["rows"].values()
    assert export_["manifest"]["consistency"] == {
        "rewritten": sum(bool(r["metadata"]["rewritten_steps"]) for r in rows),
        "flagged": sum(r["metadata"]["consistency"]["flagged"] for r in rows),
        "excluded": 0,
    }
    assert export_["manifest"]["consistency"]["flagged"] > 0
    # The original text stays in the database.
    steps = Step.objects.filter(trajectory__external_id="task_102", index=0)
    assert all(s.thought.startswith("The user wants me to tell them") for s in steps)


def test_consistent_only_leaves_out_the_rows_with_unresolved_findings(sample_runs, tmp_path):
    export_ = sample_runs["rewrite"]
    flagged = {t for t, r in export_["rows"].items() if r["metadata"]["consistency"]["flagged"]}
    manifest = export(export_["run"], tmp_path / "consistent", "--consistent-only")
    kept = {r["metadata"]["trajectory"] for r in read_jsonl(tmp_path / "consistent" / "sft.jsonl")}
    assert kept == set(export_["rows"]) - flagged
    assert manifest["consistency"]["excluded"] == len(flagged)
    assert manifest["consistency"]["flagged"] == 0
    assert manifest["filters"]["consistent_only"] is True


def test_the_verdicts_export_refuses_consistent_only(sample_runs, tmp_path):
    from django.core.management import CommandError

    with pytest.raises(
        CommandError, match="--consistent-only applies to the sft, dpo and sharegpt"
    ):
        call_command(
            "export",
            *("--run", str(sample_runs["rewrite"]["run"].pk), "--format", "verdicts"),
            *("--out", str(tmp_path / "v"), "--consistent-only"),
        )


def test_rows_with_findings_load_with_the_datasets_library(sample_runs, tmp_path):
    loaded = load_with_datasets(sample_runs["rewrite"]["dir"] / "sft.jsonl", tmp_path / "hf")
    assert len(loaded) == len(sample_runs["rewrite"]["rows"])
    assert "rewritten_steps" in loaded.features["metadata"]


def test_dpo_chosen_has_the_rewrite_and_rejected_the_original(sample_runs, tmp_path):
    run = sample_runs["rewrite"]["run"]
    call_command("export", "--run", str(run.pk), "--format", "dpo", "--out", str(tmp_path / "d"))
    row = next(
        r
        for r in read_jsonl(tmp_path / "d" / "dpo_hindsight.jsonl")
        if r["metadata"]["trajectory"] == "task_102"
    )
    assert first_assistant(row["chosen"]) == "Orders are under My Account."
    assert first_assistant(row["rejected"]).startswith("The user wants me to tell them")
    assert Candidate.objects.get(run=run, trajectory__external_id="task_102").rewrites
