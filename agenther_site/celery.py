"""The Celery app. Start a worker with:

CELERY_BROKER_URL=redis://127.0.0.1:6379/0 .venv/bin/celery -A agenther_site worker -l info
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenther_site.settings")

app = Celery("agenther_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
