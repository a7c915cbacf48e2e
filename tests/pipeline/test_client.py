"""The LLM client over real HTTP: retries, malformed output, the cache, accounting, limits."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from django.db.models import Sum

from relabel.llm import prompts
from relabel.llm.client import CallLog, Endpoint, LLMClient, MalformedOutput
from relabel.models import Candidate, LLMCacheEntry, LLMCall, RunItem
from relabel.pipeline.summary import run_summary
from relabel.runs import start_run
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db


def failures(n: int, **fields):
    dataset = make_dataset()
    for i in range(n):
        make_trajectory(dataset, goal=f"Find supplier number {i} of copper wire", **fields)
    return dataset


def test_it_retries_429_and_500_with_backoff_and_records_every_attempt(faulty_server, relabel_now):
    faulty_server(error_rate=0.4)
    run = relabel_now(failures(4), "openai", max_retries=10)
    summary = run_summary(run)
    assert summary["errors"] == 0
    assert summary["candidates"] + summary["discarded"] == 4
    failed = LLMCall.objects.filter(run=run).exclude(error="")
    assert failed.filter(error__startswith="RateLimitError").exists()
    assert failed.filter(error__startswith="InternalServerError").exists()
    # A failed attempt is billed nothing.
    assert failed.aggregate(t=Sum("prompt_tokens"))["t"] == 0


def test_an_endpoint_that_keeps_failing_marks_the_trajectory_as_an_error_visibly(
    faulty_server, relabel_now
):
    faulty_server(error_rate=1.0)
    run = relabel_now(failures(2), "openai", max_retries=2)
    items = RunItem.objects.filter(run=run)
    assert {i.status for i in items} == {RunItem.Status.ERROR}
    for item in items:
        assert "failed after 3 attempt(s)" in item.error
        assert item.lease_until is None  # free to be retried
    assert LLMCall.objects.filter(run=run).count() == 2 * 3
    assert run_summary(run)["status"] == "finished"


def test_timeouts_are_retried_then_recorded_as_the_trajectorys_error(faulty_server, relabel_now):
    faulty_server(latency_ms=400)
    run = relabel_now(failures(1), "openai", request_timeout=0.1, max_retries=1)
    item = RunItem.objects.get(run=run)
    assert item.status == RunItem.Status.ERROR
    assert "APITimeoutError" in item.error and "after 2 attempt(s)" in item.error
    calls = LLMCall.objects.filter(run=run)
    assert calls.count() == 2 and all(c.error.startswith("APITimeoutError") for c in calls)


def test_malformed_output_is_asked_again_and_then_accepted(faulty_server, relabel_now):
    faulty_server(malformed_rate=0.3)
    run = relabel_now(failures(4), "openai", malformed_retries=4)
    assert run_summary(run)["errors"] == 0
    malformed = LLMCall.objects.filter(run=run, error__startswith="malformed")
    assert malformed.exists()
    # Malformed replies were billed (the endpoint did answer) and never cached.
    assert all(c.prompt_tokens > 0 for c in malformed)
    for entry in LLMCacheEntry.objects.all():
        json.loads(entry.response["content"])


def test_a_trajectory_that_always_gets_malformed_output_errors_and_the_run_goes_on(
    llm_server, relabel_now, caplog
):
    dataset = failures(2)
    broken = make_trajectory(dataset, goal="TEST-MALFORMED find the suppliers")
    with caplog.at_level(logging.WARNING, logger="agenther"):
        run = relabel_now(dataset, "openai", malformed_retries=1)
    # Recorded on the item, not shouted on stderr (where it would break `relabel --json`).
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    item = RunItem.objects.get(run=run, trajectory=broken)
    assert item.status == RunItem.Status.ERROR
    assert "MalformedOutput" in item.error and "detect" in item.error
    others = RunItem.objects.filter(run=run).exclude(pk=item.pk)
    assert not others.filter(status=RunItem.Status.ERROR).exists()
    assert run_summary(run)["errors"] == 1


def test_a_repeated_run_is_served_from_the_cache_and_pays_nothing(llm_server, relabel_now):
    dataset = failures(3)
    first = run_summary(relabel_now(dataset, "openai"))
    assert first["llm_calls"] > 0 and first["cached_calls"] == 0
    assert first["prompt_tokens"] > 0 and first["cost_usd"] > 0
    requests = llm_server.behaviour.requests
    second = run_summary(relabel_now(dataset, "openai"))
    assert second["cached_calls"] == second["llm_calls"] == first["llm_calls"]
    assert second["prompt_tokens"] == second["completion_tokens"] == 0
    assert second["cost_usd"] == 0
    assert llm_server.behaviour.requests == requests  # nothing reached the endpoint
    assert second["candidates"] == first["candidates"]


def test_it_stores_the_endpoints_usage_our_estimate_and_the_cost_from_the_price_table(
    llm_server, relabel_now
):
    prices = {"gpt-4o-mini": {"prompt": 1000.0, "completion": 2000.0}}
    run = relabel_now(failures(1), "openai", prices=prices)
    call = LLMCall.objects.filter(run=run, stage="detect").get()
    assert call.prompt_tokens > 0 and call.estimated_prompt_tokens > 0
    assert call.prompt_tokens != call.estimated_prompt_tokens  # two tokenizers, both kept
    expected = (Decimal(call.prompt_tokens) * 1000 + Decimal(call.completion_tokens) * 2000) / (
        10**6
    )
    assert call.cost_usd == expected.quantize(Decimal("0.00000001"))
    assert call.latency_ms >= 0 and call.model == "gpt-4o-mini"
    assert call.endpoint == llm_server.base_url
    assert run.config["prices"] == prices


def test_it_falls_back_to_plain_json_mode_when_the_endpoint_has_no_schema_mode(llm_server):
    import relabel.llm.client as client_module

    calls = []
    original = client_module.openai_client

    class RefusesSchemas:
        def __init__(self, real):
            self.real = real

        def post(self, path, *, cast_to, body):
            calls.append(body["response_format"]["type"])
            if body["response_format"]["type"] == "json_schema":
                import httpx2
                import openai

                request = httpx2.Request("POST", llm_server.base_url + path)
                response = httpx2.Response(400, request=request)
                raise openai.BadRequestError(
                    "response_format json_schema is not supported", response=response, body=None
                )
            return self.real.post(path, cast_to=cast_to, body=body)

    client_module.openai_client = lambda endpoint, timeout: RefusesSchemas(
        original(endpoint, timeout)
    )
    try:
        trajectory = make_trajectory()
        rows = list(trajectory.ordered_steps())
        endpoint = Endpoint(model="test-model", base_url=llm_server.base_url + "/schema-less")
        client = LLMClient(
            {
                "request_timeout": 5,
                "max_retries": 0,
                "retry_backoff": 0,
                "malformed_retries": 0,
                "max_completion_tokens": 100,
            }
        )
        reply = client.complete_json(
            endpoint,
            prompts.detect_prompt(trajectory, rows, 2000),
            temperature=0,
            log=CallLog(None, trajectory.pk),
        )
    finally:
        client_module.openai_client = original
    assert calls == ["json_schema", "json_object"]
    assert reply["failure_type"]


def test_it_raises_malformed_output_after_the_configured_retries(llm_server):
    trajectory = make_trajectory(goal="TEST-MALFORMED anything")
    rows = list(trajectory.ordered_steps())
    log = CallLog(None, trajectory.pk)
    client = LLMClient(
        {
            "request_timeout": 5,
            "max_retries": 0,
            "retry_backoff": 0,
            "malformed_retries": 2,
            "max_completion_tokens": 100,
        }
    )
    endpoint = Endpoint(model="gpt-4o-mini", base_url=llm_server.base_url)
    with pytest.raises(MalformedOutput, match="not valid JSON"):
        client.complete_json(
            endpoint, prompts.detect_prompt(trajectory, rows, 2000), temperature=0, log=log
        )
    assert len(log.calls) == 3
    assert all(c.error.startswith("malformed") for c in log.calls)


@pytest.mark.django_db(transaction=True)
def test_a_run_keeps_at_most_the_endpoints_limit_of_calls_in_flight(faulty_server):
    server = faulty_server(latency_ms=60)
    dataset = failures(16)
    run = start_run(dataset, backend="openai", config={"concurrency": 4, "retry_backoff": 0.001})
    summary = run_summary(run)
    assert summary["status"] == "finished" and summary["errors"] == 0
    assert server.behaviour.max_in_flight == 4  # concurrent, and never over the limit
    assert Candidate.objects.filter(run=run).count() == summary["candidates"] > 0


# The test server's thread lives in this process; the forked children never touch it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
@pytest.mark.django_db(transaction=True)
def test_a_large_run_without_a_broker_is_split_over_processes_sharing_the_limit(faulty_server):
    server = faulty_server(latency_ms=30)
    dataset = failures(12)
    config = {"concurrency": 4, "processes": 2, "retry_backoff": 0.001}
    run = start_run(dataset, backend="openai", config=config)
    summary = run_summary(run)
    assert summary["status"] == "finished" and summary["errors"] == 0 and summary["done"] == 12
    assert 2 < server.behaviour.max_in_flight <= 4  # both processes at once, 2 slots each
    assert (
        Candidate.objects.filter(run=run).values("trajectory").distinct().count()
        == (summary["candidates"])
    )
    # Every trajectory was detected exactly once, whichever process took it.
    assert LLMCall.objects.filter(run=run, stage="detect").count() == 12
