"""Production, end to end: the web server as `make web` starts it (bin/web: check --deploy,
collectstatic, a migrations check, gunicorn with DEBUG off) on the test PostgreSQL database, a
real Celery worker on Redis, and a person using them over real HTTP.

Like the other real-service tests, these fail (never skip) when PostgreSQL or Redis is down.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from relabel.models import Dataset
from tests.services import (
    ROOT,
    database_url,
    free_port,
    redis_url,
    start_worker,
    stop_worker,
    wait_until,
)
from tests.visitor import Page, Visitor

pytestmark = pytest.mark.production

NO_SUCH_RUN = 987654321
PASSWORD = "a-long-password-for-the-smoke-test"
PLAIN_HTTP_NOTE = "AGENTHER_PLAIN_HTTP is set"
# `make web`, with its checks; and gunicorn alone, for servers whose database cannot pass them.
WEB = ["bin/web"]
GUNICORN = [str(Path(sys.executable).with_name("gunicorn")), "--config", "gunicorn.conf.py"]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a production server: no DEBUG, no test settings, its own files."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_DEBUG")}
    for name in ("PYTEST_CURRENT_TEST", "CELERY_BROKER_URL", "AGENTHER_PLAIN_HTTP"):
        env.pop(name, None)
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url(),
        AGENTHER_VAR_DIR=str(tmp_path / "var"),
        ALLOWED_HOSTS="127.0.0.1",
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",  # two processes: what is said at start is said once, not per process
        WEB_THREADS="2",
    )
    env.update(overrides)
    return env


class Server:
    """A web server process and its log; the command is bin/web or gunicorn itself."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log = log
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # gunicorn and its workers: one process group to stop
        )
        wait_until(self.answers, 90, f"the server at {self.url} ({self.log_text()})")

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited {self.process.returncode}: {self.log_text()}")
        try:
            return Visitor(self.url).get("/healthz").status in (200, 503)
        except urllib.error.URLError:
            return False  # not listening yet

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def log_lines(self, logger: str) -> list[dict]:
        """The structured lines of one logger."""
        lines = [line for line in self.log_text().splitlines() if line.startswith("{")]
        return [entry for entry in map(json.loads, lines) if entry.get("logger") == logger]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def serve(tmp_path) -> Iterator:
    """Starts servers for a test and stops them after it."""
    servers: list[Server] = []

    def start(env: dict[str, str], command: list[str] = WEB) -> Server:
        servers.append(Server(command, env, tmp_path / f"server-{len(servers)}.log"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def queue() -> Iterator[str]:
    """A Celery queue of the test's own on the test Redis (which must answer)."""
    redis.Redis.from_url(redis_url(), socket_connect_timeout=3).ping()
    name = f"agenther-test-{uuid.uuid4().hex[:10]}"
    yield name
    # The queue, and the bindings kombu keeps for it.
    redis.Redis.from_url(redis_url()).delete(
        name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}"
    )


# -- the smoke test --------------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_team_uses_the_production_server_and_a_worker_finishes_their_run(tmp_path, serve, queue):
    env = production_env(
        tmp_path,
        AGENTHER_PLAIN_HTTP="1",  # no TLS proxy in front of this test
        CELERY_BROKER_URL=redis_url(),
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    manage(env, "adduser", "adam", "--role", "admin", "--password", PASSWORD)
    manage(env, "import_trajectories", str(ROOT / "relabel/sample/agenther.jsonl"),
           "--dataset", "smoke", "--json")  # fmt: skip
    worker_log = tmp_path / "worker.log"
    worker = start_worker(env, worker_log)
    try:
        server = serve(env)
        visitor = Visitor(server.url)
        assert health(visitor) == (200, {"status": "ok", "database": "ok", "broker": "ok"})

        review = log_in(visitor, "adam", then="/review/")
        assert review.status == 200 and review.url.endswith("/review/")
        assert_hashed_static_files_are_served(visitor, review)

        run_page = start_a_run(visitor, dataset="smoke", backend="rules")
        run_id = int(re.search(r"/runs/(\d+)/$", run_page.url).group(1))
        wait_until(
            lambda: "pill-finished" in visitor.get(f"/runs/{run_id}/").text,
            120,
            f"run {run_id} to finish on the worker ({worker_log.read_text()})",
        )
        failing = send_a_task_that_fails(queue)
        wait_until(lambda: failing in worker_log.read_text(), 60, "the failing task's log line")
    finally:
        stop_worker(worker)

    assert_the_logs_tell_what_happened(server, worker_log, run_id)
    assert_a_failed_task_is_logged_with_its_error(worker_log, failing)


def health(visitor: Visitor) -> tuple[int, dict]:
    page = visitor.get("/healthz")
    return page.status, json.loads(page.body)


def log_in(visitor: Visitor, username: str, then: str) -> Page:
    login = visitor.get(f"/login/?next={then}")
    assert login.status == 200, login.text
    form = login.form("/login/")
    assert form.fields["csrfmiddlewaretoken"]  # the real form, CSRF token and all
    form.fields.update(username=username, password=PASSWORD)
    return visitor.submit(login, form)


def assert_hashed_static_files_are_served(visitor: Visitor, page: Page) -> None:
    script = re.search(r'<script src="(/static/js/app\.([0-9a-f]{12})\.js)"', page.text)
    assert script, "app.js is not linked under a hashed name"
    served = visitor.get(script.group(1), **{"Accept-Encoding": "gzip"})
    assert served.status == 200
    assert served.headers["Content-Encoding"] == "gzip"  # compressed by collectstatic
    assert "immutable" in served.headers["Cache-Control"]
    plain = visitor.get(script.group(1))
    assert plain.body == (ROOT / "static/js/app.js").read_bytes()
    stylesheet = re.search(r'<link rel="stylesheet" href="(/static/css/app\.[0-9a-f]{12}\.css)"',
                           page.text)  # fmt: skip
    assert stylesheet and visitor.get(stylesheet.group(1)).status == 200


def start_a_run(visitor: Visitor, dataset: str, backend: str) -> Page:
    """Fills in the home page's start-run form as an admin would, and sends it."""
    home = visitor.get("/")
    form = home.form("/runs/start/")
    form.fields["run-dataset"] = form.options["run-dataset"][dataset]  # the form's prefix: run-
    form.fields["run-backend"] = backend
    page = visitor.submit(home, form)
    assert page.status == 200 and re.search(r"/runs/\d+/$", page.url), page.text
    assert f"on {dataset}" in page.text
    return page


def send_a_task_that_fails(queue: str) -> str:
    """process_items for a run that does not exist, sent to the worker as the web server would."""
    sender = Celery("smoke-test", broker=redis_url())
    args = [NO_SUCH_RUN, [1, 2]]
    return sender.send_task("relabel.tasks.pipeline.process_items", args=args, queue=queue).id


def task_lines(worker_log: Path) -> list[dict]:
    lines = [line for line in worker_log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("logger") == "agenther.tasks"]


def assert_the_logs_tell_what_happened(server: Server, worker_log: Path, run_id: int) -> None:
    requests = server.log_lines("agenther.requests")
    started = [r for r in requests if r["method"] == "POST" and r["path"] == "/runs/start/"]
    assert len(started) == 1 and started[0]["status"] == 302 and started[0]["user"]
    assert any(r["path"] == f"/runs/{run_id}/" and r["run"] == run_id for r in requests)
    assert server.log_text().count(PLAIN_HTTP_NOTE) == 1  # said once, at start

    items = Dataset.objects.get(name="smoke").trajectories.count()
    ours = [t for t in task_lines(worker_log) if t["run"] == run_id]
    assert ours and {t["task"] for t in ours} == {"relabel.tasks.pipeline.process_items"}
    assert {t["state"] for t in ours} == {"SUCCESS"}
    assert sum(len(t["items"]) for t in ours) == items


def assert_a_failed_task_is_logged_with_its_error(worker_log: Path, task_id: str) -> None:
    (line,) = [t for t in task_lines(worker_log) if t["task_id"] == task_id]
    assert line["state"] == "FAILURE" and line["run"] == NO_SUCH_RUN and line["items"] == [1, 2]
    assert line["error"].startswith("DoesNotExist")


# -- /healthz --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("down", "expected"),
    [
        ("broker", {"status": "unavailable", "database": "ok", "broker": "unavailable"}),
        ("database", {"status": "unavailable", "database": "unavailable", "broker": "ok"}),
    ],
)
def test_healthz_answers_503_naming_what_does_not_answer(tmp_path, serve, down, expected):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = production_env(tmp_path, AGENTHER_PLAIN_HTTP="1", CELERY_BROKER_URL=redis_url())
    if down == "broker":
        env["CELERY_BROKER_URL"] = f"redis://{dead}/0"
    else:
        env["DATABASE_URL"] = f"postgres://postgres@{dead}/agenther"
    server = serve(env, command=GUNICORN)
    assert health(Visitor(server.url)) == (503, expected)
    assert f"the {down} does not answer" in server.log_text()  # the reason: in the log only


@pytest.mark.django_db(transaction=True)
def test_healthz_without_a_broker_says_tasks_run_in_process_and_is_healthy(tmp_path, serve):
    server = serve(production_env(tmp_path, AGENTHER_PLAIN_HTTP="1"), command=GUNICORN)
    expected = {"status": "ok", "database": "ok", "broker": "in-process"}
    assert health(Visitor(server.url)) == (200, expected)
    assert server.log_text().count("CELERY_BROKER_URL is not set") == 1


# -- HTTPS by default ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_production_server_is_https_only_behind_its_proxy(tmp_path, serve):
    server = serve(production_env(tmp_path, CELERY_BROKER_URL=redis_url()))
    visitor = Visitor(server.url)
    redirect = Visitor(server.url, follow_redirects=False).get("/login/")
    assert redirect.status == 301 and redirect.headers["Location"].startswith("https://")

    proxied = visitor.get("/login/", **{"X-Forwarded-Proto": "https"})
    assert proxied.status == 200
    assert "max-age=" in proxied.headers["Strict-Transport-Security"]
    assert "Secure" in proxied.headers["Set-Cookie"]  # the CSRF cookie
    # Load balancers probe the server directly over HTTP: the health check is not redirected.
    assert health(visitor)[0] == 200
    assert PLAIN_HTTP_NOTE not in server.log_text()


def test_check_deploy_is_clean_under_production_settings_and_on_plain_http(tmp_path):
    env = production_env(tmp_path)
    for plain_http in ("0", "1"):
        env["AGENTHER_PLAIN_HTTP"] = plain_http
        out = manage(env, "check", "--deploy", "--fail-level", "WARNING")
        assert "no issues" in out
