"""Celery tasks: thin adapters that take ids, re-fetch, and call a domain function.

One module per concern, imported here so that Celery's autodiscovery finds them all.
"""

from __future__ import annotations

from relabel.tasks.exports import *  # noqa: F403
from relabel.tasks.imports import *  # noqa: F403
from relabel.tasks.pipeline import *  # noqa: F403
