"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_check(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_DEBUG", "SECRET_KEY")
    }
    clean.pop("PYTEST_CURRENT_TEST", None)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_it_requires_a_secret_key_unless_debug():
    result = run_check()
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_it_starts_with_a_secret_key():
    assert run_check(SECRET_KEY="x" * 50).returncode == 0


def test_it_rejects_a_debug_value_that_is_not_a_boolean():
    result = run_check(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_rejects_a_database_url_it_cannot_parse():
    result = run_check(DEBUG="1", DATABASE_URL="nosuchdb://x")
    assert result.returncode != 0
    assert "DATABASE_URL='nosuchdb://x'" in result.stderr


def test_it_rejects_a_non_integer_time_limit():
    result = run_check(DEBUG="1", CELERY_TASK_SOFT_TIME_LIMIT="soon")
    assert result.returncode != 0
    assert "CELERY_TASK_SOFT_TIME_LIMIT='soon' is not an integer" in result.stderr


def test_tasks_run_in_process_without_a_broker(settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER is (not settings.BROKER_CONFIGURED)


def test_an_in_process_task_prints_nothing_on_stderr(tmp_path):
    """Without a broker, enqueueing must not try to reach one (and log about it on stderr,
    which would break the --json output of the commands that enqueue)."""
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    code = (
        "import django; django.setup(); from relabel.tasks import run_job; "
        "run_job.delay('relabel.ImportJob', 12345)"
    )
    env["DJANGO_SETTINGS_MODULE"] = "agenther_site.settings"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_adduser_without_a_password_or_a_terminal_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "adduser", "zoe", "--role", "annotator"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "pass --password when there is no terminal" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_refuses_a_visibility_timeout_shorter_than_the_longest_task():
    result = run_check(DEBUG="1", CELERY_VISIBILITY_TIMEOUT="3600")
    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT=3600 must exceed" in result.stderr


def test_importing_pytest_changes_nothing_in_the_settings():
    """Configuration comes from the environment only: a process that imports pytest (as a
    shell or a script may) still needs its key, and hashes passwords for real."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_DEBUG", "SECRET_KEY")}
    env["DJANGO_SETTINGS_MODULE"] = "agenther_site.settings"
    setup = "import pytest, django; django.setup(); from django.conf import settings; "
    code = setup + "print(settings.PASSWORD_HASHERS[0])"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )

    without_key = run()
    assert without_key.returncode != 0 and "SECRET_KEY is required" in without_key.stderr
    env["SECRET_KEY"] = "x" * 50
    assert run().stdout.strip() == "django.contrib.auth.hashers.PBKDF2PasswordHasher"


def test_it_rejects_declared_endpoints_it_cannot_use(tmp_path):
    bad = {
        "{not json": "AGENTHER_ENDPOINTS is not JSON",
        '{"default": {"base_url": "http://h/v1"}}': "'default' is reserved",
        '{"vllm": {"base_url": "ftp://h"}}': "'vllm' needs a base_url starting with http",
        '{"vllm": {"base_url": "http://h/v1", "api_key": "sk-1"}}': "must be a table of base_url",
    }
    for value, message in bad.items():
        result = run_check(DEBUG="1", AGENTHER_ENDPOINTS=value)
        assert result.returncode != 0 and message in result.stderr, (value, result.stderr)
    file = tmp_path / "endpoints.toml"
    file.write_text('[vllm]\nbase_url = "http://h/v1"\n')
    both = run_check(
        DEBUG="1",
        AGENTHER_ENDPOINTS_FILE=str(file),
        AGENTHER_ENDPOINTS='{"vllm": {"base_url": "http://h/v1"}}',
    )
    assert "endpoint 'vllm' is declared twice" in both.stderr
    missing = run_check(DEBUG="1", AGENTHER_ENDPOINTS_FILE=str(tmp_path / "nope.toml"))
    assert f"AGENTHER_ENDPOINTS_FILE={tmp_path / 'nope.toml'}: cannot be read" in missing.stderr
