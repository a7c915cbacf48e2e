from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from review.roles import require_role


@require_role("annotator")
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "review/home.html", {})
