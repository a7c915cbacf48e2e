"""What `make test` sets up first (bin/ensure-services): services it cannot start are named in
one line, and a machine that has everything passes straight through."""

from __future__ import annotations

import subprocess

from tests.services import ROOT, database_url, redis_url

SCRIPT = str(ROOT / "bin" / "ensure-services")


def ensure(*urls: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *urls], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_it_names_a_remote_database_it_cannot_start_in_one_line():
    result = ensure("postgres://postgres@db-host.invalid:5432/agenther", redis_url())
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "[services] PostgreSQL at db-host.invalid:5432 does not answer; "
        "start it there, or set TEST_DATABASE_URL"
    ]


def test_it_passes_through_when_everything_answers():
    result = ensure(database_url(), redis_url())
    assert result.returncode == 0, result.stderr
    assert "[services] PostgreSQL" in result.stdout and "Chromium" in result.stdout
