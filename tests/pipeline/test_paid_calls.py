"""No paid call is lost or shared: every call is recorded the moment it returns (a worker killed
mid-trajectory loses nothing, a resume pays nothing twice), and the cache never answers one
endpoint's request with another endpoint's reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from relabel.llm.offline_server import start_in_thread
from relabel.models import LLMCacheEntry, LLMCall, Run
from relabel.pipeline.summary import run_summary
from tests.factories import make_dataset, make_trajectory
from tests.pipeline.test_worker import ROOT, database_url, wait_until

pytestmark = pytest.mark.django_db

NOT_DISCARDED = [
    {
        "thought": "TEST-SEVERITY=0.1",  # kept, so every stage is called
        "action": "search",
        "action_input": {"query": "copper wire"},
        "observation": "MicroMetals: $5.30/kg, MOQ 10 kg.",
    }
]


def failures(n: int, name: str | None = None):
    dataset = make_dataset(name)
    for i in range(n):
        make_trajectory(dataset, goal=f"Find supplier {i} of copper wire", steps=NOT_DISCARDED)
    return dataset


@pytest.fixture
def second_server():
    server = start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def test_two_servers_with_the_same_model_name_do_not_share_answers(
    llm_server, second_server, relabel_now, settings
):
    dataset = failures(2)
    first = run_summary(relabel_now(dataset, "openai"))
    assert first["llm_calls"] > 0 and first["cached_calls"] == 0
    settings.OPENAI_BASE_URL = second_server.base_url  # the same model name, another server
    second = run_summary(relabel_now(dataset, "openai"))
    assert second["cached_calls"] == 0
    assert second_server.behaviour.requests == second["llm_calls"] > 0


def test_two_judges_with_the_same_model_on_different_hosts_do_not_share_answers(
    llm_server, second_server, relabel_now, settings
):
    settings.AGENTHER_ENDPOINTS = {"other": {"base_url": second_server.base_url}}
    judges = [
        {"name": "here", "model": "gpt-4o-mini"},
        {"name": "there", "model": "gpt-4o-mini", "endpoint": "other"},
    ]
    run = relabel_now(failures(2), "openai", judges=judges)
    calls = LLMCall.objects.filter(run=run)
    here, there = calls.filter(stage="judge:here"), calls.filter(stage="judge:there")
    assert here.count() == there.count() == 2
    assert not calls.filter(stage__startswith="judge", cached=True).exists()
    assert set(there.values_list("endpoint", flat=True)) == {second_server.base_url}
    assert second_server.behaviour.requests == 2  # each judge asked its own host


def test_a_different_prompt_version_or_reply_budget_is_not_served_from_the_cache(
    llm_server, relabel_now
):
    dataset = failures(1)
    first = run_summary(relabel_now(dataset, "openai"))
    for change in ({"prompt_version": "v1-tuned"}, {"max_completion_tokens": 333}):
        again = run_summary(relabel_now(dataset, "openai", **change))
        assert again["cached_calls"] == 0 and again["llm_calls"] == first["llm_calls"], change


def test_each_call_is_recorded_as_soon_as_it_returns_not_when_the_trajectory_ends(
    llm_server, relabel_now, monkeypatch
):
    from relabel.backends.openai import OpenAIBackend

    seen = {}

    def judge_after_a_crash(self, ctx, judge, goal):
        # What the database holds at this point is what a worker killed now would leave.
        seen["calls"] = LLMCall.objects.filter(trajectory=ctx.trajectory).count()
        seen["cached"] = LLMCacheEntry.objects.count()
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(OpenAIBackend, "judge", judge_after_a_crash)
    relabel_now(failures(1), "openai")
    # detect (with the extraction in the same request) and relabel: both written already
    assert seen == {"calls": 2, "cached": 2}


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_trajectory_loses_no_paid_call_and_resume_pays_none_twice(tmp_path):
    server = start_in_thread(latency_ms=1000)  # the kill lands well inside a call
    dataset = failures(1, name="killed")
    config = tmp_path / "run.toml"
    # Two judges of different models: detect, relabel, judge, judge are four calls in a row.
    judges = '[[judges]]\nname = "a"\nmodel = "gpt-4o-mini"\n\n'
    judges += '[[judges]]\nname = "b"\nmodel = "gpt-4o"\n'
    config.write_text(f"concurrency = 1\nretry_backoff = 0.01\n\n{judges}")
    env = {**os.environ, "DATABASE_URL": database_url(), "OPENAI_BASE_URL": server.base_url}
    env.update(OPENAI_API_KEY="test-key", DEBUG="1")
    env.pop("CELERY_BROKER_URL", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    command = [sys.executable, "manage.py", "relabel", "--dataset", "killed"]
    try:
        worker = subprocess.Popen(
            [*command, "--backend", "openai", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Calls are sequential: when the fourth is in flight, three have returned.
        wait_until(lambda: server.behaviour.requests >= 4, 60, "the fourth call")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        run = Run.objects.get(dataset=dataset)
        paid = LLMCall.objects.filter(run=run, cached=False, error="")
        assert paid.count() == 3, "the calls paid before the kill are not recorded"
        assert LLMCacheEntry.objects.filter(key__in=paid.values("cache_key")).count() == 3

        resumed = subprocess.run(
            [sys.executable, "manage.py", "relabel", "--resume", str(run.pk), "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr
    finally:
        server.shutdown()
        server.server_close()
    paid_keys = Counter(
        LLMCall.objects.filter(run=run, cached=False, error="").values_list("cache_key", flat=True)
    )
    assert max(paid_keys.values()) == 1, "a call was paid twice"
    assert LLMCall.objects.filter(run=run, cached=True).count() == 3  # served from the cache
    # Every answered request is in the cost figures, but the one the kill cut off.
    assert run_summary(run)["llm_calls"] - 3 == server.behaviour.requests - 1
