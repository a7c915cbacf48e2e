"""Fixtures of the review tests."""

from __future__ import annotations

import pytest

from relabel.models import Run
from tests.browser import browser, page  # noqa: F401 (the browser tests' chromium)
from tests.factories import make_run


@pytest.fixture
def run(db) -> Run:
    """A finished run whose queue has no audit sample unless a test asks for one."""
    return make_run(review={"audit_share": 0.0})


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Personas get passwords; hashing them the production way costs seconds per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
