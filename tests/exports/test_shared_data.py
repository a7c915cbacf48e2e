"""Every exported row of the real trajectories in ../shared/data, in every source format, holds
only what the run contained, plus the goal where the model would see it: no placeholder answer,
no simulator control token, no first user turn the run did not have; the manifest accounts for
every row it left out and gives the rows' lengths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from relabel.chat import TASK_HEADING
from relabel.llm.offline_server import start_in_thread
from relabel.models import Candidate, Trajectory
from review.exports import dpo, rows
from review.exports.options import ExportOptions
from tests.conftest import ROOT
from tests.exports.checks import check_messages, check_preference, read_jsonl
from tests.exports.checks import check_sharegpt as check_sharegpt_row
from tests.exports.runs import (
    EVERY_FAILURE,
    Export,
    accept_what_awaits_review,
    export_formats,
    import_and_relabel,
)

PLACEHOLDER = "stopped without a final answer"
CONTROL_TOKEN = re.compile(r"###[A-Z][A-Z_-]*###")

# format -> (paths under ../shared/data, or under the project for the bundled sample; --map)
SOURCES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "agenther": (["relabel/sample/agenther.jsonl"], ()),
    "browsergym": (["webarena-browsergym"], ()),
    "toolbench": (
        [
            "toolbench/answer/G1_answer",
            "toolbench/answer/G2_answer",
            "stabletoolbench/cot",
            "stabletoolbench/dfs",
            "toolbench/tooleval",
        ],
        (),
    ),
    "tau-bench": (["tau-bench/gpt-4o-airline.json"], ()),
    "messages": (
        ["who-and-when/algorithm-generated"],
        ("goal=question", "messages=history", "success=is_correct"),
    ),
    "swe-agent": (["swe-agent"], ()),
}


def source_paths(fmt: str, base: Path) -> list[Path]:
    """The source files (a BrowserGym results folder is one path, read whole)."""
    paths = []
    for name in SOURCES[fmt][0]:
        path = base / name
        if path.is_dir() and fmt != "browsergym":
            paths += sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".traj"))
        else:
            paths.append(path)
    return paths


def expected_first_user_turn(trajectory: Trajectory, goal: str) -> str:
    """What the row must open with under ``goal``: the source's own first user message when it
    recorded one (with the goal swapped in where the message holds it), else the goal."""
    opening = trajectory.metadata.get("opening_message") or ""
    if CONTROL_TOKEN.search(opening):
        opening = CONTROL_TOKEN.sub("", opening).strip()
    if not opening:
        return goal
    return opening.replace(trajectory.goal, goal) if trajectory.goal in opening else opening


class Sources:
    """The trajectories and candidates behind an export's rows."""

    def __init__(self, export: Export):
        run = export.run
        self.trajectories = {
            t.external_id: t for t in Trajectory.objects.filter(dataset=run.dataset)
        }
        self.goals = dict(Candidate.objects.filter(run=run).values_list("id", "final_goal"))

    def goal(self, metadata: dict[str, Any]) -> str:
        trajectory = self.trajectories[metadata["trajectory"]]
        return (
            self.goals[metadata["candidate"]]
            if metadata["kind"] == "hindsight"
            else trajectory.goal
        )


def check_conversation(messages: list[dict], trajectory: Trajectory, goal: str) -> None:
    for message in messages:
        assert PLACEHOLDER not in (message.get("content") or "")
    first_user = next(m for m in messages if m["role"] == "user")
    assert first_user["content"] == expected_first_user_turn(trajectory, goal)
    opening = trajectory.metadata.get("opening_message")
    if opening and trajectory.goal not in opening:  # the goal was a simulated user's brief
        assert all(m["content"] != trajectory.goal for m in messages)
        if goal != trajectory.goal:
            assert messages[0]["role"] == "system"
            assert messages[0]["content"].endswith(TASK_HEADING + goal)
    if trajectory.source_format == "tau-bench":  # what the user said, read from the source
        said = next(m["content"] for m in trajectory.raw_record["traj"] if m["role"] == "user")
        assert first_user["content"] == said
        assert trajectory.raw_record["info"]["task"]["instruction"] not in json.dumps(messages)


def control_tokens_said(trajectory: Trajectory) -> list[str]:
    """The simulator's control tokens in the source's user turns (tau-bench's traj)."""
    record = trajectory.raw_record
    turns = record.get("traj", []) if isinstance(record, dict) else []
    said = [m.get("content") or "" for m in turns if m.get("role") == "user"]
    return sorted({t.strip("#") for text in said for t in CONTROL_TOKEN.findall(text)})


def check_sft_rows(export: Export, sources: Sources) -> int:
    n = 0
    for name in ("sft.jsonl", "sft_successes.jsonl"):
        for row in read_jsonl(export.folders["sft"] / name):
            check_messages(row["messages"], answer=False, real=True)
            trajectory = sources.trajectories[row["metadata"]["trajectory"]]
            assert row["tools"] == (trajectory.tools or [])
            check_conversation(row["messages"], trajectory, sources.goal(row["metadata"]))
            notes = row["metadata"]["conversation"]
            assert sorted(notes["control_tokens"]) == control_tokens_said(trajectory)
            n += 1
    return n


def check_dpo_rows(export: Export, sources: Sources) -> int:
    hindsight = read_jsonl(export.folders["dpo"] / dpo.HINDSIGHT_FILE)
    for row in hindsight:
        check_preference(row, answer=False, real=True)
        trajectory = sources.trajectories[row["metadata"]["trajectory"]]
        check_conversation(row["chosen"], trajectory, sources.goal(row["metadata"]))
        check_conversation(row["rejected"], trajectory, trajectory.goal)
    shared = read_jsonl(export.folders["dpo"] / dpo.SHARED_FILE)
    for row in shared:
        check_preference(row, answer=False, real=True)
        for side in ("chosen", "rejected"):
            trajectory = sources.trajectories[row["metadata"][f"{side}_trajectory"]]
            check_conversation(row["prompt"] + row[side], trajectory, trajectory.goal)
    return len(hindsight) + len(shared)


def check_sharegpt_rows(export: Export, sources: Sources) -> int:
    n = 0
    for name in ("sharegpt.jsonl", "sharegpt_successes.jsonl"):
        for row in read_jsonl(export.folders["sharegpt"] / name):
            check_sharegpt_row(row)
            metadata = row["metadata"]
            trajectory = sources.trajectories[metadata["trajectory"]]
            expected = expected_first_user_turn(trajectory, sources.goal(metadata))
            assert row["conversations"][0]["value"].startswith(expected)
            assert PLACEHOLDER not in json.dumps(row["conversations"])
            n += 1
    return n


def check_the_manifests_account_for_every_row(export: Export) -> None:
    run = export.run
    planned = {
        "sft.jsonl": rows.exported_candidates(run, ExportOptions("sft")).count(),
        "sft_successes.jsonl": rows.success_items(run).count(),
        dpo.HINDSIGHT_FILE: rows.exported_candidates(run, ExportOptions("dpo")).count(),
        dpo.SHARED_FILE: dpo.shared_prompt_count(run),
        "sharegpt.jsonl": rows.exported_candidates(run, ExportOptions("sharegpt")).count(),
        "sharegpt_successes.jsonl": rows.success_items(run).count(),
    }
    for fmt in ("sft", "dpo", "sharegpt"):
        manifest = export.manifest(fmt)
        for name, written in manifest["counts"].items():
            assert written + sum(manifest["left_out"][name].values()) == planned[name], name
            lengths = manifest["row_tokens"][name]
            assert lengths["rows"] == written
            if written:
                assert 0 < lengths["median"] <= lengths["max"]
                assert sum(s["rows"] for s in lengths["by_source_format"].values()) == written


# Formats whose runs record no outcome (SWE-agent's "submitted"): the rules backend sets them
# aside, so a model run decides them (the offline server says each failed).
UNRECORDED = {"swe-agent"}


def export_of_every_failure(
    fmt: str, data: Path, tmp: Path, capture, backend: str = "rules"
) -> Export:
    with capture(execute=True):
        run = import_and_relabel(
            source_paths(fmt, data),
            fmt,
            tmp,
            fmt=fmt,
            maps=SOURCES[fmt][1],
            # One thread: the work runs inside the test's transaction, which others cannot see.
            config=EVERY_FAILURE.replace('"rules"', f'"{backend}"') + "concurrency = 1\n",
            backend=backend,
        )
    accept_what_awaits_review(run, tmp)
    return export_formats(run, tmp)


def check_holds_only_the_run(export: Export) -> None:
    for folder in export.folders.values():
        for path in folder.glob("*.jsonl"):
            text = path.read_text()
            assert not CONTROL_TOKEN.search(text), path.name
            assert PLACEHOLDER not in text, path.name
    sources = Sources(export)
    checked = check_sft_rows(export, sources) + check_dpo_rows(export, sources)
    checked += check_sharegpt_rows(export, sources)
    assert checked > 0
    check_the_manifests_account_for_every_row(export)


@pytest.mark.django_db
def test_no_exported_row_of_the_bundled_agenther_runs_holds_what_the_run_did_not(
    tmp_path, django_capture_on_commit_callbacks
):
    export = export_of_every_failure("agenther", ROOT, tmp_path, django_capture_on_commit_callbacks)
    check_holds_only_the_run(export)


@pytest.mark.shared_data
@pytest.mark.django_db
@pytest.mark.parametrize("fmt", [f for f in SOURCES if f != "agenther"])
def test_no_exported_row_of_the_shared_data_holds_what_the_run_did_not(
    fmt, shared_data, tmp_path, django_capture_on_commit_callbacks, settings
):
    backend = "rules"
    if fmt in UNRECORDED:
        server = start_in_thread()
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.base_url, "test-key"
        backend = "openai"
    try:
        export = export_of_every_failure(
            fmt, shared_data, tmp_path, django_capture_on_commit_callbacks, backend
        )
    finally:
        if backend == "openai":
            server.shutdown()
            server.server_close()
    check_holds_only_the_run(export)
