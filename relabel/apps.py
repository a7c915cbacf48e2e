from __future__ import annotations

import logging
import sys

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("agenther")


class RelabelConfig(AppConfig):
    name = "relabel"
    verbose_name = "Relabeling"
    _announced = False

    def ready(self) -> None:
        from relabel.importers.uploads import import_upload
        from relabel.models import ImportJob

        ImportJob.performed_by(import_upload)
        # Say once, at start, where tasks will run: a silent fallback to in-process work would
        # surprise someone who meant to use workers.
        if settings.CELERY_TASK_ALWAYS_EAGER and not RelabelConfig._announced:
            RelabelConfig._announced = True
            # Only for the server: command output (often --json) must stay machine-readable.
            if "runserver" in sys.argv:
                print(
                    "CELERY_BROKER_URL is not set: tasks run in-process (no workers).",
                    file=sys.stderr,
                )
