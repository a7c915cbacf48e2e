"""Recording human decisions: append-only verdicts, undo, and the candidate's cached state.

Verdicts are never changed or deleted. An undo is a new verdict pointing at the one it undoes
(``Verdict.undoes``); it reopens the task for the same rater. A candidate's ``review_state`` and
``final_goal`` follow its latest decision that has not been undone: accept (or valid, in a blind
audit) keeps the generated goal, edit replaces it with the edited one, reject (or invalid) marks
it rejected, so a goal a person found invalid is never exported.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from relabel.models import Candidate
from review.models import ReviewTask, Verdict
from review.queue import LEASE, release_leases

D = Verdict.Decision
CURATION_DECISIONS = (D.ACCEPT, D.EDIT, D.REJECT)
AUDIT_DECISIONS = (D.VALID, D.INVALID)
JUDGING_DECISIONS = (*CURATION_DECISIONS, *AUDIT_DECISIONS)
ALLOWED = {
    ReviewTask.Kind.CURATION: (*CURATION_DECISIONS, D.SKIP),
    ReviewTask.Kind.AUDIT: (*AUDIT_DECISIONS, D.SKIP),
}
# The short list a rejection picks its reason from (free text may add to it).
REJECT_REASONS = [
    ("not_achieved", "the trajectory does not achieve this goal"),
    ("mentions_original", "restates or mentions the original goal"),
    ("too_vague", "too vague or trivial to be a useful goal"),
    ("unsupported", "claims something the steps do not show"),
    ("unsafe", "harmful or nonsensical"),
    ("other", "other (say why)"),
]
REJECT_CODES = {code for code, _ in REJECT_REASONS}
# Blind items offer the same accept / reject as every other item (different words would give them
# away); on an audit task they are recorded as the audit's valid / invalid.
AUDIT_MEANING = {D.ACCEPT: D.VALID, D.REJECT: D.INVALID}


class DecisionError(Exception):
    """A decision that cannot be recorded; the message says why, for the rater."""


def check_decision(
    kind: str, decision: str, *, edited_goal: str = "", reason_code: str = "", reason: str = ""
) -> None:
    """Raises DecisionError naming the field when a decision is malformed."""
    if decision not in ALLOWED[kind]:
        choices = ", ".join(ALLOWED[kind])
        raise DecisionError(f"verdict: {decision!r} is not one of {choices}")
    if decision == D.EDIT and not edited_goal.strip():
        raise DecisionError("edited_goal: an edit needs the edited goal")
    if decision == D.REJECT and reason_code and reason_code not in REJECT_CODES:
        raise DecisionError(f"reason: {reason_code!r} is not one of {', '.join(REJECT_CODES)}")
    if decision == D.REJECT and reason_code == "other" and not reason.strip():
        raise DecisionError("reason: say why when the reason is 'other'")


def refresh_candidate(candidate: Candidate) -> None:
    """Recomputes review_state and final_goal from each rater's latest effective verdict.

    With several raters the majority decides, a tie counting against the goal: the same rule the
    precision figures use, so what is exported is the set they describe.
    """
    latest_per_rater: dict[int, Verdict] = {}
    verdicts = Verdict.objects.filter(
        candidate=candidate, decision__in=JUDGING_DECISIONS, undone_by__isnull=True
    ).order_by("id")
    for verdict in verdicts:
        latest_per_rater[verdict.rater_id] = verdict
    effective = sorted(latest_per_rater.values(), key=lambda v: v.id)
    approving = [v for v in effective if v.decision in (D.ACCEPT, D.EDIT, D.VALID)]
    edits = [v for v in approving if v.decision == D.EDIT]
    if not effective:
        state = Candidate.ReviewState.UNREVIEWED
    elif len(approving) * 2 <= len(effective):
        state = Candidate.ReviewState.REJECTED
    else:
        state = Candidate.ReviewState.EDITED if edits else Candidate.ReviewState.ACCEPTED
    candidate.review_state = state
    edited = state == Candidate.ReviewState.EDITED
    candidate.final_goal = edits[-1].edited_goal if edited else candidate.hindsight_goal
    candidate.save(update_fields=["review_state", "final_goal"])


def already_decided(candidate_id: int, rater: AbstractBaseUser) -> bool:
    return (
        Verdict.objects.filter(candidate_id=candidate_id, rater=rater, undone_by__isnull=True)
        .exclude(decision__in=[D.UNDO, D.SKIP])
        .exists()
    )


def locked_task(task_id: int, rater: AbstractBaseUser, now: datetime) -> ReviewTask:
    """The task, row-locked, if ``rater`` may decide it now."""
    task = ReviewTask.objects.select_for_update().select_related("candidate").get(pk=task_id)
    if task.done_at is not None:
        raise DecisionError("this candidate has already been decided")
    if task.leased_to_id != rater.pk:
        # Only the task served to you: deciding others (even free ones) would let a rater probe
        # tasks never shown to them, and take slots meant for other people.
        raise DecisionError(
            "this candidate is not leased to you (it may have lapsed): take the next one"
        )
    if already_decided(task.candidate_id, rater):
        raise DecisionError("you have already rated this candidate")
    return task


def record_decision(
    task_id: int,
    rater: AbstractBaseUser,
    decision: str,
    *,
    edited_goal: str = "",
    reason_code: str = "",
    reason: str = "",
    seconds_spent: float | None = None,
) -> Verdict:
    """Stores one decision on a task leased to ``rater`` (a skip gives the task back)."""
    now = timezone.now()
    with transaction.atomic():
        task = locked_task(task_id, rater, now)
        if decision == D.EDIT and edited_goal.strip() == task.candidate.hindsight_goal.strip():
            decision = D.ACCEPT  # saved without a change: that is an accept
        if task.kind == ReviewTask.Kind.AUDIT:
            decision = AUDIT_MEANING.get(decision, decision)
        check_decision(
            task.kind, decision, edited_goal=edited_goal, reason_code=reason_code, reason=reason
        )
        verdict = Verdict.objects.create(
            candidate=task.candidate,
            task=task,
            rater=rater,
            kind=task.kind,
            decision=decision,
            edited_goal=edited_goal.strip() if decision == D.EDIT else "",
            reason_code=reason_code if decision == D.REJECT else "",
            reason=reason.strip(),
            seconds_spent=seconds_spent,
        )
        if decision == D.SKIP:
            task.leased_to, task.lease_expires = None, None
        else:
            task.done_at, task.done_by, task.leased_to = now, rater, None
        task.save(update_fields=["leased_to", "lease_expires", "done_at", "done_by"])
        if decision != D.SKIP:
            refresh_candidate(task.candidate)
    return verdict


def last_undoable(rater: AbstractBaseUser) -> Verdict | None:
    """The rater's latest decision made in the UI that is not undone yet."""
    return (
        Verdict.objects.filter(rater=rater, source=Verdict.Source.UI, undone_by__isnull=True)
        .exclude(decision=D.UNDO)
        .order_by("-id")
        .first()
    )


def reopen_for(task: ReviewTask, rater: AbstractBaseUser, now: datetime) -> None:
    """Gives the undone task back to the rater, unless someone else holds it by now."""
    if task.done_by_id not in (None, rater.pk):
        return
    held_by_other = task.leased_to_id not in (None, rater.pk)
    if held_by_other and task.lease_expires and task.lease_expires > now:
        return
    release_leases(rater, except_task=task)
    task.done_at, task.done_by = None, None
    task.leased_to, task.lease_expires = rater, now + LEASE
    task.save(update_fields=["done_at", "done_by", "leased_to", "lease_expires"])


def undo_last(rater: AbstractBaseUser) -> Verdict | None:
    """Undoes the rater's last decision with a new verdict; None when there is nothing to undo."""
    now = timezone.now()
    with transaction.atomic():
        target = last_undoable(rater)
        if target is None:
            return None
        target = Verdict.objects.select_for_update().get(pk=target.pk)
        undo = Verdict.objects.create(
            candidate_id=target.candidate_id,
            task_id=target.task_id,
            rater=rater,
            kind=target.kind,
            decision=D.UNDO,
            undoes=target,
        )
        if target.task_id is not None:
            reopen_for(ReviewTask.objects.select_for_update().get(pk=target.task_id), rater, now)
        if target.decision in JUDGING_DECISIONS:
            refresh_candidate(Candidate.objects.get(pk=target.candidate_id))
    return undo


def seconds_since(started_at: str, now: datetime | None = None) -> float | None:
    """Seconds since a page's hidden started-at value (epoch seconds); None if unusable."""
    try:
        started = float(started_at)
    except (TypeError, ValueError):
        return None
    spent = (now or timezone.now()).timestamp() - started
    # A clock skew or a tab left open overnight is not time spent rating.
    return round(spent, 2) if 0 <= spent <= 6 * 3600 else None
