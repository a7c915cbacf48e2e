"""Human review: queue slots with leases, the append-only record of verdicts, and export jobs.

The verbs live here: ``ReviewTask.objects.claim_next(user)`` leases the next slot,
``task.decide(rater, decision)`` records a verdict on it, ``Verdict.objects.undo_last(rater)``
takes the rater's last one back, and every change of verdicts ends in
``Verdict.objects.update_review_state(candidate)``, which applies the raters' majority
(review.majority) to the candidate.

Leases: a rater holds a task for ``ReviewTask.LEASE``; it is taken with ``SELECT ... FOR UPDATE
SKIP LOCKED`` on PostgreSQL and confirmed by a conditional UPDATE whose row count says who won
(so two people never hold the same task, on SQLite too). A lapsed lease is simply free again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from relabel.models import BackgroundJob, Candidate, Run
from review import majority

# Claims lost to a concurrent rater are retried this many times before giving up for now.
CLAIM_ATTEMPTS = 5


class DecisionError(Exception):
    """A decision that cannot be recorded; the message says why, for the rater."""


class ReviewTaskQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> ReviewTaskQuerySet:
        return self.filter(candidate__run=run)

    def open(self) -> ReviewTaskQuerySet:
        return self.filter(done_at__isnull=True)

    def open_for(self, user: AbstractBaseUser, now: datetime) -> ReviewTaskQuerySet:
        """Tasks ``user`` may take now: not done, not leased to anyone else, and on a candidate
        the user has not already decided (or skipped) unless that was undone."""
        # NOT IN over the rater's own (few) verdicts is one hashed set PostgreSQL checks row by
        # row while walking the open tasks in priority order, stopping at the first free one;
        # NOT EXISTS would be planned as an anti-join over every open task, then a sort.
        mine = Verdict.objects.standing().filter(rater=user).values("candidate_id")
        return (
            self.open()
            .filter(ReviewTask.free_at(now))
            .exclude(candidate_id__in=mine)
            .order_by("priority", "id")
        )

    def held_by(self, user: AbstractBaseUser) -> ReviewTaskQuerySet:
        return self.open().filter(leased_to=user)

    def claim_next(self, user: AbstractBaseUser, now: datetime | None = None) -> ReviewTask | None:
        """The task ``user`` should do now, leased to them: their own unexpired lease first
        (renewed), else the free task with the lowest priority; None when nothing is left."""
        now = now or timezone.now()
        own = self.held_by(user).filter(lease_expires__gt=now).order_by("-lease_expires", "-id")
        if (task := own.first()) is not None:
            task.claim(user, now)
            return task
        for _ in range(CLAIM_ATTEMPTS):
            with transaction.atomic():
                free = self.open_for(user, now)
                if connection.features.has_select_for_update_skip_locked:
                    free = free.select_for_update(skip_locked=True)
                task = free.first()
                if task is None:
                    return None
                if task.claim(user, now):
                    return task
        return None

    def release_held(self, user: AbstractBaseUser, *, except_task: ReviewTask | None = None) -> int:
        """Gives back every task ``user`` holds but has not done."""
        held = self.held_by(user)
        if except_task is not None:
            held = held.exclude(pk=except_task.pk)
        return held.update(leased_to=None, lease_expires=None)

    def remaining(self, cap: int) -> int:
        """Tasks not yet done, counted up to ``cap`` + 1 (the page says "1000+"): an exact count
        reads every open task, and nobody needs more than "over a thousand" while rating."""
        return self.open()[: cap + 1].count()

    def counts(self) -> dict[str, int]:
        """Curation and audit tasks, and how many of each are done, in one query."""
        done = Q(done_at__isnull=False)
        curation, audit = Q(kind=ReviewTask.Kind.CURATION), Q(kind=ReviewTask.Kind.AUDIT)
        return self.aggregate(
            curation=Count("id", filter=curation),
            curation_done=Count("id", filter=curation & done),
            audit=Count("id", filter=audit),
            audit_done=Count("id", filter=audit & done),
        )


class ReviewTask(models.Model):
    """One rating slot of a candidate in the queue.

    A candidate rated by two people has two tasks (``slot`` 0 and 1). Audit tasks are blind: the
    rater sees only the trajectory and the hindsight goal. A task is leased to one rater at a
    time (``leased_to`` until ``lease_expires``) and done once a verdict is recorded.
    """

    class Kind(models.TextChoices):
        CURATION = "curation"
        AUDIT = "audit"

    LEASE = timedelta(minutes=10)

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    slot = models.PositiveSmallIntegerField(default=0)
    priority = models.FloatField(
        default=0.0, help_text="Lower is served first (the candidate's confidence by default)."
    )
    leased_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leased_tasks",
    )
    lease_expires = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="done_tasks",
    )
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewTaskQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["candidate", "kind", "slot"], name="uniq_task_slot")
        ]
        indexes = [
            models.Index(fields=["done_at", "priority", "id"]),
            # The queue reads open tasks in priority order; a partial index lets PostgreSQL walk
            # them in that order and stop at the first free one (IS NULL gives no sort order).
            models.Index(
                fields=["priority", "id"],
                condition=models.Q(done_at__isnull=True),
                name="review_task_open_by_priority",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} task {self.slot} of candidate {self.candidate_id}"

    @staticmethod
    def free_at(now: datetime) -> Q:
        return Q(leased_to__isnull=True) | Q(lease_expires__lte=now)

    def claim(self, user: AbstractBaseUser, now: datetime) -> bool:
        """Leases the task to ``user`` if it is still free (or theirs); the row count says who
        won."""
        won = (
            ReviewTask.objects.filter(pk=self.pk, done_at__isnull=True)
            .filter(self.free_at(now) | Q(leased_to=user))
            .update(leased_to=user, lease_expires=now + self.LEASE)
        )
        if won:
            self.leased_to, self.lease_expires = user, now + self.LEASE
        return bool(won)

    def decide(self, rater: AbstractBaseUser, decision: str, **details: Any) -> Verdict:
        """Records ``rater``'s decision on this task, which must be leased to them; a skip
        gives the task back. ``details``: edited_goal, reason_code, reason, seconds_spent."""
        now = timezone.now()
        with transaction.atomic():
            task = (
                ReviewTask.objects.select_for_update().select_related("candidate").get(pk=self.pk)
            )
            task.check_decidable_by(rater)
            verdict = Verdict.build(task, rater, decision, **details)
            verdict.save()
            if verdict.decision == Verdict.Decision.SKIP:
                task.leased_to, task.lease_expires = None, None
            else:
                task.done_at, task.done_by, task.leased_to = now, rater, None
            task.save(update_fields=["leased_to", "lease_expires", "done_at", "done_by"])
            if verdict.decision != Verdict.Decision.SKIP:
                Verdict.objects.update_review_state(task.candidate)
        return verdict

    def check_decidable_by(self, rater: AbstractBaseUser) -> None:
        if self.done_at is not None:
            raise DecisionError("this candidate has already been decided")
        if self.leased_to_id != rater.pk:
            # Only the task served to you: deciding others (even free ones) would let a rater
            # probe tasks never shown to them, and take slots meant for other people.
            raise DecisionError(
                "this candidate is not leased to you (it may have lapsed): take the next one"
            )
        mine = Verdict.objects.standing().filter(candidate_id=self.candidate_id, rater=rater)
        if mine.exclude(decision=Verdict.Decision.SKIP).exists():
            raise DecisionError("you have already rated this candidate")

    def reopen_for(self, rater: AbstractBaseUser, now: datetime) -> None:
        """Gives the (undone) task back to the rater, unless someone else holds it by now."""
        if self.done_by_id not in (None, rater.pk):
            return
        held_by_other = self.leased_to_id not in (None, rater.pk)
        if held_by_other and self.lease_expires and self.lease_expires > now:
            return
        ReviewTask.objects.release_held(rater, except_task=self)
        self.done_at, self.done_by = None, None
        self.leased_to, self.lease_expires = rater, now + self.LEASE
        self.save(update_fields=["done_at", "done_by", "leased_to", "lease_expires"])


class VerdictQuerySet(models.QuerySet):
    def standing(self) -> VerdictQuerySet:
        """Ratings and skips not undone: what stops a rater being served a candidate again."""
        return self.filter(undone_by__isnull=True).exclude(decision=Verdict.Decision.UNDO)

    def rows(self) -> list[majority.VerdictRow]:
        """The verdicts as the majority rule reads them, in time order."""
        fields = ("id", "candidate_id", "rater_id", "kind", "decision", "undoes_id", "edited_goal")
        return [
            majority.VerdictRow(*values)
            for values in self.order_by("created_at", "id").values_list(*fields)
        ]

    def update_review_state(self, candidate: Candidate) -> None:
        """Sets the candidate's review state and exported goal from its raters' majority."""
        ratings = majority.effective_ratings(self.filter(candidate=candidate).rows())
        candidate.record_review(*majority.review_outcome(ratings, candidate.hindsight_goal))

    def done_today(self, user: AbstractBaseUser, now: datetime | None = None) -> int:
        """Decisions ``user`` made today (not skips, undos, or what was undone)."""
        now = timezone.localtime(now or timezone.now())
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        mine = self.standing().filter(rater=user, created_at__gte=start)
        return mine.exclude(decision=Verdict.Decision.SKIP).count()

    def last_undoable(self, rater: AbstractBaseUser) -> Verdict | None:
        """The rater's latest decision made in the UI that is not undone yet."""
        mine = self.standing().filter(rater=rater, source=Verdict.Source.UI)
        return mine.order_by("-id").first()

    def undo_last(self, rater: AbstractBaseUser) -> Verdict | None:
        """Undoes the rater's last decision with a new verdict; None when there is nothing to
        undo. The undone task goes back to the rater."""
        now = timezone.now()
        with transaction.atomic():
            target = self.last_undoable(rater)
            if target is None:
                return None
            target = Verdict.objects.select_for_update().get(pk=target.pk)
            undo = Verdict.objects.create(
                candidate_id=target.candidate_id,
                task_id=target.task_id,
                rater=rater,
                kind=target.kind,
                decision=Verdict.Decision.UNDO,
                undoes=target,
            )
            if target.task_id is not None:
                task = ReviewTask.objects.select_for_update().get(pk=target.task_id)
                task.reopen_for(rater, now)
            if target.decision in majority.STRICT:
                self.update_review_state(Candidate.objects.get(pk=target.candidate_id))
        return undo


class Verdict(models.Model):
    """One human decision, never changed or deleted: an undo is a new verdict that points at it."""

    class Decision(models.TextChoices):
        ACCEPT = "accept"
        EDIT = "edit"
        REJECT = "reject"
        VALID = "valid"
        INVALID = "invalid"
        SKIP = "skip"
        UNDO = "undo"

    class Source(models.TextChoices):
        UI = "ui"
        IMPORT = "import"

    ALLOWED = {
        ReviewTask.Kind.CURATION: ("accept", "edit", "reject", "skip"),
        # An edit on a blind item says the goal as stated was not valid (strict precision counts
        # it so) and approves the edited goal, as on any item: the keys are the same everywhere.
        ReviewTask.Kind.AUDIT: ("valid", "invalid", "edit", "skip"),
    }
    # Blind items offer the same accept / reject as every other item (different words would
    # give them away); on an audit task they are recorded as the audit's valid / invalid.
    AUDIT_MEANING = {"accept": "valid", "reject": "invalid"}
    # Decisions that keep a reason: a blind item's reject picks from the same list.
    REJECTING = ("reject", "invalid")
    # The short list a rejection picks its reason from (free text may add to it).
    REJECT_REASONS = [
        ("not_achieved", "the trajectory does not achieve this goal"),
        ("mentions_original", "restates or mentions the original goal"),
        ("too_vague", "too vague or trivial to be a useful goal"),
        ("unsupported", "claims something the steps do not show"),
        ("unsafe", "harmful or nonsensical"),
        ("other", "other (say why)"),
    ]

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="verdicts")
    task = models.ForeignKey(
        ReviewTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="verdicts"
    )
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verdicts"
    )
    kind = models.CharField(max_length=10, choices=ReviewTask.Kind.choices)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    edited_goal = models.TextField(blank=True)
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    edit_source = models.CharField(
        max_length=20,
        blank=True,
        help_text="Where an edited goal came from: 'typed', or 'attempt:N' for the relabeler's "
        "attempt N picked instead of the proposed goal.",
    )
    seconds_spent = models.FloatField(null=True, blank=True)
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UI)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VerdictQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["candidate", "created_at"]),
            models.Index(fields=["rater", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.rater_id} on candidate {self.candidate_id}"

    @classmethod
    def build(
        cls,
        task: ReviewTask,
        rater: AbstractBaseUser,
        decision: str,
        *,
        edited_goal: str = "",
        reason_code: str = "",
        reason: str = "",
        seconds_spent: float | None = None,
        edit_source: str = "",
    ) -> Verdict:
        """The (unsaved) verdict for a decision on ``task``; raises DecisionError naming the
        field when the decision is malformed."""
        edited_goal, reason = edited_goal.strip(), reason.strip()
        if decision == "edit" and edited_goal == task.candidate.hindsight_goal.strip():
            decision = "accept"  # saved without a change: that is an accept
        if task.kind == ReviewTask.Kind.AUDIT:
            decision = cls.AUDIT_MEANING.get(decision, decision)
        cls.check_decision(task.kind, decision, edited_goal, reason_code, reason)
        return cls(
            candidate=task.candidate,
            task=task,
            rater=rater,
            kind=task.kind,
            decision=decision,
            edited_goal=edited_goal if decision == "edit" else "",
            edit_source=edit_source if decision == "edit" else "",
            reason_code=reason_code if decision in cls.REJECTING else "",
            reason=reason,
            seconds_spent=seconds_spent,
        )

    @classmethod
    def check_decision(
        cls, kind: str, decision: str, edited_goal: str, reason_code: str, reason: str
    ) -> None:
        if decision not in cls.ALLOWED[kind]:
            choices = ", ".join(cls.ALLOWED[kind])
            raise DecisionError(f"verdict: {decision!r} is not one of {choices}")
        if decision == "edit" and not edited_goal:
            raise DecisionError("edited_goal: an edit needs the edited goal")
        codes = [code for code, _ in cls.REJECT_REASONS]
        if decision in cls.REJECTING and reason_code and reason_code not in codes:
            raise DecisionError(f"reason: {reason_code!r} is not one of {', '.join(codes)}")
        if decision in cls.REJECTING and reason_code == "other" and not reason:
            raise DecisionError("reason: say why when the reason is 'other'")


class ExportJob(BackgroundJob):
    """One export of a run, made in the background, downloaded from the export page.

    Its table is still ``relabel_exportjob``: the model moved to the review side with the
    exports, its data did not move.
    """

    # An export of a large run can take long; the broker's visibility timeout must exceed it.
    SOFT_TIME_LIMIT = 3600
    TIME_LIMIT = 3660

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=20)
    filters = models.JSONField(default=dict, blank=True)
    directory = models.CharField(max_length=500, blank=True)
    manifest = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "relabel_exportjob"
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=["sft", "dpo", "sharegpt", "verdicts"]),
                name="export_format_known",
            )
        ]

    def __str__(self) -> str:
        return f"{self.format} export of run {self.run_id}: {self.status}"


class RaterSettings(models.Model):
    """A rater's choices for the review page, kept on the server so they follow the rater."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_settings"
    )
    single_key_shortcuts = models.BooleanField(
        default=True, help_text="Letter and digit keys act on the review page (WCAG 2.1.4)."
    )

    def __str__(self) -> str:
        return f"review settings of user {self.user_id}"
