"""A real Celery worker on Redis and PostgreSQL: a run stopped midway and resumed gives every
failed trajectory exactly one candidate.

The run is started and resumed with the relabel command, in subprocesses, as a user would; the
worker is a real ``celery worker`` process on its own queue. Redis must be up: this test fails,
it does not skip, when it is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import redis

from relabel.llm.offline_server import start_in_thread
from relabel.models import Candidate, Run, RunItem
from tests.factories import make_dataset, make_trajectory
from tests.services import (
    ROOT,
    database_url,
    finish_on_a_worker,
    redis_url,
    start_worker,
    stop_worker,
    wait_until,
)

FAILED, WON = 10, 2


def done(run: Run) -> int:
    return RunItem.objects.filter(run=run).exclude(status__in=["pending", "error"]).count()


@pytest.fixture
def services(tmp_path):
    broker = redis_url()
    redis.Redis.from_url(broker, socket_connect_timeout=3).ping()  # fails the test if down
    server = start_in_thread(latency_ms=150)
    queue = f"agenther-test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test-key",
        "DEBUG": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    yield env, tmp_path
    server.shutdown()
    server.server_close()
    redis.Redis.from_url(broker).delete(queue)


def manage(env: dict, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_run_stopped_midway_and_resumed_gives_one_candidate_per_failure(services):
    env, tmp = services
    dataset = make_dataset("worker-run")
    steps = [
        {
            "thought": "TEST-SEVERITY=0.1",  # nothing discarded: every failure gets a candidate
            "action": "search",
            "action_input": {"query": "copper wire"},
            "observation": "MicroMetals: $5.30/kg, MOQ 10 kg.",
        }
    ]
    for i in range(FAILED):
        make_trajectory(dataset, goal=f"Find copper wire supplier {i} under $5/kg", steps=steps)
    for _ in range(WON):
        make_trajectory(dataset, success=True, reward=1.0)
    config = tmp / "run.toml"
    config.write_text("chunk_size = 2\nconcurrency = 1\nretry_backoff = 0.01\n")
    log = tmp / "worker.log"

    started = manage(env, "relabel", "--dataset", dataset.name, "--backend", "openai",
                     "--config", str(config))  # fmt: skip
    run = Run.objects.get(pk=started["run"])
    assert started["status"] == "running" and started["done"] == 0  # enqueued, not run here

    worker = start_worker(env, log)
    try:
        wait_until(lambda: done(run) >= 3, 90, f"a first worker's progress ({log.read_text()})")
    finally:
        stop_worker(worker)
    stopped_at = done(run)
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and stopped_at < FAILED + WON, "not stopped midway"

    resumed = manage(env, "relabel", "--resume", str(run.pk))
    assert resumed["done"] == stopped_at
    finish_on_a_worker(env, log, run.pk)

    final = manage(env, "relabel", "--resume", str(run.pk))  # nothing left: nothing changes
    assert final["errors"] == 0 and final["done"] == FAILED + WON
    candidates = Candidate.objects.filter(run=run)
    assert candidates.count() == FAILED == final["candidates"]
    assert candidates.values("trajectory").distinct().count() == FAILED
    assert set(candidates.values_list("trajectory__success", flat=True)) == {False}
    assert RunItem.objects.filter(run=run, status="success").count() == WON
    # Each trajectory's calls were made once: nothing was redone after the restart.
    per_trajectory = {
        t: run.llm_calls.filter(trajectory_id=t, stage="detect").count()
        for t in candidates.values_list("trajectory_id", flat=True)
    }
    assert set(per_trajectory.values()) == {1}
