"""What the operator of a server must know about its configuration, said once when it starts."""

from __future__ import annotations

from django.conf import settings


def notes() -> list[str]:
    said = []
    if settings.PLAIN_HTTP and not settings.DEBUG:
        said.append(
            "AGENTHER_PLAIN_HTTP is set: no HTTPS redirect, HSTS or secure cookies "
            "(for a plain-HTTP intranet only)"
        )
    if not settings.BROKER_CONFIGURED:
        said.append(
            "CELERY_BROKER_URL is not set: tasks run in-process, inside web requests (no workers)"
        )
    return said
