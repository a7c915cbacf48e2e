"""Fixtures for the pipeline's tests: the test LLM server in a thread, and runs made at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relabel.llm.offline_server import LLMTestServer, start_in_thread
from relabel.models import Dataset, Run
from relabel.runs import start_run

# Retries back off in milliseconds here, not seconds.
FAST = {"retry_backoff": 0.001, "concurrency": 1}


@pytest.fixture
def llm_server(settings) -> Iterator[LLMTestServer]:
    server = start_in_thread()
    settings.OPENAI_BASE_URL = server.base_url
    settings.OPENAI_API_KEY = "test-key"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def faulty_server(settings) -> Iterator[Callable[..., LLMTestServer]]:
    """A server with injected faults: ``faulty_server(error_rate=0.3, malformed_rate=0.2)``."""
    servers: list[LLMTestServer] = []

    def make(**behaviour: Any) -> LLMTestServer:
        server = start_in_thread(seed=7, **behaviour)
        servers.append(server)
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test-key"
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def relabel_now(django_capture_on_commit_callbacks) -> Callable[..., Run]:
    """start_run, with the work it enqueues on commit done before it returns (eager Celery)."""

    def run(dataset: Dataset, backend: str = "rules", **config: Any) -> Run:
        if backend == "openai":
            config = {**FAST, **config}
        with django_capture_on_commit_callbacks(execute=True):
            run = start_run(dataset, backend=backend, config=config)
        run.refresh_from_db()
        return run

    return run
