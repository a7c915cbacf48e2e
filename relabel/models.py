"""Datasets, trajectories, runs and what the pipeline produces for each trajectory.

Storage of large observations: a step keeps an excerpt of its observation (at most
``Step.EXCERPT_CHARS`` characters) as plain text, which is what prompts and reviewers use, and the
full observation zlib-compressed beside it only when it was longer. The whole source record of a
trajectory is kept zlib-compressed in ``Trajectory.raw`` so that nothing is ever lost.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, Q, Sum
from django.utils import timezone

from relabel.config import DEFAULTS, check_review
from relabel.signals import run_finished

logger = logging.getLogger("agenther")


def compress_json(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, ensure_ascii=False).encode(), level=6)


def decompress_json(blob: bytes | memoryview | None) -> Any:
    if not blob:
        return None
    return json.loads(zlib.decompress(bytes(blob)))


def compress_text(text: str) -> bytes:
    return zlib.compress(text.encode(), level=6)


def decompress_text(blob: bytes | memoryview | None) -> str:
    if not blob:
        return ""
    return zlib.decompress(bytes(blob)).decode()


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True, help_text="A short unique name.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TrajectoryQuerySet(models.QuerySet):
    def failures(self) -> TrajectoryQuerySet:
        return self.filter(success=False)

    def successes(self) -> TrajectoryQuerySet:
        return self.filter(success=True)

    def unknown_outcome(self) -> TrajectoryQuerySet:
        """Runs whose source recorded no outcome: the detection stage of a model run decides."""
        return self.filter(success__isnull=True)


class Trajectory(models.Model):
    """One agent run as a benchmark recorded it, normalised to goal + steps + outcome."""

    FORMATS = [
        ("agenther", "AgentHER JSON/JSONL"),
        ("browsergym", "BrowserGym / WebArena"),
        ("toolbench", "ToolBench / StableToolBench"),
        ("tau-bench", "tau-bench"),
        ("messages", "OpenAI messages / ShareGPT"),
        ("swe-agent", "SWE-agent .traj"),
        ("otel", "OpenTelemetry GenAI spans"),
        ("langfuse", "Langfuse trace export"),
        ("langsmith", "LangSmith runs"),
        ("anthropic", "Anthropic Messages"),
        ("openai-responses", "OpenAI Responses API items"),
    ]

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="trajectories")
    external_id = models.CharField(
        max_length=300, help_text="The source's own id: task folder, query id, task_id-trial..."
    )
    source_format = models.CharField(max_length=20, choices=FORMATS)
    source_file = models.CharField(
        max_length=500, blank=True, help_text="Where it was imported from."
    )
    goal = models.TextField(help_text="The original instruction the agent was given.")
    system_prompt = models.TextField(blank=True, help_text="The agent's system prompt, if any.")
    tools = models.JSONField(
        default=list, blank=True, help_text="Tool schemas offered to the agent (OpenAI form)."
    )
    final_answer = models.TextField(blank=True)
    success = models.BooleanField(
        null=True,
        help_text="True only for the benchmark's full reward; empty when the source recorded no "
        "outcome (the detection stage of a model run decides it).",
    )
    reward = models.FloatField(null=True, blank=True, help_text="The benchmark's reward, if any.")
    raw_label = models.CharField(
        max_length=200, blank=True, help_text="The benchmark's own outcome label, verbatim."
    )
    failure_reason = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    raw = models.BinaryField(help_text="The whole source record, zlib-compressed JSON.")
    imported_at = models.DateTimeField(auto_now_add=True)

    objects = TrajectoryQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="uniq_trajectory_id")
        ]
        indexes = [models.Index(fields=["dataset", "success"])]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.external_id}"

    @property
    def raw_record(self) -> Any:
        return decompress_json(self.raw)

    def ordered_steps(self) -> models.QuerySet[Step]:
        return self.steps.order_by("index")


class Step(models.Model):
    """One assistant turn: its thought, the action it took, and what came back.

    ``action`` empty means a plain message (no tool call). ``observation_role`` says who answered:
    a tool/environment ("tool") or a person or simulated user ("user").
    """

    EXCERPT_CHARS = 12_000
    OBSERVATION_ROLES = [("tool", "tool or environment"), ("user", "user")]

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField(help_text="0-based position in the trajectory.")
    thought = models.TextField(blank=True)
    action = models.CharField(max_length=300, blank=True, help_text="Tool or action name.")
    action_input = models.JSONField(default=dict, blank=True)
    call_id = models.CharField(max_length=100, blank=True, help_text="The source's tool-call id.")
    observation = models.TextField(blank=True, help_text="The observation, cut to EXCERPT_CHARS.")
    observation_role = models.CharField(max_length=10, choices=OBSERVATION_ROLES, default="tool")
    observation_chars = models.PositiveIntegerField(default=0, help_text="Full length.")
    observation_full = models.BinaryField(
        null=True, blank=True, help_text="The full observation, zlib-compressed, when cut."
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trajectory", "index"], name="uniq_step_index")
        ]

    def __str__(self) -> str:
        return f"step {self.index} of {self.trajectory_id}"

    @classmethod
    def build(cls, *, observation: str = "", **fields: Any) -> Step:
        """A step with its observation stored as excerpt + compressed full text."""
        step = cls(**fields)
        step.set_observation(observation)
        return step

    def set_observation(self, text: str) -> None:
        text = text or ""
        self.observation_chars = len(text)
        self.observation = text[: self.EXCERPT_CHARS]
        self.observation_full = compress_text(text) if len(text) > self.EXCERPT_CHARS else None

    @property
    def full_observation(self) -> str:
        return decompress_text(self.observation_full) if self.observation_full else self.observation

    @property
    def is_truncated(self) -> bool:
        return self.observation_full is not None

    @property
    def tool_call_id(self) -> str:
        return self.call_id or f"call_{self.trajectory_id}_{self.index}"


class Run(models.Model):
    """One dataset under one frozen configuration (``config``, see relabel.config)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FINISHED = "finished"
        INTERRUPTED = "interrupted"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=20, help_text="rules or openai")
    config = models.JSONField(help_text="The frozen configuration: models, judges, thresholds...")
    prompt_version = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    pending_items = models.IntegerField(
        default=0,
        help_text="Items not processed yet: kept in each result's transaction, so finishing a "
        "run reads one row instead of scanning its items after every task.",
    )
    batch_ticket = models.CharField(
        max_length=40,
        blank=True,
        help_text="A run through the Batch API: the current chain of checks (a resume starts a "
        "new one and the older one stops).",
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} on {self.dataset.name}"

    @property
    def accept_threshold(self) -> float:
        return float(self.config["accept_threshold"])

    @property
    def reject_threshold(self) -> float:
        return float(self.config["reject_threshold"])

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.RUNNING)

    def review_settings(self) -> dict[str, Any]:
        """The run's review section over the defaults, checked (a bad value names its key)."""
        review = {**DEFAULTS["review"], **(self.config.get("review") or {})}
        check_review(review, where=f"run {self.pk}")
        return review

    def counts(self) -> RunCounts:
        """Where the run stands: its items by outcome and its candidates by gate and approval."""
        return RunCounts(
            **RunItem.objects.filter(run=self).counts(),
            **Candidate.objects.filter(run=self).counts(),
        )

    def finish_if_done(self) -> bool:
        """Marks the run finished once no item waits to be processed, and says so (once) to
        whoever listens (the review side fills its queue), in the same transaction: a run is
        never seen finished with its queue missing.

        This runs after every task: it reads the run's counter of pending items (one row), and
        only when that says none are left does it look at the items themselves (once a run).
        """
        if Run.objects.filter(pk=self.pk, pending_items__gt=0).exists():
            return False
        if RunItem.objects.filter(run=self).pending().exists():
            self.recount_pending()  # the counter was wrong: trust the items
            return False
        with transaction.atomic():
            finished = Run.objects.filter(pk=self.pk, status=Run.Status.RUNNING).update(
                status=Run.Status.FINISHED, finished_at=timezone.now()
            )
            if finished:
                self.refresh_from_db(fields=["status", "finished_at"])
                self.announce_finished()
        return bool(finished)

    def announce_finished(self) -> None:
        """Sends ``run_finished``; receivers must be idempotent (a resume sends it again)."""
        run_finished.send(sender=Run, run=self)

    def recount_pending(self) -> int:
        """Sets the counter of pending items from the items (a scan: at start and resume only)."""
        self.pending_items = RunItem.objects.filter(run=self).pending().count()
        Run.objects.filter(pk=self.pk).update(pending_items=self.pending_items)
        return self.pending_items

    def start_batch_chain(self) -> str:
        """A new chain of batch checks (relabel.tasks.batches): any older one stops."""
        self.batch_ticket = uuid.uuid4().hex
        Run.objects.filter(pk=self.pk).update(batch_ticket=self.batch_ticket)
        return self.batch_ticket

    def pass_batch_ticket(self, ticket: str) -> str | None:
        """Hands the chain's ticket on to the next check; None when this check no longer holds
        it (a resume started another chain, or a duplicate delivery passed it already)."""
        successor = uuid.uuid4().hex
        passed = Run.objects.filter(pk=self.pk, batch_ticket=ticket).update(batch_ticket=successor)
        return successor if passed else None

    def interrupt(self, error: str) -> None:
        Run.objects.filter(pk=self.pk).update(status=Run.Status.INTERRUPTED, error=error[:4000])

    def reopen(self) -> None:
        Run.objects.filter(pk=self.pk).update(status=Run.Status.RUNNING, finished_at=None, error="")


@dataclass(frozen=True)
class RunCounts:
    """A run's counts, from two aggregate queries (``Run.counts``): the one source of every
    page, the run summary and the precision figures."""

    total: int
    done: int
    successes: int
    unknown: int
    set_aside: int
    discarded: int
    errors: int
    by_status: dict[str, int]
    candidates: int
    auto_accepted: int
    needs_review: int
    rejected: int
    approved: int

    @property
    def failures(self) -> int:
        return self.total - self.successes - self.unknown

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


class RunItemQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> RunItemQuerySet:
        return self.filter(run=run)

    def pending(self) -> RunItemQuerySet:
        """Not processed yet: what keeps a run from finishing."""
        return self.filter(status=RunItem.Status.PENDING)

    def unfinished(self) -> RunItemQuerySet:
        """Pending, or ended in an error: what a resume processes (again)."""
        return self.exclude(status__in=RunItem.FINAL_STATUSES)

    def claimable(self, now: Any, token: str = "") -> RunItemQuerySet:
        """Unfinished, and not leased by a worker that may still be working on it (unless
        under ``token``: the same task, delivered again)."""
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        if token:
            free |= Q(claim_token=token)
        return self.unfinished().filter(free)

    def counts(self) -> dict[str, Any]:
        """The items by status and by outcome, in one query.

        A trajectory whose source recorded no outcome is a success or a failure once a model's
        detection decided it (``is_failure``); until then, or when set aside undecided, it is
        neither: ``unknown``, so that successes + failures + unknown is every item.
        """
        per_status = {str(s): Count("id", filter=Q(status=s)) for s in RunItem.Status.values}
        unrecorded = Q(trajectory__success__isnull=True)
        succeeded = Q(trajectory__success=True) | (unrecorded & Q(is_failure=False))
        row = self.aggregate(
            **per_status,
            successes=Count("id", filter=succeeded),
            unknown=Count("id", filter=unrecorded & Q(is_failure__isnull=True)),
        )
        by_status = {s: row[s] for s in RunItem.Status.values if row[s]}
        return {
            "total": sum(by_status.values()),
            "done": sum(n for s, n in by_status.items() if s != RunItem.Status.PENDING),
            "successes": row["successes"],
            "unknown": row["unknown"],
            "set_aside": by_status.get(RunItem.Status.SET_ASIDE, 0),
            "discarded": by_status.get(RunItem.Status.DISCARDED, 0),
            "errors": by_status.get(RunItem.Status.ERROR, 0),
            "by_status": by_status,
        }


class RunItem(models.Model):
    """What one run did with one trajectory: detection, outcome extraction, and the result."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCESS = "success", "success (kept as baseline)"
        DISCARDED = "discarded", "discarded (severe failure)"
        CANDIDATE = "candidate", "candidate produced"
        NO_CANDIDATE = "no_candidate", "no acceptable goal found"
        SET_ASIDE = "set_aside", "outcome unknown, set aside"
        ERROR = "error"

    FINAL_STATUSES = [
        Status.SUCCESS,
        Status.DISCARDED,
        Status.CANDIDATE,
        Status.NO_CANDIDATE,
        Status.SET_ASIDE,
    ]

    FAILURE_TYPES = [
        ("constraint_violation", "constraint violation"),
        ("wrong_result", "wrong result"),
        ("incomplete", "incomplete"),
        ("tool_error", "tool error"),
        ("hallucination", "hallucination"),
        ("off_topic", "off topic"),
    ]

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items")
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="run_items")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    is_failure = models.BooleanField(null=True, help_text="From the benchmark's own signal first.")
    failure_type = models.CharField(max_length=30, choices=FAILURE_TYPES, blank=True)
    severity = models.FloatField(null=True, blank=True, help_text="0..1, 1 = catastrophic.")
    weight = models.FloatField(
        null=True, blank=True, help_text="Training weight, 1 - severity (kept separate)."
    )
    recoverable = models.BooleanField(null=True)
    detection = models.JSONField(default=dict, blank=True, help_text="Stage 1 output, verbatim.")
    outcome = models.JSONField(
        default=dict,
        blank=True,
        help_text="Stage 2: {achievements: [{text, steps}], observations, limitations}.",
    )
    reason = models.TextField(blank=True, help_text="Why discarded / no candidate.")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Task executions so far.")
    lease_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A worker claimed this item until then; after it, another may take it over.",
    )
    claim_token = models.CharField(
        max_length=40, blank=True, help_text="Which claim holds the lease (one per task batch)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = RunItemQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "trajectory"], name="uniq_run_item")]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"{self.trajectory_id} in run {self.run_id}: {self.status}"


class CandidateQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> CandidateQuerySet:
        return self.filter(run=run)

    def auto_accepted(self) -> CandidateQuerySet:
        return self.filter(gate=Candidate.Gate.AUTO_ACCEPTED)

    def needs_review(self) -> CandidateQuerySet:
        return self.filter(gate=Candidate.Gate.NEEDS_REVIEW)

    def rejected(self) -> CandidateQuerySet:
        return self.filter(gate=Candidate.Gate.REJECTED)

    def approved(self) -> CandidateQuerySet:
        """What is exported: the one home of the approval rule (see ``approved_q``)."""
        return self.filter(approved_q())

    def with_approval(self) -> CandidateQuerySet:
        """Each candidate annotated with ``approved`` (read by ``Candidate.is_approved``)."""
        return self.annotate(approved=ExpressionWrapper(approved_q(), output_field=BooleanField()))

    def counts(self) -> dict[str, int]:
        """The candidates by gate, and how many are approved, in one query."""
        gate = Candidate.Gate
        return self.aggregate(
            candidates=Count("id"),
            auto_accepted=Count("id", filter=Q(gate=gate.AUTO_ACCEPTED)),
            needs_review=Count("id", filter=Q(gate=gate.NEEDS_REVIEW)),
            rejected=Count("id", filter=Q(gate=gate.REJECTED)),
            approved=Count("id", filter=approved_q()),
        )


def approved_q() -> Q:
    """Approved (exportable): accepted or edited by the raters' majority, or auto-accepted by the
    gate and not rejected by them. ``review_state`` is the raters' majority (review side)."""
    state = Candidate.ReviewState
    by_people = Q(review_state__in=[state.ACCEPTED, state.EDITED])
    by_gate = Q(gate=Candidate.Gate.AUTO_ACCEPTED) & ~Q(review_state=state.REJECTED)
    return by_people | by_gate


class Candidate(models.Model):
    """A hindsight goal for one failed trajectory in one run, with how it was gated.

    ``judges`` holds one entry per panel judge:
    ``{"name", "model", "endpoint", "accept": bool, "confidence": float, "reason"}``.
    ``aggregation`` records how ``confidence`` was computed from the generator and the judges.
    The human outcome lives on the review side; ``final_goal`` is the goal to export (an edit
    replaces the generated one) and ``review_state`` caches the raters' majority, which the
    review side sets through ``record_review``.
    """

    class Gate(models.TextChoices):
        AUTO_ACCEPTED = "auto_accepted", "auto-accepted"
        NEEDS_REVIEW = "needs_review", "needs review"
        REJECTED = "rejected"

    class ReviewState(models.TextChoices):
        UNREVIEWED = "unreviewed"
        ACCEPTED = "accepted"
        EDITED = "edited"
        REJECTED = "rejected"

    item = models.OneToOneField(RunItem, on_delete=models.CASCADE, related_name="candidate")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="candidates")
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="candidates")
    hindsight_goal = models.TextField()
    rationale = models.TextField(blank=True)
    generator_confidence = models.FloatField(help_text="The relabeler's own confidence.")
    confidence = models.FloatField(help_text="Aggregated confidence the gate used.")
    aggregation = models.JSONField(default=dict, blank=True)
    judges = models.JSONField(default=list, blank=True)
    attempts = models.JSONField(
        default=list, blank=True, help_text="Every relabel attempt and why it was refused."
    )
    gate = models.CharField(max_length=20, choices=Gate.choices)
    gate_reason = models.TextField(blank=True)
    final_goal = models.TextField(help_text="The goal to export: the edit if a human edited it.")
    review_state = models.CharField(
        max_length=20, choices=ReviewState.choices, default=ReviewState.UNREVIEWED
    )
    consistency = models.JSONField(
        default=dict,
        blank=True,
        help_text="Stage 3b: {policy, method, findings, unresolved, flagged}; each finding "
        "{step, turn, span, quote, reason, source} (span: character offsets in that text).",
    )
    rewrites = models.JSONField(
        default=dict,
        blank=True,
        help_text="The agent's free text rewritten to fit the goal: {step index: thought, "
        "'final_answer': text}. The original text stays in Step and Trajectory.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CandidateQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["run", "gate", "confidence"]),
            models.Index(fields=["gate", "confidence", "id"]),
        ]

    def __str__(self) -> str:
        return f"candidate {self.pk} ({self.gate}, {self.confidence:.2f})"

    @property
    def is_approved(self) -> bool:
        """``approved_q`` for this candidate: the annotation of ``with_approval`` when the
        candidate was loaded with it, otherwise the same condition checked by the database."""
        annotated = self.__dict__.get("approved")
        if annotated is not None:
            return bool(annotated)
        return approved_q().check({"gate": self.gate, "review_state": self.review_state})

    @property
    def is_flagged(self) -> bool:
        """Some turn still refers to the original goal (stage 3b): never auto-accepted."""
        return bool((self.consistency or {}).get("flagged"))

    def rewritable_keys(self) -> set[str]:
        """The turns a person may rewrite ("3": step 3's thought, "final_answer"): those the
        pipeline rewrote, and the agent's free text it found referring to the original goal."""
        keys = set(self.rewrites or {})
        for finding in (self.consistency or {}).get("findings", []):
            if finding.get("turn") == "final_answer":
                keys.add("final_answer")
            elif finding.get("turn") == "thought" and isinstance(finding.get("step"), int):
                keys.add(str(finding["step"]))
        return keys

    def exported_text(self, key: str) -> str:
        """What an export holds for the turn ``key``: the rewrite, else the original text."""
        if key in (self.rewrites or {}):
            return self.rewrites[key]
        if key == "final_answer":
            return self.trajectory.final_answer
        step = self.trajectory.steps.filter(index=int(key)).values_list("thought", flat=True)
        return step.first() or ""

    def changed_rewrites(self, edited: dict[str, str]) -> dict[str, str]:
        """The turns of a person's edit that differ from what would be exported; a turn that is
        not rewritable raises ValueError naming it."""
        unknown = sorted(set(edited) - self.rewritable_keys())
        if unknown:
            raise ValueError(f"turn {unknown[0]!r} is not one of the rewritable turns")
        changed = {}
        for key, text in edited.items():
            text = str(text).replace("\r\n", "\n").strip()
            if text != self.exported_text(key).strip():
                changed[key] = text
        return changed

    def record_review(self, state: str, final_goal: str) -> None:
        """Stores the human outcome the review side computed (the raters' majority)."""
        self.review_state, self.final_goal = state, final_goal
        self.save(update_fields=["review_state", "final_goal"])


class LLMCallQuerySet(models.QuerySet):
    def totals(self) -> dict[str, Any]:
        """Calls, cached calls, tokens and cost, in one query."""
        row = self.aggregate(
            llm_calls=Count("id"),
            cached_calls=Count("id", filter=Q(cached=True)),
            prompt_tokens=Sum("prompt_tokens"),
            cached_tokens=Sum("cached_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        tokens = ("prompt_tokens", "cached_tokens", "completion_tokens")
        return {**row, **{k: row[k] or 0 for k in tokens}}


class LLMCall(models.Model):
    """Every call to a model endpoint, cached or not: the cost audit."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="llm_calls", null=True)
    trajectory = models.ForeignKey(Trajectory, on_delete=models.SET_NULL, null=True, blank=True)
    stage = models.CharField(max_length=30, help_text="detect, extract, relabel, judge:<name>")
    model = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=500)
    cache_key = models.CharField(max_length=64, db_index=True)
    cached = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(
        default=0,
        help_text="Prompt tokens the endpoint served from its prefix cache (part of prompt_tokens;"
        " usage.prompt_tokens_details.cached_tokens), priced at the cached rate.",
    )
    estimated_prompt_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LLMCallQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["run", "stage"])]

    def __str__(self) -> str:
        return f"{self.stage} call to {self.model} ({'cached' if self.cached else self.latency_ms})"


class LLMCacheEntry(models.Model):
    """A successful response, keyed by sha256 of (model, messages, parameters)."""

    key = models.CharField(max_length=64, unique=True)
    model = models.CharField(max_length=200)
    response = models.JSONField(help_text="Content and usage of the original call.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"cached {self.model} response {self.key[:12]}"


class Batch(models.Model):
    """Requests of a run's items sent as one file through an endpoint's Batch API.

    ``preparing``: its requests are recorded, the file is being uploaded (under a lease: a worker
    that died here leaves it to be adopted or dropped); ``submitted``: the endpoint has it as
    ``remote_id``; ``done``: its results were read into its requests, each item's own.
    """

    class State(models.TextChoices):
        PREPARING = "preparing"
        SUBMITTED = "submitted"
        DONE = "done"

    OPEN = (State.PREPARING, State.SUBMITTED)  # not read yet: being sent, or at the endpoint

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches")
    endpoint = models.JSONField(help_text="The stage's or judge's endpoint entry of the config.")
    model = models.CharField(max_length=200)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PREPARING)
    remote_id = models.CharField(max_length=200, blank=True, help_text="The endpoint's batch id.")
    remote_status = models.CharField(max_length=30, blank=True)
    input_file_id = models.CharField(max_length=200, blank=True)
    output_file_id = models.CharField(max_length=200, blank=True)
    error_file_id = models.CharField(max_length=200, blank=True)
    size = models.PositiveIntegerField(default=0, help_text="Requests in the file.")
    lease_until = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["run", "state"])]

    def __str__(self) -> str:
        return f"batch {self.pk} of run {self.run_id} ({self.state}, {self.size} requests)"


class BatchRequest(models.Model):
    """One request line of a Batch: which item and stage it is for, and, once read, its answer."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="requests")
    item = models.ForeignKey(RunItem, on_delete=models.CASCADE, related_name="batch_requests")
    stage = models.CharField(max_length=30, help_text="detect, extract, relabel, judge:<name>")
    schema = models.CharField(max_length=30, help_text="The prompt's stage (its reply schema).")
    cache_key = models.CharField(max_length=64)
    estimated_prompt_tokens = models.PositiveIntegerField(default=0)
    answered = models.BooleanField(default=False)
    content = models.TextField(blank=True, help_text="The reply, when it came.")
    error = models.TextField(blank=True, help_text="Why this request got no usable reply.")
    call = models.OneToOneField(LLMCall, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        indexes = [models.Index(fields=["item", "answered"])]

    def __str__(self) -> str:
        return f"{self.stage} request of item {self.item_id} in batch {self.batch_id}"

    @property
    def custom_id(self) -> str:
        return f"agenther-{self.pk}"


class JobError(Exception):
    """A job that cannot be done for a reason its user can act on: shown to them as it is."""


JobPerformer = Callable[["BackgroundJob"], dict[str, Any]]


class BackgroundJob(models.Model):
    """Work a user started from a page (an import, an export) and follows there.

    One worker claims it (``claim``) under a lease as long as its task may live, reports
    progress, and ends it with ``finish`` (the result fields) or ``fail`` (a message for the
    user). A second delivery of the task while the first may still be working is refused (it
    retries once the lease is over: a worker that died is taken over, one that lives is not).
    What the work is, each app says in its ``ready()`` with ``performed_by``: the performer takes
    the job and returns the fields to store, or raises JobError. ``relabel.tasks.jobs`` runs any
    job by its model and id.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ACTIVE = (Status.PENDING, Status.RUNNING)
    # Seconds the task running a job may take (None: the settings' default task limits).
    SOFT_TIME_LIMIT: ClassVar[int | None] = None
    TIME_LIMIT: ClassVar[int | None] = None
    # Progress is written at most this often (seconds), and always when the work is done.
    PROGRESS_INTERVAL: ClassVar[float] = 0.5
    performer: ClassVar[JobPerformer | None] = None

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A worker holds the job until then (its task's time limit).",
    )

    class Meta:
        abstract = True

    @classmethod
    def performed_by(cls, performer: JobPerformer) -> None:
        cls.performer = staticmethod(performer)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def _update(self, **fields: Any) -> int:
        for name, value in fields.items():
            setattr(self, name, value)
        return type(self).objects.filter(pk=self.pk).update(**fields)

    @classmethod
    def time_limit(cls) -> int:
        """Seconds its task may run before the worker kills it: no lease needs to be longer."""
        return int(cls.TIME_LIMIT or settings.CELERY_TASK_TIME_LIMIT)

    def claim(self) -> bool:
        """Takes the job: pending, or running under a lease that is over (its worker died)."""
        now = timezone.now()
        lapsed = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        free = Q(status=self.Status.PENDING) | (Q(status=self.Status.RUNNING) & lapsed)
        lease = now + timedelta(seconds=self.time_limit())
        fields = {"status": self.Status.RUNNING, "error": "", "progress": 0, "lease_until": lease}
        claimed = type(self).objects.filter(free, pk=self.pk).update(**fields)
        if claimed:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(claimed)

    def busy_for(self) -> float:
        """Seconds until another worker's lease on this job is over (0: nobody holds it)."""
        self.refresh_from_db(fields=["status", "lease_until"])
        if self.status != self.Status.RUNNING or self.lease_until is None:
            return 0.0
        return max(0.0, (self.lease_until - timezone.now()).total_seconds())

    def report_progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - getattr(self, "_reported_at", 0.0) < self.PROGRESS_INTERVAL:
            return
        self._reported_at = now
        self._update(progress=done, total=total)

    def finish(self, **results: Any) -> None:
        now = timezone.now()
        self._update(status=self.Status.DONE, finished_at=now, lease_until=None, **results)

    def fail(self, error: str) -> None:
        now = timezone.now()
        self._update(status=self.Status.FAILED, error=error, finished_at=now, lease_until=None)

    def execute(self) -> float:
        """Claims the job, performs it and records how it ended; returns 0. A delivery of a job
        that has ended does nothing; one of a job another worker holds returns the seconds
        until that worker's lease is over (the task tries again then)."""
        if not self.claim():
            return self.busy_for()
        try:
            results = self.performer(self)
        except JobError as exc:
            self.fail(str(exc))
        except Exception as exc:  # a bug, not bad input: the job must still end, and say so
            logger.exception("%s %s failed", self._meta.label, self.pk)
            self.fail(f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.finish(**results)
        return 0.0


class ImportJob(BackgroundJob):
    """A trajectory file uploaded through the UI and imported in the background."""

    dataset_name = models.CharField(max_length=200)
    format = models.CharField(max_length=20, default="auto")
    mapping = models.JSONField(
        default=dict, blank=True, help_text="Field mapping for the messages format (goal=...)."
    )
    success_score = models.CharField(
        max_length=200,
        blank=True,
        help_text="NAME>=VALUE: the Langfuse score or LangSmith feedback that means success.",
    )
    path = models.CharField(max_length=500, help_text="The uploaded file, on the server.")
    original_name = models.CharField(max_length=300)
    summary = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"import of {self.original_name} into {self.dataset_name}: {self.status}"

    @property
    def file_reports(self) -> list[dict[str, Any]]:
        """What each file was read as and why (jobs of older versions kept only a count)."""
        files = (self.summary or {}).get("files")
        return files if isinstance(files, list) else []
