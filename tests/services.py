"""Helpers for tests that start real processes (a Celery worker, gunicorn) against the test
database and Redis: the tests fail, never skip, when a service is missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).with_name("celery")


def redis_url() -> str:
    return os.environ.get("AGENTHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")


def database_url() -> str:
    """The test database (pytest-django's), as a URL other processes can be given."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    """A real Celery worker, one process, on the queue named in env."""
    return subprocess.Popen(
        [str(CELERY), "-A", "agenther_site", "worker", "-Q", env["CELERY_TASK_DEFAULT_QUEUE"]]
        + ["--concurrency=1", "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def stop_worker(worker: subprocess.Popen) -> None:
    # Warm shutdown: the worker finishes the task in hand and leaves the queue to the next one.
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def finish_on_a_worker(env: dict, log: Path, run_id: int) -> None:
    """Starts a worker and waits until run ``run_id`` is finished, then stops the worker."""
    from relabel.models import Run

    worker = start_worker(env, log)
    try:
        wait_until(
            lambda: Run.objects.get(pk=run_id).status == Run.Status.FINISHED,
            120,
            f"the resumed run to finish ({log.read_text()})",
        )
    finally:
        stop_worker(worker)
