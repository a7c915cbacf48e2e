"""Comments on a candidate, for its raters and for researchers.

A rater may comment on a candidate they see in full: one they hold (or held) a non-blind slot of.
Nobody comments from a blind item, and nobody sees comments there (``Comment.objects.shown_with``).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from relabel.forms import errors_text
from relabel.models import Candidate
from relabel.roles import has_role, require_role
from review.models import Comment, ReviewTask
from review.queue_forms import CommentForm


def _get_commentable_candidate(request: HttpRequest, candidate_id: int) -> Candidate:
    """The candidate, if this person may comment on it: a researcher always, a rater when one of
    its non-blind slots is (or was) theirs."""
    candidate = get_object_or_404(Candidate, pk=candidate_id)
    if has_role(request.user, "researcher"):
        return candidate
    seen = ReviewTask.objects.filter(candidate=candidate).exclude(kind=ReviewTask.Kind.AUDIT)
    mine = seen.filter(leased_to=request.user) | seen.filter(done_by=request.user)
    if not mine.exists():
        raise PermissionDenied("you can comment only on candidates you review in full")
    return candidate


@require_POST
@require_role("annotator")
def comment(request: HttpRequest, candidate_id: int) -> HttpResponse:
    candidate = _get_commentable_candidate(request, candidate_id)
    form = CommentForm(request.POST)
    posted = form.is_valid()
    if posted:
        text = form.cleaned_data["text"]
        Comment.objects.create(candidate=candidate, author=request.user, text=text)
    error = "" if posted else f"Comment not posted: {errors_text(form)}"
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = ""
    if request.htmx:
        context = {
            "candidate": candidate,
            "blind": False,
            "comments": Comment.objects.shown_with(None).filter(candidate=candidate),
            "comment_error": error,
            "comment_next": target,
        }
        return render(request, "review/_comments.html", context)
    if error:
        messages.error(request, error)
    return redirect(target or "review")
