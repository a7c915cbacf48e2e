"""A trajectory imported without an outcome (success NULL) is never silently a failure or a
success: an openai run's detection stage decides it; the rules backend sets it aside with the
reason; the run's counts keep it apart until it is decided."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from relabel.config import PROMPT_VERSION
from relabel.llm import prompts
from relabel.models import Candidate, RunItem
from relabel.pipeline.summary import run_summary
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

GOAL = "Find copper wire suppliers under $5/kg with MOQ below 100 kg"


def mixed_dataset(name: str | None = None, unknown_goals: tuple[str, ...] = (GOAL,)):
    """One benchmark failure, one benchmark success, and runs with no recorded outcome."""
    dataset = make_dataset(name)
    make_trajectory(dataset, goal="Find supplier number 1 of copper wire")
    make_trajectory(dataset, success=True, reward=1.0)
    for i, goal in enumerate(unknown_goals):
        make_trajectory(dataset, goal=goal, success=None, external_id=f"trace-{i}")
    return dataset


def adds_up(summary: dict) -> bool:
    total = summary["successes"] + summary["failures"] + summary["unknown"]
    decided = summary["candidates"] + summary["discarded"] + summary["errors"]
    return total == summary["trajectories"] and decided <= summary["failures"]


def test_the_rules_backend_sets_an_unknown_outcome_aside_with_the_reason(relabel_now):
    run = relabel_now(mixed_dataset())
    item = RunItem.objects.get(run=run, trajectory__success__isnull=True)
    assert item.status == RunItem.Status.SET_ASIDE and item.is_failure is None
    assert item.reason.startswith("outcome unknown, not judged: the rules backend cannot tell")
    assert item.detection == {
        "source": "rules",
        "outcome": "unknown",
        "decided": False,
        "reason": item.reason,
    }
    assert not Candidate.objects.filter(item=item).exists()
    summary = run_summary(run)
    assert (summary["successes"], summary["failures"], summary["unknown"]) == (1, 1, 1)
    assert summary["set_aside"] == 1 and summary["discarded"] == 0 and adds_up(summary)


def test_an_openai_run_asks_the_model_whether_an_unknown_run_succeeded(llm_server, relabel_now):
    goals = (f"{GOAL} TEST-SUCCEEDED=true", f"{GOAL} TEST-SUCCEEDED=false")
    run = relabel_now(mixed_dataset(unknown_goals=goals), "openai")
    won = RunItem.objects.get(run=run, trajectory__external_id="trace-0")
    lost = RunItem.objects.get(run=run, trajectory__external_id="trace-1")
    assert won.status == RunItem.Status.SUCCESS and won.is_failure is False
    assert won.reason == "judged a success by the model"
    assert won.detection["decided"] is True and won.detection["succeeded"] is True
    assert won.detection["source"] == "openai"
    assert lost.is_failure is True and lost.detection["succeeded"] is False
    assert lost.status in (RunItem.Status.CANDIDATE, RunItem.Status.DISCARDED)
    summary = run_summary(run)
    assert (summary["successes"], summary["failures"], summary["unknown"]) == (2, 2, 0)
    assert adds_up(summary)


def test_only_unknown_outcomes_get_the_succeeded_question():
    dataset = make_dataset()
    failed = make_trajectory(dataset)
    unknown = make_trajectory(dataset, success=None)
    known = prompts.detect_prompt(failed, list(failed.ordered_steps()), 4000)
    asked = prompts.detect_prompt(unknown, list(unknown.ordered_steps()), 4000)
    # A benchmark failure's prompt is the plain detect prompt: only the unknown gets the question.
    version = PROMPT_VERSION
    assert known.schema_name == f"agenther_detect_{version}"
    assert "succeeded" not in known.schema["required"]
    assert known.messages[0] == asked.messages[0] == prompts.system_message()
    assert "whose outcome was not recorded" not in known.messages[1]["content"]
    assert asked.schema_name == f"agenther_detect_unknown_{version}"
    assert asked.schema["required"][0] == "succeeded"
    task = asked.messages[1]["content"].split("\n\nTask (detect, ")[1]
    assert task.startswith(f"AgentHER prompts {version}): This is a run whose outcome was not")


@pytest.mark.django_db(transaction=True)  # the command commits, then the work runs on commit
def test_the_relabel_command_counts_unknown_outcomes_apart():
    mixed_dataset(name="unk", unknown_goals=(GOAL, GOAL + " again"))
    out = io.StringIO()
    call_command("relabel", "--dataset", "unk", "--wait", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (summary["successes"], summary["failures"], summary["unknown"]) == (1, 1, 2)
    assert summary["trajectories"] == 4 and adds_up(summary)
    out = io.StringIO()
    call_command("relabel", "--dataset", "unk", stdout=out)
    assert "2 with no recorded outcome (2 set aside undecided" in out.getvalue()


def test_the_run_page_shows_counts_that_add_up(researcher_client, relabel_now):
    run = relabel_now(mixed_dataset())
    page = researcher_client.get(f"/runs/{run.pk}/").content.decode()
    outcomes = "<strong>1</strong> success, <strong>1</strong> failure, <strong>1</strong> with no"
    assert outcomes in page
    assert "outcome unknown, set aside" in page


def export(run, fmt: str, out, *flags: str) -> dict[str, list[dict]]:
    call_command("export", "--run", str(run.pk), "--format", fmt, "--out", str(out), *flags)
    return {
        f.name: [json.loads(line) for line in f.read_text().splitlines()]
        for f in sorted(out.glob("*.jsonl"))
    }


def test_a_success_the_model_judged_is_exported_as_the_model_s_call(
    llm_server, relabel_now, tmp_path
):
    run = relabel_now(mixed_dataset(unknown_goals=(f"{GOAL} TEST-SUCCEEDED=true",)), "openai")
    rows = export(run, "sft", tmp_path, "--include-successes")["sft_successes.jsonl"]
    methods = {
        row["metadata"]["trajectory"]: row["metadata"]["verified_by"]["method"] for row in rows
    }
    assert sorted(methods.values()) == ["benchmark", "model"] and methods["trace-0"] == "model"


def test_dpo_pairs_only_runs_whose_benchmark_recorded_the_outcome(relabel_now, tmp_path):
    dataset = make_dataset()
    steps = [
        {"thought": "Ask", "action": "search", "action_input": {"q": "wire"}, "observation": "ok"}
    ]
    make_trajectory(dataset, goal=GOAL, success=True, steps=steps, external_id="won")
    make_trajectory(dataset, goal=GOAL, external_id="lost")
    make_trajectory(dataset, goal=GOAL, success=None, external_id="unknown")
    run = relabel_now(dataset)
    rows = export(run, "dpo", tmp_path)["dpo_shared_prompt.jsonl"]
    assert [
        (r["metadata"]["chosen_trajectory"], r["metadata"]["rejected_trajectory"]) for r in rows
    ] == [("won", "lost")]
