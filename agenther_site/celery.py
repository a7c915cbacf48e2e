"""The Celery app. Start a worker with:

CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/celery -A agenther_site worker -l info

Each task a worker runs ends in one structured log line (logger ``agenther.tasks``): the task,
its id, how it ended, how long it took, and the run, item and job ids it was given. Tasks run
in-process (no broker) are not logged here: the request or command that ran them is.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")

app = Celery("agenther_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger("agenther.tasks")

# Task argument -> field of the log line.
TASK_IDS = {"run_id": "run", "item_ids": "items", "job_id": "job"}

# Per task id, while it runs in this worker process: when it started, and why it failed.
_started: dict[str, float] = {}
_errors: dict[str, str] = {}


@task_prerun.connect
def _task_started(task_id: str, task: Task, **_: Any) -> None:
    if not task.request.is_eager:
        _started[task_id] = time.perf_counter()


@task_failure.connect
def _task_failed(task_id: str, exception: BaseException, **_: Any) -> None:
    _errors[task_id] = f"{type(exception).__name__}: {exception}"[:500]


@task_postrun.connect
def _task_finished(
    task_id: str, task: Task, args: tuple, kwargs: dict, state: str | None, **_: Any
) -> None:
    started = _started.pop(task_id, None)
    error = _errors.pop(task_id, None)
    if started is None:
        return  # in-process
    fields = task_ids(task, args, kwargs)
    fields.update(task=task.name, task_id=task_id, state=state)
    fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
    if error:
        fields["error"] = error
    logger.info("%s %s %s", task.name, task_id, state, extra=fields)


def task_ids(task: Task, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The run, item and job ids among a task's arguments, whatever their position."""
    try:
        bound = inspect.signature(task.run).bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = dict(kwargs)
    return {name: bound[key] for key, name in TASK_IDS.items() if key in bound}
