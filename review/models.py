"""Human review: named queues with members and guidelines, queue slots with leases, the
append-only record of verdicts, comments, and export jobs.

Queues: a run's review work lives in named queues (``ReviewQueue``): its curation, audit and
adjudication queues, made when the run finishes, and any a researcher defines (by gate, confidence
range, failure type, benchmark, review state) or a study (a random sample, K raters each, blind).
A queue without members is open to every annotator who is a member of no queue; once a
person is a member of an active queue, they rate in the queues they are a member of and only
those (``ReviewQueue.objects.rating_ids_for``). The adjudication queues are for adjudicators and
researchers. Only the people a queue is for can take or decide its items.

The verbs live here: ``ReviewTask.objects.claim_next(user)`` leases the next slot,
``task.decide(rater, decision)`` records a verdict on it, ``Verdict.objects.undo_last(rater)``
takes the rater's last one back, and every change of verdicts ends in
``Verdict.objects.update_review_state(candidate)``, which applies the raters' majority
(review.majority) to the candidate and sends a disagreement to adjudication (and a share of single
approvals to a blind re-audit).

Leases: a rater holds a task for ``ReviewTask.LEASE``; it is taken with ``SELECT ... FOR UPDATE
SKIP LOCKED`` on PostgreSQL and confirmed by a conditional UPDATE whose row count says who won
(so two people never hold the same task, on SQLite too). A lapsed lease is simply free again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection, models, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.safestring import SafeString

from relabel.config import REVIEW_ORDERS
from relabel.models import BackgroundJob, Candidate, Run
from relabel.roles import has_role, role_of
from review import majority
from review.audit import in_reaudit_sample
from review.guidelines import render_markdown

# Claims lost to a concurrent rater are retried this many times before giving up for now.
CLAIM_ATTEMPTS = 5


class DecisionError(Exception):
    """A decision that cannot be recorded; the message says why, for the rater."""


class ReviewQueueQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> ReviewQueueQuerySet:
        return self.filter(run=run)

    def active(self) -> ReviewQueueQuerySet:
        return self.filter(active=True)

    def rating(self) -> ReviewQueueQuerySet:
        """Queues whose items raters rate (every queue but adjudication)."""
        return self.exclude(purpose=ReviewQueue.Purpose.ADJUDICATION)

    def member_of(self, user: AbstractBaseUser) -> ReviewQueueQuerySet:
        return self.filter(Q(members=user) | Q(member_groups__in=user.groups.all()))

    def open_to_all(self) -> ReviewQueueQuerySet:
        return self.filter(members__isnull=True, member_groups__isnull=True)

    def rating_ids_for(self, user: AbstractBaseUser) -> list[int]:
        """The queues ``user`` rates in: the active ones they are a member of; a person who is a
        member of none rates in the open ones (no members) if they are an annotator or
        adjudicator. Researchers and admins rate only where they are members, so the people who
        read the figures do not make the verdicts behind them unless someone chose so."""
        rating = self.active().rating()
        mine = sorted(set(rating.member_of(user).values_list("id", flat=True)))
        if mine:
            return mine
        if role_of(user) in ReviewQueue.OPEN_TO:
            return list(rating.open_to_all().values_list("id", flat=True))
        return []

    def adjudication_ids_for(self, user: AbstractBaseUser) -> list[int]:
        if not has_role(user, "adjudicator"):
            return []
        adjudication = self.active().filter(purpose=ReviewQueue.Purpose.ADJUDICATION)
        return list(adjudication.values_list("id", flat=True))

    def ids_for(self, user: AbstractBaseUser, kind: str) -> list[int]:
        """The queues in which ``user`` may take and decide tasks of ``kind``."""
        if kind == ReviewTask.Kind.ADJUDICATION:
            return self.adjudication_ids_for(user)
        return self.rating_ids_for(user)

    def default(self, run: Run, purpose: str) -> ReviewQueue:
        """The run's curation, audit or adjudication queue, made on first use."""
        queue, _ = self.get_or_create(
            run=run,
            purpose=purpose,
            defaults=ReviewQueue.default_fields(run, purpose),
        )
        return queue


class ReviewQueue(models.Model):
    """A named queue of a run's review work: its items, who rates them, how many raters each
    item gets (``overlap``), in which order, under which guidelines."""

    class Purpose(models.TextChoices):
        CURATION = "curation"
        AUDIT = "audit"
        ADJUDICATION = "adjudication"
        CUSTOM = "custom", "by filter"
        STUDY = "study", "study (a random sample)"

    DEFAULTS = {
        Purpose.CURATION: "Curation",
        Purpose.AUDIT: "Audit",
        Purpose.ADJUDICATION: "Adjudication",
    }
    # Who rates in a queue without members (when they are a member of no queue).
    OPEN_TO = ("annotator", "adjudicator")
    ORDERS = [(order, order.replace("_", " ")) for order in REVIEW_ORDERS]
    FILTER_KEYS = (
        "gate",
        "min_confidence",
        "max_confidence",
        "failure_type",
        "benchmark",
        "review_state",
    )

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="queues")
    name = models.CharField(max_length=100)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.CUSTOM)
    blind = models.BooleanField(
        default=False,
        help_text="Raters see the trajectory and the goal only, and answer valid / invalid.",
    )
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Raters per item.")
    order = models.CharField(max_length=30, choices=ORDERS, default=REVIEW_ORDERS[0])
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Which of the run's candidates: " + ", ".join(FILTER_KEYS),
    )
    sample_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="A study's random sample of N candidates."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="review_queues"
    )
    member_groups = models.ManyToManyField(Group, blank=True, related_name="review_queues")
    active = models.BooleanField(default=True, help_text="Closed queues serve nothing.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewQueueQuerySet.as_manager()

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="uniq_queue_name"),
            # One curation, audit and adjudication queue per run, however many are asked for at
            # once (get_or_create relies on it under concurrency).
            models.UniqueConstraint(
                fields=["run", "purpose"],
                condition=Q(purpose__in=["curation", "audit", "adjudication"]),
                name="uniq_default_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (run {self.run_id})"

    @classmethod
    def default_fields(cls, run: Run, purpose: str) -> dict[str, Any]:
        cfg = run.review_settings()
        return {
            "name": cls.DEFAULTS[purpose],
            "blind": purpose == cls.Purpose.AUDIT,
            "overlap": 1 if purpose == cls.Purpose.ADJUDICATION else cfg["raters_per_candidate"],
            "order": cfg["order"],
        }

    @property
    def task_kind(self) -> str:
        if self.purpose == self.Purpose.ADJUDICATION:
            return ReviewTask.Kind.ADJUDICATION
        return ReviewTask.Kind.AUDIT if self.blind else ReviewTask.Kind.CURATION

    @property
    def is_default(self) -> bool:
        return self.purpose in self.DEFAULTS

    def current_guidelines(self) -> QueueGuidelines | None:
        return self.guideline_versions.order_by("-version").first()

    def set_guidelines(self, text: str, by: AbstractBaseUser | None) -> QueueGuidelines | None:
        """A new version when the text changed; returns the current version."""
        text = text.strip()
        with transaction.atomic():
            ReviewQueue.objects.select_for_update().filter(pk=self.pk).first()
            current = self.current_guidelines()
            if (current.text if current else "") == text:
                return current
            version = (current.version if current else 0) + 1
            return self.guideline_versions.create(version=version, text=text, created_by=by)

    def progress(self) -> dict[str, int]:
        """Slots and items of the queue, done and in all, in one query."""
        done, open_ = Q(done_at__isnull=False), Q(done_at__isnull=True)
        row = ReviewTask.objects.filter(queue=self).aggregate(
            tasks=Count("id"),
            tasks_done=Count("id", filter=done),
            items=Count("candidate", distinct=True),
            items_open=Count("candidate", filter=open_, distinct=True),
        )
        return {**row, "items_complete": row["items"] - row["items_open"]}


class QueueGuidelines(models.Model):
    """One version of a queue's guidelines (Markdown). Versions are never changed: a verdict
    records the version it was made under."""

    queue = models.ForeignKey(
        ReviewQueue, on_delete=models.CASCADE, related_name="guideline_versions"
    )
    version = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "version"], name="uniq_guidelines_version")
        ]

    def __str__(self) -> str:
        return f"guidelines v{self.version} of queue {self.queue_id}"

    def html(self) -> SafeString:
        return render_markdown(self.text)


class ReviewTaskQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> ReviewTaskQuerySet:
        return self.filter(candidate__run=run)

    def open(self) -> ReviewTaskQuerySet:
        return self.filter(done_at__isnull=True)

    def in_queues(self, queues: Sequence[int]) -> ReviewTaskQuerySet:
        return self.filter(queue_id__in=list(queues))

    def open_for(
        self, user: AbstractBaseUser, now: datetime, queues: Sequence[int] | None = None
    ) -> ReviewTaskQuerySet:
        """Tasks ``user`` may take now: in their queues (``queues``, by default the queues they
        rate in), not done, not leased to anyone else, and on a candidate the user has not
        already decided (or skipped) unless that was undone."""
        if queues is None:
            queues = ReviewQueue.objects.rating_ids_for(user)
        # NOT IN over the rater's own (few) verdicts is one hashed set PostgreSQL checks row by
        # row while walking the open tasks in priority order, stopping at the first free one;
        # NOT EXISTS would be planned as an anti-join over every open task, then a sort.
        mine = Verdict.objects.standing().filter(rater=user).values("candidate_id")
        return (
            self.open()
            .in_queues(queues)
            .filter(ReviewTask.free_at(now))
            .exclude(candidate_id__in=mine)
            .order_by("priority", "id")
        )

    def held_by(self, user: AbstractBaseUser) -> ReviewTaskQuerySet:
        return self.open().filter(leased_to=user)

    def claim_next(
        self,
        user: AbstractBaseUser,
        now: datetime | None = None,
        queues: Sequence[int] | None = None,
    ) -> ReviewTask | None:
        """The task ``user`` should do now in ``queues`` (by default every queue they rate in),
        leased to them: their own unexpired lease there first (renewed), else the free task with
        the lowest priority; None when nothing is left. Leases are per queue: holding a task in
        one queue does not stop a rater taking one in another."""
        now = now or timezone.now()
        if queues is None:
            queues = ReviewQueue.objects.rating_ids_for(user)
        own = self.held_by(user).in_queues(queues).filter(lease_expires__gt=now)
        if (task := own.order_by("-lease_expires", "-id").first()) is not None:
            task.claim(user, now)
            return task
        for _ in range(CLAIM_ATTEMPTS):
            with transaction.atomic():
                free = self.open_for(user, now, queues)
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
        """Curation, audit and adjudication tasks, and how many of each are done, in one query."""
        done = Q(done_at__isnull=False)
        kinds = {kind: Q(kind=kind) for kind in ReviewTask.Kind.values}
        return self.aggregate(
            **{kind: Count("id", filter=q) for kind, q in kinds.items()},
            **{f"{kind}_done": Count("id", filter=q & done) for kind, q in kinds.items()},
        )

    def ensure(self, candidate: Candidate, purpose: str) -> ReviewTask:
        """One slot of ``candidate`` in its run's ``purpose`` queue (made if missing)."""
        queue = ReviewQueue.objects.default(candidate.run, purpose)
        task, _ = self.get_or_create(
            queue=queue,
            candidate=candidate,
            slot=0,
            defaults={"kind": queue.task_kind, "priority": candidate.confidence},
        )
        return task

    def follow_up(self, candidate: Candidate, ratings: Sequence[majority.Rating]) -> None:
        """What a change of verdicts asks of the queues: a disagreement goes to adjudication
        (and leaves it when an undo settles it before anyone took it), and a share of the
        candidates approved by a single curation rater joins the audit queue, blind, for another
        rater (review.audit.in_reaudit_sample): what measures the raters' own precision."""
        adjudication = ReviewQueue.Purpose.ADJUDICATION
        if majority.needs_adjudication(ratings):
            self.ensure(candidate, adjudication)
        else:
            stale = self.open().filter(candidate=candidate, kind=ReviewTask.Kind.ADJUDICATION)
            stale.filter(leased_to__isnull=True, verdicts__isnull=True).delete()
        raters = majority.raters_ratings(ratings)
        single_approval = (
            len(raters) == 1
            and raters[0].kind == ReviewTask.Kind.CURATION
            and raters[0].decision in majority.APPROVING
            and majority.adjudication(ratings) is None
        )
        if single_approval and in_reaudit_sample(candidate.run, candidate.pk):
            self.ensure(candidate, ReviewQueue.Purpose.AUDIT)


class ReviewTask(models.Model):
    """One rating slot of a candidate in a queue.

    A candidate rated by two people in a queue has two tasks there (``slot`` 0 and 1). Audit
    tasks (of a blind queue) are blind: the rater sees only the trajectory and the goal.
    Adjudication tasks are an adjudicator's decision on a disagreement. A task is leased to one
    rater at a time (``leased_to`` until ``lease_expires``) and done once a verdict is recorded.
    """

    class Kind(models.TextChoices):
        CURATION = "curation"
        AUDIT = "audit"
        ADJUDICATION = "adjudication"

    LEASE = timedelta(minutes=10)

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="tasks")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=12, choices=Kind.choices)
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
            models.UniqueConstraint(fields=["queue", "candidate", "slot"], name="uniq_queue_slot")
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
                ReviewTask.objects.select_for_update(of=("self",))
                .select_related("candidate__run", "queue")
                .get(pk=self.pk)
            )
            task.check_decidable_by(rater)
            verdict = Verdict.build(task, rater, decision, **details)
            verdict.guidelines = task.queue.current_guidelines()
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
        # Only the task served to you, in a queue you rate in: deciding others (even free ones)
        # would let a rater probe tasks never shown to them, and take slots meant for other
        # people. One neutral refusal for both, so it tells nothing about the task's queue.
        if self.leased_to_id != rater.pk or self.queue_id not in ReviewQueue.objects.ids_for(
            rater, self.kind
        ):
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
        """Sets the candidate's review state and exported goal from its raters' majority (or
        its adjudication), and asks the queues for what follows (``ReviewTask.follow_up``)."""
        ratings = majority.effective_ratings(self.filter(candidate=candidate).rows())
        candidate.record_review(*majority.review_outcome(ratings, candidate.hindsight_goal))
        ReviewTask.objects.follow_up(candidate, ratings)

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
        undo, DecisionError when a concurrent undo took it first. The undone task goes back to
        the rater."""
        now = timezone.now()
        with transaction.atomic():
            target = self.last_undoable(rater)
            if target is None:
                return None
            # Two undos at once pick the same verdict: the second waits for the first's lock,
            # then finds it undone (a fresh read under READ COMMITTED) and says so.
            target = Verdict.objects.select_for_update().get(pk=target.pk)
            if Verdict.objects.filter(undoes=target).exists():
                raise DecisionError("already undone: your last decision was taken back already")
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
        ReviewTask.Kind.ADJUDICATION: ("accept", "edit", "reject", "skip"),
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
    kind = models.CharField(max_length=12, choices=ReviewTask.Kind.choices)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    edited_goal = models.TextField(blank=True)
    edited_rewrites = models.JSONField(
        default=dict,
        blank=True,
        help_text="An edit of the rewritten turns ({step index or 'final_answer': text}); it "
        "replaces the generated rewrite in exports.",
    )
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    edit_source = models.CharField(
        max_length=20,
        blank=True,
        help_text="Where an edited goal came from: 'typed', or 'attempt:N' for the relabeler's "
        "attempt N picked instead of the proposed goal.",
    )
    seconds_spent = models.FloatField(null=True, blank=True)
    guidelines = models.ForeignKey(
        QueueGuidelines,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verdicts",
        help_text="The version of the queue's guidelines the verdict was made under.",
    )
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
        edited_rewrites: dict[str, str] | None = None,
        edit_source: str = "",
    ) -> Verdict:
        """The (unsaved) verdict for a decision on ``task``; raises DecisionError naming the
        field when the decision is malformed."""
        edited_goal, reason = edited_goal.strip(), reason.strip()
        try:
            rewrites = task.candidate.changed_rewrites(edited_rewrites or {})
        except ValueError as exc:
            raise DecisionError(f"edited_rewrites: {exc}") from None
        if decision == "edit" and edited_goal == task.candidate.hindsight_goal.strip():
            decision = "edit" if rewrites else "accept"  # nothing changed: that is an accept
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
            edited_rewrites=rewrites if decision == "edit" else {},
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


class CommentQuerySet(models.QuerySet):
    def shown_with(self, task: ReviewTask | None, user: Any = None) -> CommentQuerySet:
        """The comments a rater sees beside ``task``: on a blind item only their own (its rater
        has not given the blind verdict yet, and people's notes would unblind it), all
        otherwise."""
        shown = self.select_related("author").order_by("created_at", "id")
        if task is not None and task.kind == ReviewTask.Kind.AUDIT:
            return shown.filter(author=user) if user is not None else self.none()
        return shown


class Comment(models.Model):
    """A note on a candidate by a rater or a researcher, for the others who look at it."""

    MAX_CHARS = 5000

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_comments"
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["candidate", "created_at"])]

    def __str__(self) -> str:
        return f"comment by {self.author_id} on candidate {self.candidate_id}"


class ExportJob(BackgroundJob):
    """One export of a run, made in the background, downloaded from the export page.

    Its table is still ``relabel_exportjob``: the model moved to the review side with the
    exports, its data did not move.
    """

    # An export of a large run can take long (settings check that the broker's visibility
    # timeout exceeds it, so a running export is never handed to a second worker).
    SOFT_TIME_LIMIT = settings.AGENTHER_EXPORT_TIME_LIMIT - 60
    TIME_LIMIT = settings.AGENTHER_EXPORT_TIME_LIMIT

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
