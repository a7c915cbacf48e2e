from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from review.roles import require_role


@require_role("admin")
def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Exports are not built yet.", content_type="text/plain")
