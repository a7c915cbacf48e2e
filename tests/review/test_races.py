"""Racing requests on PostgreSQL: every request gets one clear answer, never a server error."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from review.models import DecisionError, ReviewTask, Verdict, VerdictQuerySet
from tests.conftest import make_user
from tests.factories import make_run
from tests.review.helpers import queued, record_decision

HX = {"HTTP_HX_REQUEST": "true"}


def race(requests: list[Callable[[], object]]) -> list[object]:
    """Runs the requests at the same moment, each in its own thread and connection."""
    barrier = threading.Barrier(len(requests))
    answers: list[object] = [None] * len(requests)

    def go(i: int) -> None:
        try:
            barrier.wait()
            answers[i] = requests[i]()
        except BaseException as exc:  # reported by the caller
            answers[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(6))
def test_two_undos_at_once_undo_once_and_the_other_says_so(attempt):
    if connection.vendor != "postgresql":
        pytest.fail("the race tests need PostgreSQL (set DATABASE_URL)")
    run = make_run(review={"audit_share": 0})
    queued(run, 0.3)
    rater = make_user(f"racer{attempt}", "annotator")
    record_decision(ReviewTask.objects.claim_next(rater).pk, rater, "accept")
    clients = [Client(raise_request_exception=False) for _ in range(2)]
    for client in clients:
        client.force_login(rater)

    answers = race([lambda c=c: c.post(reverse("undo"), **HX) for c in clients])

    assert [a.status_code for a in answers] == [200, 200], answers
    said = [("already undone" in p) or ("Nothing to undo" in p) for p in pages_of(answers)]
    assert sorted(said) == [False, True]  # one undid, the other says why it did not
    assert Verdict.objects.filter(decision="undo").count() == 1


def pages_of(answers: list) -> list[str]:
    return [a.content.decode() for a in answers]


@pytest.mark.django_db
def test_an_undo_that_lost_the_race_says_already_undone(annotator, monkeypatch):
    """The losing undo read the verdict before the winner committed (a stale read, made
    certain here): once it holds the lock it finds the undo and answers so."""
    run = make_run(review={"audit_share": 0})
    queued(run, 0.3)
    record_decision(ReviewTask.objects.claim_next(annotator).pk, annotator, "accept")
    target = Verdict.objects.get()
    Verdict.objects.undo_last(annotator)  # the winner
    monkeypatch.setattr(VerdictQuerySet, "last_undoable", lambda self, rater: target)
    with pytest.raises(DecisionError, match="already undone"):
        Verdict.objects.undo_last(annotator)
    assert Verdict.objects.filter(decision="undo").count() == 1


@pytest.mark.django_db(transaction=True)
def test_raters_deciding_and_undoing_at_once_never_get_a_server_error():
    if connection.vendor != "postgresql":
        pytest.fail("the race tests need PostgreSQL (set DATABASE_URL)")
    run = make_run(review={"audit_share": 0.5, "raters_per_candidate": 2})
    queued(run, *[0.2 + i * 0.02 for i in range(12)])
    raters = [make_user(f"busy{i}", "annotator") for i in range(4)]

    def session(user) -> list[int]:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        codes = []
        for step in range(8):
            page = client.get(reverse("review"), **HX).content.decode()
            task = task_in(page)
            if step % 3 == 2 or task is None:
                codes.append(client.post(reverse("undo"), **HX).status_code)
            else:
                url = reverse("decide", args=[task])
                codes.append(client.post(url, {"decision": "accept"}, **HX).status_code)
        return codes

    answers = race([lambda u=u: session(u) for u in raters])
    assert all(isinstance(a, list) for a in answers), answers
    assert {code for codes in answers for code in codes} == {200}


def task_in(page: str) -> int | None:
    found = re.search(r"/review/tasks/(\d+)/", page)
    return int(found.group(1)) if found else None
