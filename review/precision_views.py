from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from review.roles import require_role


@require_role("researcher")
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    return HttpResponse("Precision is not built yet.", content_type="text/plain")
