"""Runs: frozen configuration, idempotent tasks, resume, the summary, the relabel command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from relabel.config import ConfigError, load_config
from relabel.models import Candidate, Run, RunItem
from relabel.pipeline import batch, claims
from relabel.pipeline.summary import run_summary
from relabel.runs import prepare_config, resume_run
from relabel.tasks.pipeline import process_items
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

ISSUE_KEYS = {
    "run", "trajectories", "successes", "failures", "candidates", "auto_accepted",
    "needs_review", "rejected", "discarded", "errors", "llm_calls", "cached_calls",
    "prompt_tokens", "completion_tokens", "cost_usd", "wall_seconds",
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


def small_dataset(failed: int = 3, won: int = 1, name: str | None = None):
    dataset = make_dataset(name)
    for i in range(failed):
        make_trajectory(dataset, goal=f"Find copper wire supplier number {i} under $5/kg")
    for _ in range(won):
        make_trajectory(dataset, success=True, reward=1.0)
    return dataset


def test_a_run_freezes_its_resolved_configuration(llm_server, relabel_now):
    run = relabel_now(small_dataset(), "openai", attempts=2, accept_threshold=0.6)
    assert run.backend == "openai" and run.prompt_version == run.config["prompt_version"]
    assert run.config["attempts"] == 2 and run.accept_threshold == 0.6
    assert run.config["stages"]["relabel"]["base_url"] == llm_server.base_url
    assert run.config["judges"] == [
        {
            "name": "judge-1",
            "model": "gpt-4o-mini",
            "endpoint": "default",
            "base_url": llm_server.base_url,
            "concurrency": 1,
            "json_mode": "json_schema",
        }
    ]
    assert "test-key" not in json.dumps(run.config)  # secrets never stored


def test_a_task_delivered_twice_leaves_one_candidate_per_trajectory(relabel_now):
    run = relabel_now(small_dataset(), "rules")
    before = list(Candidate.objects.filter(run=run).values_list("pk", "trajectory_id"))
    ids = list(RunItem.objects.filter(run=run).values_list("pk", flat=True))
    process_items.apply((run.pk, ids), throw=True)
    process_items.apply((run.pk, ids), throw=True)
    assert list(Candidate.objects.filter(run=run).values_list("pk", "trajectory_id")) == before
    assert len(before) == len({t for _, t in before})


def test_an_item_leased_by_another_worker_is_left_to_it(
    relabel_now, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("relabel.runs.enqueue_run", lambda run: 0)
    run = relabel_now(small_dataset(failed=2, won=0), "rules")
    monkeypatch.undo()
    first, second = RunItem.objects.filter(run=run).order_by("pk")
    assert claims.claim([first.pk])  # another worker holds it now
    process_items.apply((run.pk, [first.pk, second.pk]), throw=True)
    first.refresh_from_db()
    assert first.status == RunItem.Status.PENDING and first.lease_until is not None
    assert RunItem.objects.get(pk=second.pk).status == RunItem.Status.CANDIDATE
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING  # not done yet
    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run)  # the worker is gone: resuming takes its items over
    first.refresh_from_db()
    assert first.status == RunItem.Status.CANDIDATE and first.lease_until is None
    assert Run.objects.get(pk=run.pk).status == Run.Status.FINISHED


def test_a_task_redelivered_after_its_worker_died_takes_its_own_items_back(
    relabel_now, monkeypatch
):
    monkeypatch.setattr("relabel.runs.enqueue_run", lambda run: 0)
    run = relabel_now(small_dataset(failed=2, won=0), "rules")
    ids = list(RunItem.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    # The first delivery claimed the batch, then its worker died before writing anything.
    assert claims.claim(ids, claims.claim_token("task-1", 0))
    batch.process_items(run.pk, ids, claim_key="task-2")  # another task: leases respected
    assert not Candidate.objects.filter(run=run).exists()
    batch.process_items(run.pk, ids, claim_key="task-1")  # the same task, redelivered
    assert Candidate.objects.filter(run=run).count() == 2
    assert Run.objects.get(pk=run.pk).status == Run.Status.FINISHED
    batch.process_items(run.pk, ids, claim_key="task-1")  # and once more: nothing changes
    assert Candidate.objects.filter(run=run).count() == 2


def test_resume_retries_the_errors_and_leaves_finished_items_alone(
    llm_server, relabel_now, django_capture_on_commit_callbacks
):
    dataset = small_dataset()
    broken = make_trajectory(dataset, goal="TEST-MALFORMED find the supplier")
    run = relabel_now(dataset, "openai", malformed_retries=0)
    assert run_summary(run)["errors"] == 1
    done = dict(Candidate.objects.filter(run=run).values_list("trajectory_id", "pk"))
    broken.goal = "Find the supplier with the lowest MOQ"  # the cause is fixed
    broken.save(update_fields=["goal"])
    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run)
    summary = run_summary(run)
    assert summary["errors"] == 0 and summary["status"] == "finished"
    after = dict(Candidate.objects.filter(run=run).values_list("trajectory_id", "pk"))
    assert {t: after[t] for t in done} == done  # untouched
    assert broken.pk in after or RunItem.objects.get(run=run, trajectory=broken).status in (
        RunItem.Status.DISCARDED,
        RunItem.Status.NO_CANDIDATE,
    )
    assert RunItem.objects.get(run=run, trajectory=broken).attempts == 2


def test_resuming_a_finished_run_changes_nothing(relabel_now):
    run = relabel_now(small_dataset(), "rules")
    before = run_summary(run)
    resume_run(run)
    after = run_summary(run)
    assert {k: v for k, v in after.items()} == before


def test_a_finished_run_fills_the_review_queue_once(relabel_now, monkeypatch):
    calls = []
    monkeypatch.setattr("review.queue.populate_queue", lambda run: calls.append(run.pk) or 0)
    run = relabel_now(small_dataset(), "rules")
    run.finish_if_done()
    assert calls == [run.pk]
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED and run.finished_at


def test_resuming_a_finished_run_fills_in_a_review_queue_its_finish_missed(relabel_now):
    from review.models import ReviewTask

    run = relabel_now(small_dataset(failed=6, won=0), "rules", review={"audit_share": 1.0})
    expected = ReviewTask.objects.filter(candidate__run=run).count()
    assert expected > 0
    ReviewTask.objects.filter(candidate__run=run).delete()  # as if the finish died midway
    resume_run(run)
    assert ReviewTask.objects.filter(candidate__run=run).count() == expected


def test_a_bad_review_section_is_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="review.order"):
        load_config(overrides={"review": {"order": "bogus"}})
    with pytest.raises(ConfigError, match="review.audit_share"):
        load_config(overrides={"review": {"audit_share": 3}})
    with pytest.raises(ConfigError, match="review.colour"):
        load_config(overrides={"review": {"colour": "red"}})


def test_a_run_may_not_name_a_key_variable_at_all():
    judge = {"name": "j", "model": "m", "endpoint": "default"}
    for variable in ("DATABASE_URL", "OPENAI_API_KEY"):
        with pytest.raises(ConfigError, match=r"judges\[0\].api_key_env is not accepted"):
            load_config(overrides={"judges": [{**judge, "api_key_env": variable}]})


def test_the_summary_has_the_issues_keys_and_its_counts_add_up(llm_server, relabel_now):
    run = relabel_now(small_dataset(failed=4, won=2), "openai")
    summary = run_summary(run)
    assert set(summary) >= ISSUE_KEYS
    assert {"status", "done", "total", "cost_per_accepted_pair"} <= set(summary)
    assert summary["trajectories"] == summary["total"] == summary["done"] == 6
    assert summary["successes"] == 2 and summary["failures"] == 4
    gated = summary["auto_accepted"] + summary["needs_review"] + summary["rejected"]
    assert gated == summary["candidates"]
    assert summary["candidates"] + summary["discarded"] + summary["errors"] <= 4
    assert summary["llm_calls"] > 0 and summary["prompt_tokens"] > 0


# -- the command -----------------------------------------------------------------------------


def relabel(*args: str) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("relabel", *args, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


@pytest.mark.django_db(transaction=True)  # the command commits, then the work runs on commit
def test_the_command_prints_the_summary_as_its_last_json_object():
    small_dataset(name="cmd")
    summary, err = relabel("--dataset", "cmd", "--wait")
    assert set(summary) >= ISSUE_KEYS
    assert summary["status"] == "finished" and summary["candidates"] > 0
    assert err == ""
    again, _ = relabel("--resume", str(summary["run"]), "--wait")
    assert again["candidates"] == summary["candidates"] and again["run"] == summary["run"]


def test_the_command_names_an_unknown_dataset():
    small_dataset(name="known")
    with pytest.raises(CommandError, match=r"no dataset named 'nope' \(known: known\)"):
        call_command("relabel", "--dataset", "nope")


def test_the_openai_backend_without_an_endpoint_is_a_clear_error(settings):
    settings.OPENAI_BASE_URL = ""
    small_dataset(name="d")
    with pytest.raises(CommandError, match="OPENAI_BASE_URL is not set"):
        call_command("relabel", "--dataset", "d", "--backend", "openai")
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("acept_threshold = 0.4\n", "unknown key 'acept_threshold'"),
        ("accept_threshold = 1.5\n", "accept_threshold is 1.5; expected 0.0..1.0"),
        ("attempts = 'three'\n", "attempts must be an integer"),
        ("accept_threshold = 0.1\nreject_threshold = 0.3\n", "reject_threshold (0.3) is above"),
        ("[[judges]]\nname = 'a'\nmodle = 'x'\n", "judges[0].modle is not a known key"),
        ("[stages.summarise]\nmodel = 'x'\n", "stages.summarise is not a stage"),
        ("[[judges]]\nname = 'a'\napi_key = 'sk-1'\n", "judges[0].api_key is not accepted"),
        ("temperatures = [0.2, 5]\n", "temperatures[1] is 5"),
        ("accept_threshold = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_rejected_naming_the_file_and_the_key(tmp_path, toml, message):
    small_dataset(name="d")
    path = tmp_path / "run.toml"
    path.write_text(toml)
    with pytest.raises(CommandError) as error:
        call_command("relabel", "--dataset", "d", "--config", str(path))
    assert str(path) in str(error.value) and message in str(error.value)
    assert not Run.objects.exists()


VLLM = {"vllm": {"base_url": "http://127.0.0.1:8001/v1", "api_key_env": "VLLM_API_KEY"}}


def test_a_judge_on_an_endpoint_whose_key_variable_is_unset_is_refused(settings, monkeypatch):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.AGENTHER_ENDPOINTS = VLLM
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="endpoint 'vllm' takes its key from VLLM_API_KEY"):
        prepare_config("openai", load_config(ROOT / "relabel" / "sample-config.toml"))


def test_the_sample_config_file_is_valid(monkeypatch, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    settings.AGENTHER_ENDPOINTS = VLLM
    monkeypatch.setenv("VLLM_API_KEY", "k")
    config = prepare_config("openai", load_config(ROOT / "relabel" / "sample-config.toml"))
    assert [j["name"] for j in config["judges"]] == ["gpt", "qwen"]
    assert config["judges"][1]["base_url"] == "http://127.0.0.1:8001/v1"
    assert config["judges"][1]["endpoint"] == "vllm"
    assert config["judges"][0]["base_url"] == "http://127.0.0.1:9/v1"


@pytest.mark.django_db(transaction=True)
def test_a_task_that_fails_marks_the_run_interrupted_and_resume_finishes_it(monkeypatch):
    dataset = small_dataset(name="boom")

    def boom(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(batch, "process_here", boom)
    with pytest.raises(CommandError, match=r"interrupted \(RuntimeError: the disk is full\)"):
        call_command("relabel", "--dataset", "boom", stdout=io.StringIO())
    run = Run.objects.get(dataset=dataset)
    assert run.status == Run.Status.INTERRUPTED
    monkeypatch.undo()
    summary, err = relabel("--resume", str(run.pk))
    assert summary["status"] == "finished" and summary["done"] == 4 and err == ""
