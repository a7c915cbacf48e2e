"""Runs through the Batch API, against the test server's files and batches endpoints, without a
broker (the checks run in this process). The same with a real worker and a restart midway is in
test_worker.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from relabel.llm import batch_api
from relabel.llm.client import Endpoint
from relabel.llm.pricing import cost_usd, price_table
from relabel.models import Batch, BatchRequest, Candidate, LLMCacheEntry, LLMCall, Run, RunItem
from relabel.pipeline import batch_run
from relabel.runs import resume_run, start_run
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

BATCH = {"batch": True, "batch_poll_seconds": 0.01, "retry_backoff": 0.001}


@pytest.fixture
def batch_server(settings) -> Iterator[Any]:
    from relabel.llm.offline_server import start_in_thread

    server = start_in_thread(batch_delay_ms=30)
    settings.OPENAI_BASE_URL = server.base_url
    settings.OPENAI_API_KEY = "test-key"
    yield server
    server.shutdown()
    server.server_close()


def steps(thought: str = "TEST-SEVERITY=0.1") -> list[dict[str, Any]]:
    return [
        {
            "thought": thought,
            "action": "search",
            "action_input": {"query": "copper wire supplier"},
            "observation": "MicroMetals: $5.30/kg, MOQ 10 kg. WireCo: $6.10/kg, MOQ 500 kg.",
        },
        {"thought": "Compare", "action": "compare", "observation": "Lowest MOQ: MicroMetals."},
    ]


def dataset_of(failed: int, won: int = 1, **fields: Any):
    dataset = make_dataset()
    for i in range(failed):
        make_trajectory(dataset, goal=f"Find copper wire supplier {i}", steps=steps(), **fields)
    for _ in range(won):
        make_trajectory(dataset, success=True, reward=1.0)
    return dataset


def outcome(run: Run) -> dict[int, tuple]:
    rows = RunItem.objects.filter(run=run).select_related("candidate")
    return {
        i.trajectory_id: (
            i.status,
            i.failure_type,
            getattr(getattr(i, "candidate", None), "hindsight_goal", None),
            getattr(getattr(i, "candidate", None), "gate", None),
        )
        for i in rows
    }


def test_a_batch_run_without_a_broker_goes_through_the_batch_api_to_the_end(
    batch_server, relabel_now
):
    judges = [{"name": "a", "model": "gpt-4o-mini"}, {"name": "b", "model": "gpt-4o-mini"}]
    run = relabel_now(dataset_of(4), "openai", judges=judges, **BATCH)
    assert run.status == Run.Status.FINISHED
    items = RunItem.objects.filter(run=run)
    assert not items.filter(status__in=["pending", "error"]).exists()
    assert Candidate.objects.filter(run=run).count() == 4
    assert batch_server.behaviour.requests == 0  # not one synchronous chat call
    requests = BatchRequest.objects.filter(batch__run=run)
    assert batch_server.behaviour.batch_lines == requests.count() == 4 * 4  # 4 stages each
    assert set(run.batches.values_list("state", flat=True)) == {Batch.State.DONE}
    # One batch per round: detection, relabeling, and both judges together.
    assert run.batches.count() == 3
    for request in requests.select_related("call"):
        assert request.answered and request.error == "" and request.call.cost_usd > 0
    table = price_table(run.config)
    for call in LLMCall.objects.filter(run=run):
        args = (call.prompt_tokens, call.completion_tokens, call.cached_tokens)
        assert call.cost_usd == cost_usd(table, call.model, *args, batch=True)


def test_a_batch_run_ends_exactly_where_a_synchronous_run_does(batch_server, relabel_now):
    dataset = dataset_of(5)
    synchronous = relabel_now(dataset, "openai", retry_backoff=0.001)
    LLMCacheEntry.objects.all().delete()  # ask again, through the Batch API this time
    batched = relabel_now(dataset, "openai", **BATCH)
    assert outcome(batched) == outcome(synchronous)
    sync_cost = sum(c.cost_usd for c in LLMCall.objects.filter(run=synchronous))
    batch_cost = sum(c.cost_usd for c in LLMCall.objects.filter(run=batched))
    assert abs(batch_cost - sync_cost / 2) < 0.0000001 * LLMCall.objects.count()


@pytest.mark.django_db(transaction=True)  # the command commits, then the checks run on commit
def test_the_command_runs_a_dataset_through_the_batch_api(batch_server, tmp_path):
    dataset = dataset_of(2)
    config = tmp_path / "run.toml"
    config.write_text("batch_poll_seconds = 0.01\nretry_backoff = 0.001\n")
    out = io.StringIO()
    call_command(
        "relabel", "--dataset", dataset.name, "--backend", "openai", "--config", str(config),
        "--batch", "--json", stdout=out,
    )  # fmt: skip
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["candidates"] == 2
    run = Run.objects.get(pk=summary["run"])
    assert run.config["batch"] is True and run.batches.count() == 3
    assert summary["llm_calls"] == batch_server.behaviour.batch_lines == 2 * 3


def test_an_error_in_the_results_file_fails_only_its_trajectory_and_a_resume_asks_again(
    batch_server, relabel_now, django_capture_on_commit_callbacks
):
    dataset = dataset_of(3)
    broken = make_trajectory(dataset, goal="Find wire", steps=steps("TEST-BATCH-ERROR"))
    run = relabel_now(dataset, "openai", **BATCH)
    item = RunItem.objects.get(run=run, trajectory=broken)
    assert item.status == RunItem.Status.ERROR
    assert "HTTP 500" in item.error and "injected fault" in item.error
    others = RunItem.objects.filter(run=run).exclude(pk=item.pk)
    assert not others.filter(status__in=["pending", "error"]).exists()
    assert run.status == Run.Status.FINISHED
    failed = LLMCall.objects.get(run=run, trajectory=broken)
    assert failed.error.startswith("HTTP 500") and failed.cost_usd == 0

    broken.steps.filter(index=0).update(thought="TEST-SEVERITY=0.1")  # the fault is gone
    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run)
    item.refresh_from_db()
    assert item.status == RunItem.Status.CANDIDATE
    assert Run.objects.get(pk=run.pk).status == Run.Status.FINISHED


def started_but_unchecked(dataset, django_capture_on_commit_callbacks) -> Run:
    """A batch run whose chain of checks was never started (as if its worker died at once)."""
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run(dataset, backend="openai", config=BATCH)
    run.refresh_from_db()
    return run


def test_a_resumed_batch_run_reads_the_batch_it_had_sent_and_sends_nothing_twice(
    batch_server, django_capture_on_commit_callbacks
):
    run = started_but_unchecked(dataset_of(3), django_capture_on_commit_callbacks)
    assert batch_run.advance(run.pk, run.batch_ticket) == 0.01  # sent the first batch
    first = run.batches.get()
    assert first.state == Batch.State.SUBMITTED and first.remote_id
    assert batch_server.behaviour.batch_lines == 0  # still in progress at the endpoint
    old_ticket = run.batch_ticket

    with django_capture_on_commit_callbacks(execute=True):
        resume_run(run)  # a new chain of checks, which runs to the end here
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED and run.batch_ticket != old_ticket
    assert batch_run.advance(run.pk, old_ticket) is None  # the old chain stops
    first.refresh_from_db()
    assert first.state == Batch.State.DONE
    assert run.batches.filter(remote_id=first.remote_id).count() == 1
    requests = BatchRequest.objects.filter(batch__run=run)
    assert batch_server.behaviour.batch_lines == requests.count()
    assert requests.values("item", "cache_key").distinct().count() == requests.count()
    assert Candidate.objects.filter(run=run).count() == 3


def unsent_batch(run: Run) -> Batch:
    """What a check that died after recording its batch, before sending it, leaves behind."""
    batch_run.advance(run.pk, run.batch_ticket)
    batch = run.batches.get()
    past = timezone.now() - timedelta(seconds=1)
    Batch.objects.filter(pk=batch.pk).update(
        state=Batch.State.PREPARING, remote_id="", lease_until=past
    )
    return batch


def test_a_batch_recorded_but_never_sent_is_dropped_and_its_trajectories_ask_again(
    batch_server, django_capture_on_commit_callbacks
):
    run = started_but_unchecked(dataset_of(2), django_capture_on_commit_callbacks)
    endpoint = Endpoint.from_config(run.config["stages"]["detect"])
    batch = unsent_batch(run)
    batch_server.store.batches.clear()  # the endpoint never got it
    assert batch_api.find(endpoint, 5, batch.pk) is None
    batch_run.drive(run.pk, run.batch_ticket)
    assert not Batch.objects.filter(pk=batch.pk).exists()
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED
    assert Candidate.objects.filter(run=run).count() == 2


def test_a_batch_the_endpoint_got_before_its_check_died_is_adopted_not_sent_again(
    batch_server, django_capture_on_commit_callbacks
):
    run = started_but_unchecked(dataset_of(2), django_capture_on_commit_callbacks)
    batch = unsent_batch(run)
    remote_batches = len(batch_server.store.batches)
    batch_run.drive(run.pk, run.batch_ticket)
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE and batch.remote_id
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED
    detect_batches = [
        b
        for b in batch_server.store.batches.values()
        if b["metadata"]["agenther_batch"] == str(batch.pk)
    ]
    assert len(detect_batches) == 1 and remote_batches == 1


def test_results_read_twice_are_stored_once(batch_server, django_capture_on_commit_callbacks):
    run = started_but_unchecked(dataset_of(2), django_capture_on_commit_callbacks)
    batch_run.advance(run.pk, run.batch_ticket)
    batch = run.batches.get()
    endpoint = Endpoint.from_config(batch.endpoint)
    remote = batch_api.retrieve(endpoint, 5, batch.remote_id)
    while remote.status != "completed":
        remote = batch_api.retrieve(endpoint, 5, batch.remote_id)
    found = batch_api.results(endpoint, 5, remote)
    client = batch_run.BatchingClient(run.config)
    stale = Batch.objects.get(pk=batch.pk)  # two checks read the same batch
    batch_run.store_results(batch, remote, found, client)
    batch_run.store_results(stale, remote, found, client)
    assert LLMCall.objects.filter(run=run).count() == batch.size == 2


def test_the_batch_api_needs_the_openai_backend():
    from relabel.config import ConfigError
    from relabel.runs import prepare_config

    with pytest.raises(ConfigError, match="batch: the Batch API is the openai backend's"):
        prepare_config("rules", {"batch": True})


def test_an_admin_starts_a_batch_run_from_the_form(
    batch_server, admin_client_, django_capture_on_commit_callbacks
):
    dataset = dataset_of(2)
    home = admin_client_.get(reverse("home")).content.decode()
    assert 'type="checkbox" name="run-batch"' in home
    data = {
        "dataset": dataset.pk,
        "backend": "openai",
        "accept_threshold": 0.5,
        "reject_threshold": 0.2,
        "raters_per_candidate": 1,
        "second_rater_share": 0,
        "audit_share": 0.1,
        "batch": "on",
        "extra": json.dumps({"batch_poll_seconds": 0.01}),
    }
    data = {f"run-{key}": value for key, value in data.items()}  # the form's prefix
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(reverse("run_start"), data)
    run = Run.objects.get()
    assert response.status_code == 302 and run.config["batch"] is True
    assert run.batches.exists() and Run.objects.get().status == Run.Status.FINISHED


def test_a_batch_run_with_the_rules_backend_is_refused_with_its_reason(admin_client_):
    dataset = dataset_of(1)
    data = {
        "dataset": dataset.pk, "backend": "rules", "accept_threshold": 0.5,
        "reject_threshold": 0.2, "raters_per_candidate": 1, "second_rater_share": 0,
        "audit_share": 0.1, "batch": "on", "extra": "",
    }  # fmt: skip
    data = {f"run-{key}": value for key, value in data.items()}
    response = admin_client_.post(reverse("run_start"), data, follow=True)
    assert "the Batch API is the openai backend&#x27;s" in response.content.decode()
    assert not Run.objects.exists()
