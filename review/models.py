"""Human review: queue slots with leases, and the append-only record of verdicts."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from relabel.models import Candidate


class ReviewTask(models.Model):
    """One rating slot of a candidate in the queue.

    A candidate rated by two people has two tasks (``slot`` 0 and 1). Audit tasks are blind: the
    rater sees only the trajectory and the hindsight goal. A task is leased to one rater at a
    time (``leased_to`` until ``lease_expires``) and done once a verdict is recorded.
    """

    class Kind(models.TextChoices):
        CURATION = "curation"
        AUDIT = "audit"

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
    seconds_spent = models.FloatField(null=True, blank=True)
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UI)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["candidate", "created_at"]),
            models.Index(fields=["rater", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.rater_id} on candidate {self.candidate_id}"
