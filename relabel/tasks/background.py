"""Without a broker, work started from a page runs on a thread of the web process.

With workers (CELERY_BROKER_URL set) this module changes nothing. Without them, tasks run eagerly
in the process that enqueues them: a command (``manage.py relabel``, the demo's own run) wants
exactly that, since it must finish its work before the process exits. A page does not: it must
answer at once and show the progress. So a view wraps what it starts in ``in_background()``,
and the work enqueued inside runs on a daemon thread once the transaction commits. The thread
has its own database connection and closes it when done; a run cut short by the server stopping
is finished with ``manage.py relabel --resume``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connections, transaction

logger = logging.getLogger("agenther")

_wanted: ContextVar[bool] = ContextVar("agenther_in_background", default=False)
_threads: set[threading.Thread] = set()
_lock = threading.Lock()


@contextmanager
def in_background() -> Iterator[None]:
    """Work enqueued inside this block runs on a background thread when there is no broker."""
    token = _wanted.set(True)
    try:
        yield
    finally:
        _wanted.reset(token)


def wanted() -> bool:
    """True when the caller asked for background work and no worker will take it.

    ``AGENTHER_BACKGROUND_THREADS = False`` (tests through the test client) keeps the work in
    the call: a thread has its own connection and would not see the test's open transaction.
    """
    enabled = getattr(settings, "AGENTHER_BACKGROUND_THREADS", True)
    return settings.CELERY_TASK_ALWAYS_EAGER and enabled and _wanted.get()


def on_commit(work: Callable[[], object], name: str) -> None:
    """Runs ``work`` once the transaction commits: on a thread when ``wanted()``, else here."""
    if wanted():
        transaction.on_commit(lambda: start(work, name))
    else:
        transaction.on_commit(work)


def start(work: Callable[[], object], name: str) -> threading.Thread:
    thread = threading.Thread(target=_run, args=(work,), name=name, daemon=True)
    with _lock:
        _threads.add(thread)
    thread.start()
    return thread


def _run(work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # the task records its own failure; this is a bug, log it and go on
        logger.exception("background work failed")
    finally:
        connections.close_all()  # this thread's connections only
        with _lock:
            _threads.discard(threading.current_thread())


def wait_all(timeout: float = 60.0) -> bool:
    """Waits for the background threads running now; True when none is left (for tests)."""
    with _lock:
        running = list(_threads)
    for thread in running:
        thread.join(timeout)
    return not any(t.is_alive() for t in running)
