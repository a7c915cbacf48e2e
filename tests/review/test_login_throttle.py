"""Logins are throttled (django-axes): a run of wrong passwords locks that account from that
address, the right password is then refused too, and the lockout page says what to do."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client

from tests.conftest import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def attempt(client: Client, password: str, address: str = "10.0.0.1"):
    return client.post("/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_thirty_wrong_passwords_lock_the_login_and_the_right_one_is_then_refused(settings):
    make_user("alice", "annotator")
    client = Client()
    for _ in range(30):
        attempt(client, "wrong")
    response = attempt(client, PASSWORD)
    assert not logged_in(client)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert f"{settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in page
    assert "axes_reset_username alice" in page  # what an admin runs to unlock it at once


def test_the_limit_is_a_few_tries_not_thirty(settings):
    make_user("alice", "annotator")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert attempt(client, "wrong").status_code in (200, 429)
    assert attempt(client, PASSWORD).status_code == 429 and not logged_in(client)


def test_an_admin_unlocks_an_account_with_the_command_the_page_names():
    make_user("alice", "annotator")
    client = Client()
    for _ in range(10):
        attempt(client, "wrong")
    call_command("axes_reset_username", "alice", stdout=io.StringIO())
    attempt(client, PASSWORD)
    assert logged_in(client)


def test_a_lockout_from_one_address_does_not_lock_the_user_out_elsewhere():
    make_user("alice", "annotator")
    for _ in range(10):
        attempt(Client(), "wrong", address="10.6.6.6")
    elsewhere = Client()
    attempt(elsewhere, PASSWORD, address="10.0.0.2")
    assert logged_in(elsewhere)


def test_logging_in_many_times_with_the_right_password_never_locks_anyone():
    make_user("alice", "annotator")
    for i in range(20):
        client = Client()
        if i % 2:
            attempt(client, "typo")  # a typo now and then is forgotten after a success
        attempt(client, PASSWORD)
        assert logged_in(client), i


def test_scripts_that_authenticate_without_a_request_still_work():
    # Client.login and `manage.py shell` call authenticate() without a request: no web login.
    make_user("alice", "annotator")
    assert authenticate(username="alice", password=PASSWORD) is not None
    assert Client().login(username="alice", password=PASSWORD)
