"""One structured log line a request: what was asked, the answer, how long it took, by whom,
and the ids in the URL (run, candidate, review task, job), so one run's traffic can be found."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("agenther.requests")

# URL keyword -> field of the log line.
URL_IDS = {"run_id": "run", "candidate_id": "candidate", "task_id": "task", "job_id": "job"}


class RequestLogMiddleware:
    """Outermost, so the time and status are those the client sees (static files included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        fields = request_fields(request, response)
        fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
        logger.info("%s %s %s", request.method, request.path, response.status_code, extra=fields)
        return response


def request_fields(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
    user = getattr(request, "user", None)
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "user": user.pk if user is not None and user.is_authenticated else None,
    }
    match = request.resolver_match
    if match is not None:
        fields["view"] = match.view_name
        for key, name in URL_IDS.items():
            if key in match.kwargs:
                fields[name] = match.kwargs[key]
    return fields
