"""What calls cost: the endpoint's prefix cache (reported by the test server as OpenAI documents
it, recorded and priced at the cached rate), the Batch API's rate, the price table."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from relabel.config import ConfigError, load_config
from relabel.llm import prompts
from relabel.llm.client import CallLog, Endpoint, LLMClient
from relabel.llm.pricing import cost_usd, price_table
from tests.factories import make_trajectory

pytestmark = pytest.mark.django_db

CLIENT = {
    "request_timeout": 5,
    "max_retries": 0,
    "retry_backoff": 0,
    "malformed_retries": 0,
    "max_completion_tokens": 100,
}


def ask(server, content: str, model: str = "gpt-4o-mini", **extra):
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    messages = [{"role": "system", "content": "Stage: judge"}, {"role": "user", "content": content}]
    return client.chat.completions.create(model=model, messages=messages, **extra).usage


def cached(usage) -> int:
    return usage.prompt_tokens_details.cached_tokens


def test_the_test_server_reports_a_repeated_prefix_as_cached_tokens_as_openai_does(llm_server):
    long = "word " * 2000  # about 2,500 tokens at the server's 4 characters a token
    first = ask(llm_server, long + "first task")
    assert cached(first) == 0  # nothing seen before
    again = ask(llm_server, long + "another task")
    assert again.prompt_tokens > 2000
    assert cached(again) >= 1024 and (cached(again) - 1024) % 128 == 0  # 1,024 + 128k
    assert again.prompt_tokens - cached(again) < 128 + 10  # all but the differing tail
    assert cached(ask(llm_server, long + "x", model="Qwen2.5-72B-Instruct")) == 0  # per model
    short = "word " * 600  # under 1,024 tokens: never cached
    ask(llm_server, short)
    assert cached(ask(llm_server, short)) == 0


def test_a_different_response_schema_is_a_different_prefix(llm_server):
    long = "word " * 2000
    schema = {"type": "json_schema", "json_schema": {"name": "s1", "schema": {"type": "object"}}}
    other = {"type": "json_schema", "json_schema": {"name": "s2", "schema": {"type": "object"}}}
    ask(llm_server, long, response_format=schema)
    assert cached(ask(llm_server, long, response_format=schema)) >= 1024
    assert cached(ask(llm_server, long, response_format=other)) == 0


def test_cached_tokens_are_recorded_and_priced_at_the_cached_rate(llm_server):
    trajectory = make_trajectory(steps=[{"action": "read", "observation": "line\n" * 3000}])
    steps = list(trajectory.ordered_steps())
    client = LLMClient({**CLIENT, "prices": {}})
    endpoint = Endpoint("gpt-4o-mini", llm_server.base_url)
    log = CallLog(None, trajectory.pk)
    memo: dict = {}
    # Two goals judged on one run: the run's rendering is the prompts' shared prefix.
    for goal in ("Read the file", "Read the file and count its lines"):
        prompt = prompts.judge_prompt(trajectory, steps, goal, 6000, memo)
        client.complete_json(endpoint, prompt, temperature=0.0, log=log, stage="judge:a")
    first, second = log.calls
    assert first.cached_tokens == 0 and second.cached_tokens >= 1024
    assert second.cached_tokens < second.prompt_tokens  # the goal after the shared run differs
    table = price_table()
    assert second.cost_usd == cost_usd(
        table, "gpt-4o-mini", second.prompt_tokens, second.completion_tokens, second.cached_tokens
    )
    assert second.cost_usd < first.cost_usd


def test_the_price_table_has_cached_and_batch_rates():
    table = price_table()
    full = cost_usd(table, "gpt-4o-mini", 1_000_000, 0)
    assert full == Decimal("0.15")
    assert cost_usd(table, "gpt-4o-mini", 1_000_000, 0, 1_000_000) == Decimal("0.075")
    assert cost_usd(table, "gpt-4o-mini", 1_000_000, 1_000_000, batch=True) == Decimal("0.375")
    custom = price_table({"prices": {"m": {"prompt": 2.0, "completion": 4.0, "batch": 0.25}}})
    assert cost_usd(custom, "m", 1_000_000, 0, 500_000) == Decimal("2")  # no cached rate
    assert cost_usd(custom, "m", 1_000_000, 0, batch=True) == Decimal("0.5")


def test_a_price_row_with_an_unknown_key_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"prices\.m\.cache "):
        load_config(overrides={"prices": {"m": {"prompt": 1, "completion": 1, "cache": 1}}})
    config = load_config(overrides={"prices": {"m": {"prompt": 1, "completion": 2, "cached": 0.5}}})
    assert config["prices"]["m"]["cached"] == 0.5


def test_the_test_servers_salt_draws_other_answers_and_the_same_salt_the_same():
    from relabel.llm.offline_server import answer_content

    bodies = [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"run {i}\nTask (judge, AgentHER prompts"}],
        }
        for i in range(20)
    ]

    def answers(salt: str) -> list[str]:
        return [answer_content(body, salt) for body in bodies]

    assert answers("") == answers("")
    assert answers("salt-1") == answers("salt-1")
    assert answers("salt-1") != answers("")  # 20 judge verdicts, each drawn anew
