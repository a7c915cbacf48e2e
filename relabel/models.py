"""Datasets, trajectories, runs and what the pipeline produces for each trajectory.

Storage of large observations: a step keeps an excerpt of its observation (at most
``Step.EXCERPT_CHARS`` characters) as plain text, which is what prompts and reviewers use, and the
full observation zlib-compressed beside it only when it was longer. The whole source record of a
trajectory is kept zlib-compressed in ``Trajectory.raw`` so that nothing is ever lost.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


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


class RunItemQuerySet(models.QuerySet):
    def for_run(self, run: Run) -> RunItemQuerySet:
        return self.filter(run=run)

    def pending(self) -> RunItemQuerySet:
        return self.exclude(status__in=RunItem.FINAL_STATUSES)

    def claimable(self, now: Any, token: str = "") -> RunItemQuerySet:
        """Not finished, and not leased by a worker that may still be working on it (unless
        under ``token``: the same task, delivered again)."""
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        if token:
            free |= Q(claim_token=token)
        return self.pending().filter(free)


class RunItem(models.Model):
    """What one run did with one trajectory: detection, outcome extraction, and the result."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCESS = "success", "success (kept as baseline)"
        DISCARDED = "discarded", "discarded (severe failure)"
        CANDIDATE = "candidate", "candidate produced"
        NO_CANDIDATE = "no_candidate", "no acceptable goal found"
        ERROR = "error"

    FINAL_STATUSES = [Status.SUCCESS, Status.DISCARDED, Status.CANDIDATE, Status.NO_CANDIDATE]

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


class Candidate(models.Model):
    """A hindsight goal for one failed trajectory in one run, with how it was gated.

    ``judges`` holds one entry per panel judge:
    ``{"name", "model", "endpoint", "accept": bool, "confidence": float, "reason"}``.
    ``aggregation`` records how ``confidence`` was computed from the generator and the judges.
    The human outcome lives in review.Verdict; ``final_goal`` is the goal to export (an edit
    replaces the generated one) and ``review_state`` caches the latest human decision.
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
        """Exportable: auto-accepted and not rejected by a human, or accepted/edited by one."""
        if self.review_state in (self.ReviewState.ACCEPTED, self.ReviewState.EDITED):
            return True
        return self.gate == self.Gate.AUTO_ACCEPTED and self.review_state != "rejected"


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
    estimated_prompt_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

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


class ImportJob(models.Model):
    """A trajectory file uploaded through the UI and imported in the background."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

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
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"import of {self.original_name} into {self.dataset_name}: {self.status}"

    @property
    def file_reports(self) -> list[dict[str, Any]]:
        """What each file was read as and why (jobs of older versions kept only a count)."""
        files = (self.summary or {}).get("files")
        return files if isinstance(files, list) else []


class ExportJob(models.Model):
    """One export of a run, made in the background, downloaded from the export page."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=20)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    directory = models.CharField(max_length=500, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=["sft", "dpo", "sharegpt", "verdicts"]),
                name="export_format_known",
            )
        ]

    def __str__(self) -> str:
        return f"{self.format} export of run {self.run_id}: {self.status}"
