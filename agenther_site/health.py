"""``/healthz``, for load balancers and orchestrators: no login, no data.

200 when the database and the broker answer; 503 naming the one that does not. Without a broker
(tasks run in-process) there is none to ask: the answer says so and is not a failure. The
reason a check failed goes to the server's log, never to the anonymous caller.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger("agenther.health")

TIMEOUT_SECONDS = 2


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_state(), "broker": broker_state()}
    healthy = all(state in ("ok", "in-process") for state in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks},
                        status=200 if healthy else 503)  # fmt: skip


def database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("health check: the database does not answer")
        return "unavailable"
    return "ok"


def broker_state() -> str:
    if not settings.BROKER_CONFIGURED:
        return "in-process"  # no workers, nothing to reach: tasks run inside the request
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT_SECONDS)
    except Exception:
        logger.exception("health check: the broker does not answer")
        return "unavailable"
    return "ok"
