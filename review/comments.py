"""Comments on a candidate, for its raters and for researchers.

A rater may comment on a candidate whose slot they hold (or held). Every item offers the same
form, blind ones included (a missing form would tell a blind item apart); on a blind item a rater
sees only their own comments (``Comment.objects.shown_with``), never other people's.
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
    its slots is (or was) theirs."""
    candidate = get_object_or_404(Candidate, pk=candidate_id)
    if has_role(request.user, "researcher"):
        return candidate
    if not rater_tasks(request, candidate).exists():
        raise PermissionDenied("you can comment only on candidates you review")
    return candidate


def rater_tasks(request: HttpRequest, candidate: Candidate):
    slots = ReviewTask.objects.filter(candidate=candidate)
    return slots.filter(leased_to=request.user) | slots.filter(done_by=request.user)


def blind_slot(request: HttpRequest, candidate: Candidate) -> ReviewTask | None:
    """The rater's blind slot of the candidate, when that is all they see of it (so the list they
    get back holds only their own comments)."""
    if has_role(request.user, "researcher"):
        return None
    mine = list(rater_tasks(request, candidate))
    if mine and all(t.kind == ReviewTask.Kind.AUDIT for t in mine):
        return mine[0]
    return None


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
            "comment_on": candidate.pk,
            "comments": Comment.objects.shown_with(
                blind_slot(request, candidate), request.user
            ).filter(candidate=candidate),
            "comment_error": error,
            "comment_next": target,
        }
        return render(request, "review/_comments.html", context)
    if error:
        messages.error(request, error)
    return redirect(target or "review")
