"""Shared fixtures: the personas and a logged-in client each.

annotator (alice) and colleague (bob) rate; researcher (rachel) reads the figures; admin (adam)
imports, runs and exports; stranger (eve) has an account and no role, so no access to anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from relabel.roles import grant_role

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("AGENTHER_SHARED_DATA", ROOT.parent / "shared" / "data"))


# What the suite changes in the settings, and why; everything else comes from the environment
# that `make test` gives (see the Makefile).
TEST_SETTINGS = {
    # Real hashing costs ~1 s per user on these machines; tests create many users.
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    # The hashed names need `collectstatic` first; tests/test_production.py runs it for real.
    "STORAGES": {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    },
    # ...and so WhiteNoise has no collected files to index: it looks them up when asked.
    "WHITENOISE_AUTOREFRESH": True,
}


@pytest.fixture(autouse=True, scope="session")
def _test_settings() -> Iterator[None]:
    with override_settings(**TEST_SETTINGS):
        yield


@pytest.fixture(autouse=True)
def work_in_the_request(request, settings) -> None:
    """Without a broker the pages start work on a background thread; a thread has its own
    database connection and cannot see a test's open transaction, so tests keep the work in the
    request, unless marked ``background_threads`` (with a live server and committed data)."""
    if request.node.get_closest_marker("background_threads") is None:
        settings.AGENTHER_BACKGROUND_THREADS = False


def make_user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password="pw-for-tests-123")
    grant_role(user, role)
    return user


@pytest.fixture
def annotator(db) -> User:
    return make_user("alice", "annotator")


@pytest.fixture
def colleague(db) -> User:
    """A second annotator, to prove people never get in each other's way."""
    return make_user("bob", "annotator")


@pytest.fixture
def stranger(db) -> User:
    """Logged in, with no role: every page refuses her."""
    return User.objects.create_user("eve", password="pw-for-tests-123")


@pytest.fixture
def researcher(db) -> User:
    return make_user("rachel", "researcher")


@pytest.fixture
def admin_user(db) -> User:
    return make_user("adam", "admin")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def annotator_client(annotator) -> Client:
    return client_for(annotator)


@pytest.fixture
def stranger_client(stranger) -> Client:
    return client_for(stranger)


@pytest.fixture
def researcher_client(researcher) -> Client:
    return client_for(researcher)


@pytest.fixture
def admin_client_(admin_user) -> Client:
    return client_for(admin_user)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a clean skip where it is absent (it is never committed here)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA
