"""Every real file in ../shared/data imports with the counts its own labels give (skipped when
the folder is absent)."""

from __future__ import annotations

import time

import pytest

from relabel.importers import import_paths, parse_mapping
from relabel.models import Trajectory

pytestmark = [pytest.mark.shared_data, pytest.mark.django_db]


def import_twice(paths, name, fmt="auto", mapping=None):
    first = import_paths(paths, name, fmt=fmt, mapping=mapping)
    again = import_paths(paths, name, fmt=fmt, mapping=mapping)
    assert again.imported == 0 and again.duplicates == first.imported
    return first


def test_webarena_runs_import_with_their_cum_rewards(shared_data):
    s = import_twice([shared_data / "webarena-browsergym"], "wa", fmt="browsergym")
    assert s.imported + s.skipped == 20 and s.successes == 9 and s.failures >= 9
    partial = Trajectory.objects.get(dataset__name="wa", reward__gt=0, reward__lt=1)
    assert partial.success is False and partial.raw_label.startswith("cum_reward=0.33")
    # Observations are the accessibility tree, never the pruned HTML.
    assert not Trajectory.objects.filter(steps__observation__contains="<head bid=").exists()


def test_toolbench_and_stabletoolbench_answers_import_with_their_win_labels(shared_data):
    paths = sorted(shared_data.glob("toolbench/answer/*/*.json"))
    paths += sorted(shared_data.glob("stabletoolbench/*/*.json"))
    s = import_twice(paths, "tb")
    assert s.format == "toolbench" and s.imported + s.skipped == 14 and s.successes == 9


def test_the_toolbench_eval_file_imports_one_trajectory_per_query(shared_data):
    s = import_twice(sorted(shared_data.glob("toolbench/tooleval/*.json")), "te")
    assert s.imported == 100
    gave_up = Trajectory.objects.filter(dataset__name="te", success=False)
    assert gave_up.count() == s.failures and 25 <= s.failures <= 75


def test_tau_bench_imports_quickly_with_its_rewards(shared_data):
    started = time.monotonic()
    s = import_paths([shared_data / "tau-bench" / "gpt-4o-airline.json"], "tau", fmt="tau-bench")
    elapsed = time.monotonic() - started
    assert s.imported == 200 and s.successes == 84 and s.failures >= 116
    assert elapsed < 15, f"tau-bench took {elapsed:.1f} s"
    assert Trajectory.objects.get(dataset__name="tau", external_id="0-0").goal.startswith("You are")


def test_who_and_when_logs_import_through_the_field_map(shared_data):
    mapping = parse_mapping(["goal=question", "messages=history", "success=is_correct"])
    paths = sorted(shared_data.glob("who-and-when/algorithm-generated/*.json"))
    s = import_twice(paths, "ww", fmt="messages", mapping=mapping)
    assert s.imported == 25 and s.successes == 0
    t = Trajectory.objects.filter(dataset__name="ww").first()
    assert t.metadata["mistake_agent"] and "mistake_step" in t.metadata


def test_swe_agent_runs_import_without_a_success_label(shared_data):
    s = import_twice([shared_data / "swe-agent"], "swe")
    assert s.format == "swe-agent" and s.imported == 3 and s.successes == 0
    labels = set(
        Trajectory.objects.filter(dataset__name="swe").values_list("metadata__label", flat=True)
    )
    assert labels == {"unknown"}


WHO_AND_WHEN = {
    "who-and-when/algorithm-generated": ["goal=question", "messages=history", "success=is_correct"],
    "who-and-when/hand-crafted": ["goal=question", "messages=history", "success=is_corrected"],
}
EVERY_FOLDER = [
    "webarena-browsergym",
    "toolbench",
    "stabletoolbench",
    "tau-bench",
    "swe-agent",
    "otel-genai",
    "langfuse",
    "langsmith",
    "anthropic-messages",
    "openai-agents",
    *WHO_AND_WHEN,
]


@pytest.mark.parametrize("folder", EVERY_FOLDER)
def test_every_shared_folder_imports_with_auto_detection(shared_data, folder):
    mapping = parse_mapping(WHO_AND_WHEN.get(folder, []))
    s = import_twice([shared_data / folder], folder.replace("/", "-"), mapping=mapping)
    assert s.imported > 0 and all(f.why for f in s.files)
    assert s.successes + s.failures + s.unknown == s.imported


def test_who_and_when_hand_crafted_logs_keep_their_agents_names(shared_data):
    mapping = parse_mapping(WHO_AND_WHEN["who-and-when/hand-crafted"])
    s = import_twice([shared_data / "who-and-when" / "hand-crafted"], "hc", mapping=mapping)
    assert s.format == "messages" and s.imported == 4 and s.failures == 4
    speakers = set(
        Trajectory.objects.filter(dataset__name="hc").values_list(
            "steps__metadata__speaker", flat=True
        )
    )
    assert {"Orchestrator (thought)", "Orchestrator (-> WebSurfer)", "WebSurfer"} <= speakers


def test_otel_genai_spans_import_one_trajectory_per_trace(shared_data):
    s = import_twice([shared_data / "otel-genai"], "otel")
    # The lone execute_tool span has no goal: skipped, and said so.
    assert s.format == "otel" and s.imported == 3 and s.skipped == 1 and s.unknown == 3
    smol = Trajectory.objects.get(source_file__endswith="SMOLAGENTS_trace.json")
    steps = list(smol.ordered_steps())
    assert [s.action for s in steps] == ["get_current_time", "write_file", "final_answer"]
    assert steps[0].action_input == {"timezone": "America/New_York"}
    assert '"timezone": "America/New_York"' in steps[0].observation
    assert "America/New_York timezone" in smol.goal and smol.final_answer.startswith('{"steps"')


def test_langfuse_exports_import_and_scores_can_decide_success(shared_data):
    s = import_twice([shared_data / "langfuse"], "lf", fmt="auto")
    assert s.format == "langfuse" and s.imported == 4 and s.unknown == 4
    pydantic = Trajectory.objects.get(dataset__name="lf", source_file__contains="pydantic")
    speakers = {st.metadata.get("speaker") for st in pydantic.ordered_steps()}
    assert speakers == {"joke_agent", "evaluator_agent"}
    graph = Trajectory.objects.get(dataset__name="lf", source_file__contains="langgraph")
    step = graph.ordered_steps().get()
    assert step.action == "Web-Search" and "example.com" in step.observation
    scored = import_paths(
        [shared_data / "langfuse"], "lf-scored", success_score="hallucination<=0.2"
    )
    assert (scored.successes, scored.failures, scored.unknown) == (2, 1, 1)


def test_langsmith_anthropic_and_openai_agents_recordings_import(shared_data):
    ls = import_twice([shared_data / "langsmith"], "ls")
    assert ls.format == "langsmith" and ls.imported == 3 and ls.unknown == 3
    anthropic = import_twice([shared_data / "anthropic-messages"], "an")
    assert anthropic.format == "anthropic" and anthropic.imported == 2
    family = Trajectory.objects.get(dataset__name="an", external_id__contains="parallel")
    assert [s.action_input["name"] for s in family.ordered_steps()] == [
        "Alice",
        "Bob",
        "Charlie",
        "Daisy",
    ]
    agents = import_twice([shared_data / "openai-agents"], "oa")
    # The agent used as a tool talks to the model in a conversation of its own.
    assert agents.format == "openai-responses" and agents.imported == 2
    outer = Trajectory.objects.get(dataset__name="oa", goal="What is 2 + 2?")
    assert outer.ordered_steps().get().observation == "2 + 2 = 4"
