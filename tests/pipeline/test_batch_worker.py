"""A run through the Batch API with a real Celery worker on Redis and PostgreSQL: the worker is
stopped while the endpoint still works on a batch, the run is resumed, a new worker finishes it,
and nothing was sent twice.

Started and resumed with the relabel command in subprocesses, as a user would; Redis must be up
(this test fails, it does not skip, when it is not).
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from relabel.llm.offline_server import start_in_thread
from relabel.models import Batch, BatchRequest, Candidate, Run, RunItem
from tests.factories import make_dataset, make_trajectory
from tests.pipeline.test_worker import database_url, manage, start_worker, stop_worker, wait_until
from tests.services import finish_on_a_worker

FAILED = 6
BATCH_DELAY_MS = 4000  # long enough to stop the worker while the endpoint works on a batch


@pytest.fixture
def batch_services(tmp_path):
    redis_url = os.environ.get("AGENTHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
    redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()  # fails the test if down
    server = start_in_thread(batch_delay_ms=BATCH_DELAY_MS)
    queue = f"agenther-test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test-key",
        "DEBUG": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    yield env, tmp_path, server
    server.shutdown()
    server.server_close()
    redis.Redis.from_url(redis_url).delete(queue)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_batch_run_survives_a_worker_restart_while_its_batch_runs(batch_services):
    env, tmp, server = batch_services
    dataset = make_dataset("batch-worker-run")
    steps = [{"thought": "TEST-SEVERITY=0.1", "action": "search", "observation": "MOQ 10 kg"}]
    for i in range(FAILED):
        make_trajectory(dataset, goal=f"Find copper wire supplier {i}", steps=steps)
    make_trajectory(dataset, success=True, reward=1.0)
    config = tmp / "run.toml"
    config.write_text("batch_poll_seconds = 0.5\nretry_backoff = 0.01\n")
    log = tmp / "worker.log"

    started = manage(env, "relabel", "--dataset", dataset.name, "--backend", "openai",
                     "--config", str(config), "--batch")  # fmt: skip
    run = Run.objects.get(pk=started["run"])
    assert started["status"] == "running" and started["done"] == 0  # enqueued, not run here

    worker = start_worker(env, log)
    try:
        wait_until(
            lambda: Batch.objects.filter(run=run, state=Batch.State.SUBMITTED).exists(),
            60,
            f"the first batch to be sent ({log.read_text()})",
        )
    finally:
        stop_worker(worker)
    first = Batch.objects.get(run=run)
    assert first.state == Batch.State.SUBMITTED and first.size == FAILED
    assert server.behaviour.batch_lines == 0  # the endpoint was still working on it

    resumed = manage(env, "relabel", "--resume", str(run.pk))
    assert resumed["status"] == "running"
    finish_on_a_worker(env, log, run.pk)

    final = manage(env, "relabel", "--resume", str(run.pk))  # nothing left: nothing changes
    assert final["errors"] == 0 and final["done"] == FAILED + 1
    assert Candidate.objects.filter(run=run).count() == FAILED == final["candidates"]
    assert RunItem.objects.filter(run=run, status="success").count() == 1
    # Nothing was sent twice: one request per trajectory and stage, one remote batch per batch.
    requests = BatchRequest.objects.filter(batch__run=run)
    assert requests.count() == FAILED * 3 == server.behaviour.batch_lines
    assert requests.values("item", "stage").distinct().count() == requests.count()
    remote_ids = list(Batch.objects.filter(run=run).values_list("remote_id", flat=True))
    assert len(set(remote_ids)) == len(remote_ids) == len(server.store.batches) == 3
    assert final["llm_calls"] == requests.count()
