"""Which rows an export holds, streamed from the database in chunks.

Nothing here loads a whole run: every iterator uses ``.iterator(chunk_size=...)``, joins what
each row needs (trajectory, dataset, run item) and fetches the steps and verdicts of a whole
chunk in one query each, so memory stays flat whatever the size of the run.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT, KeyTextTransform

from relabel.models import Candidate, Run, RunItem, Step, Trajectory
from review import majority
from review.exports.options import ExportOptions
from review.models import Verdict

CHUNK_SIZE = 500


def human_verified_q() -> Q:
    """A person accepted or edited it in curation, or found it valid in a blind audit (and did
    not undo that)."""
    approving = Verdict.objects.filter(
        candidate=OuterRef("pk"),
        decision__in=majority.APPROVING,
        undone_by__isnull=True,
    )
    accepted = Q(review_state__in=[Candidate.ReviewState.ACCEPTED, Candidate.ReviewState.EDITED])
    return accepted | Q(Exists(approving))


STEP_FIELDS = (
    "trajectory_id",
    "index",
    "thought",
    "action",
    "action_input",
    "call_id",
    "observation",
    "observation_role",
    "speaker",  # the agent that took the step, in a multi-agent log (an annotation)
)
# The uncut observation and the source record are never exported: the excerpt, cut again to the
# budget, is what rows hold, so the big blobs stay in the database.
TRAJECTORY_DEFERRED = ("trajectory__raw", "trajectory__metadata")
# Rows carry their dataset's name; a joined column is cheaper than a Dataset instance per row.
DATASET_NAME = F("trajectory__dataset__name")
# The source's own first user message, when it is not the goal (relabel.chat places the goal);
# one key of the deferred metadata, read in SQL.
OPENING_MESSAGE = KeyTextTransform("opening_message", "trajectory__metadata")


class StepRow:
    """A step as relabel.chat reads it, without the cost of a model instance (steps are most
    of an export's rows). ``tool_call_id`` is the model's own property, so ids cannot drift."""

    __slots__ = STEP_FIELDS
    tool_call_id = Step.tool_call_id

    def __init__(self, values: tuple[Any, ...]):
        for name, value in zip(STEP_FIELDS, values, strict=True):
            setattr(self, name, value)

    def with_thought(self, thought: str) -> StepRow:
        """A copy whose thought is ``thought``; everything the environment recorded (action,
        arguments, call id, observation) is the same object, so it cannot change."""
        row = StepRow(tuple(getattr(self, name) for name in STEP_FIELDS))
        row.thought = thought
        return row


def _attach_steps(trajectories: list[Trajectory]) -> None:
    """One query for the steps of a chunk of trajectories (the observation excerpt only)."""
    by_trajectory: dict[int, list[StepRow]] = defaultdict(list)
    steps = Step.objects.filter(trajectory_id__in={t.pk for t in trajectories})
    steps = steps.annotate(speaker=KT("metadata__speaker"))
    for values in steps.order_by("trajectory_id", "index").values_list(*STEP_FIELDS):
        by_trajectory[values[0]].append(StepRow(values))
    for trajectory in trajectories:
        trajectory._export_steps = by_trajectory.get(trajectory.pk, [])


def _attach_verdicts(candidates: list[Candidate]) -> None:
    by_candidate: dict[int, list[Verdict]] = defaultdict(list)
    verdicts = Verdict.objects.filter(candidate_id__in={c.pk for c in candidates})
    for verdict in verdicts.select_related("rater").order_by("id"):
        by_candidate[verdict.candidate_id].append(verdict)
    for candidate in candidates:
        candidate._export_verdicts = by_candidate.get(candidate.pk, [])


def _in_chunks(qs: QuerySet, attach: Callable[[list[Any]], None]) -> Iterator[Any]:
    """Streams ``qs`` and gives each chunk its related rows in one query per relation, rather
    than per row (prefetch_related builds a queryset per object, which dominated the time)."""
    for chunk in itertools.batched(qs.iterator(chunk_size=CHUNK_SIZE), CHUNK_SIZE):
        attach(list(chunk))
        yield from chunk


def exported_candidates(run: Run, options: ExportOptions) -> QuerySet[Candidate]:
    """The approved candidates of ``run`` that pass the filters, in a stable order."""
    qs = Candidate.objects.filter(run=run).approved()
    if options.human_verified_only:
        qs = qs.filter(human_verified_q())
    if options.min_confidence is not None:
        qs = qs.filter(confidence__gte=options.min_confidence)
    return qs.order_by("id")


def iter_candidates(
    qs: QuerySet[Candidate], *, with_steps: bool = True, options: ExportOptions | None = None
) -> Iterator[Candidate]:
    """The candidates with their verdicts and (``with_steps``) their steps as exported: the
    rewritten turns overlaid (``candidate_steps``). With ``options.consistent_only``, those
    with unresolved consistency findings are left out."""
    qs = (
        qs.select_related("item", "trajectory")
        .annotate(dataset_name=DATASET_NAME, opening_message=OPENING_MESSAGE)
        .defer(*TRAJECTORY_DEFERRED, "attempts", "aggregation", "item__detection", "item__outcome")
    )

    def attach(chunk: list[Candidate]) -> None:
        _attach_verdicts(chunk)
        if with_steps:
            _attach_steps([c.trajectory for c in chunk])
            for candidate in chunk:
                _overlay_rewrites(candidate)

    candidates = _in_chunks(qs, attach)
    if options is not None and options.consistent_only:
        return (c for c in candidates if not row_consistency(c).flagged)
    return candidates


def success_items(run: Run) -> QuerySet[RunItem]:
    """The run's successful trajectories: the success-only baseline."""
    return RunItem.objects.filter(run=run, status=RunItem.Status.SUCCESS).order_by("id")


def discarded_items(run: Run) -> QuerySet[RunItem]:
    return RunItem.objects.filter(run=run, status=RunItem.Status.DISCARDED).order_by("id")


def iter_items(qs: QuerySet[RunItem], *, with_steps: bool = True) -> Iterator[RunItem]:
    qs = (
        qs.select_related("trajectory")
        .annotate(dataset_name=DATASET_NAME, opening_message=OPENING_MESSAGE)
        .defer(*TRAJECTORY_DEFERRED, "detection", "outcome")
    )

    def attach(chunk: list[RunItem]) -> None:
        if with_steps:
            _attach_steps([i.trajectory for i in chunk])

    return _in_chunks(qs, attach)


def steps_of(trajectory: Trajectory) -> list[StepRow]:
    """The steps fetched with the trajectory's chunk, ordered by index."""
    return trajectory._export_steps


def verdicts_of(candidate: Candidate) -> list[Verdict]:
    """Every verdict on the candidate, oldest first, fetched with its chunk."""
    return candidate._export_verdicts


def effective_verdicts(candidate: Candidate) -> list[Verdict]:
    """The candidate's verdicts that still stand (review.majority's cancellation rule): undos
    and what they undid are left out, skips too."""
    verdicts = verdicts_of(candidate)
    cancelled = majority.cancelled_ids(verdicts)
    return [v for v in verdicts if v.id not in cancelled and v.decision in majority.STRICT]


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    return {
        "id": verdict.id,
        "rater": verdict.rater.get_username(),
        "kind": verdict.kind,
        "decision": verdict.decision,
        "edited_goal": verdict.edited_goal or None,
        "edited_rewrites": verdict.edited_rewrites or {},
        "reason_code": verdict.reason_code or None,
        "reason": verdict.reason or None,
        "undoes": verdict.undoes_id,
        "source": verdict.source,
        "at": verdict.created_at.isoformat(),
    }


def verified_by(candidate: Candidate) -> dict[str, Any]:
    """How the candidate came to be exported: by the gate alone, or by which people and how."""
    people = [
        {"rater": v.rater.get_username(), "decision": v.decision, "kind": v.kind}
        for v in effective_verdicts(candidate)
    ]
    return {"method": "human" if people else "auto", "raters": people}


def provenance(candidate: Candidate) -> dict[str, Any]:
    """The metadata carried by every exported row of a candidate."""
    trajectory, item = candidate.trajectory, candidate.item
    return {
        "kind": "hindsight",
        "trajectory": trajectory.external_id,
        "dataset": candidate.dataset_name,
        "source_format": trajectory.source_format,
        "run": candidate.run_id,
        "candidate": candidate.id,
        "confidence": candidate.confidence,
        "gate": candidate.gate,
        "review_state": candidate.review_state,
        "verified_by": verified_by(candidate),
        "failure_type": item.failure_type or None,
        "severity": item.severity,
        "weight": item.weight,
        "original_goal": trajectory.goal,
        "goal_edited": candidate.final_goal != candidate.hindsight_goal,
        **consistency_metadata(candidate),
    }


def success_provenance(item: RunItem) -> dict[str, Any]:
    """Metadata of a success-only baseline row, with the same keys as ``provenance``."""
    trajectory = item.trajectory
    return {
        "kind": "success",
        "trajectory": trajectory.external_id,
        "dataset": item.dataset_name,
        "source_format": trajectory.source_format,
        "run": item.run_id,
        "candidate": None,
        "confidence": None,
        "gate": None,
        "review_state": None,
        # A run without a recorded outcome is a success because the detection stage said so.
        "verified_by": {"method": "benchmark" if trajectory.success else "model", "raters": []},
        "failure_type": None,
        "severity": item.severity,
        "weight": success_weight(item),
        "original_goal": trajectory.goal,
        "goal_edited": False,
        "rewritten_steps": [],
        "final_answer_rewritten": False,
        "consistency": {"policy": None, "flagged": False, "findings": []},
    }


def candidate_weight(candidate: Candidate) -> float:
    """The training weight (1 - severity); a missing weight trains at full strength."""
    weight = candidate.item.weight
    return 1.0 if weight is None else float(weight)


def success_weight(item: RunItem) -> float:
    return 1.0 if item.weight is None else float(item.weight)


FileSpec = tuple[str, int, Iterator[dict[str, Any]]]


def candidate_and_success_files(
    run: Run,
    options: ExportOptions,
    *,
    names: tuple[str, str],
    candidate_row: Callable[[Candidate, ExportOptions], dict[str, Any]],
    success_row: Callable[[RunItem, ExportOptions], dict[str, Any]],
) -> list[FileSpec]:
    """(file name, expected rows, row iterator) for a per-trajectory format: the approved
    candidates, and the run's successes in a separate file when asked for."""
    candidates = exported_candidates(run, options)
    out = [
        (
            names[0],
            candidates.count(),
            (candidate_row(c, options) for c in iter_candidates(candidates, options=options)),
        )
    ]
    if options.include_successes:
        items = success_items(run)
        out.append((names[1], items.count(), (success_row(i, options) for i in iter_items(items))))
    return out


# -- consistency (stage 3b): rewritten turns and what still refers to the original goal -------


@dataclass(frozen=True)
class RowConsistency:
    """How a candidate's row stands with the consistency check, as exported.

    ``rewrites``: the generated rewrite of each turn, replaced by a person's edit where the
    candidate's exported goal is an edit (review.majority: the latest approving edit). A finding
    is resolved when its turn was rewritten and nothing is left unresolved on it, or when a
    person rewrote that turn; a user's turn is never rewritten, so its findings stay. A
    person's accept does not clear a finding: ``--consistent-only`` is the strict cut.
    """

    policy: str | None
    rewrites: dict[str, str]
    edited: frozenset[str]
    findings: list[dict[str, Any]]

    @property
    def flagged(self) -> bool:
        return any(not f["resolved"] for f in self.findings)


def _turn_key(finding: dict[str, Any]) -> str:
    """The key of the turn a finding is in, as ``Candidate.rewrites`` keys them."""
    turn, step = finding.get("turn"), finding.get("step")
    if turn == "final_answer":
        return "final_answer"
    return str(step) if turn == "thought" else f"{turn}:{step}"


def edited_rewrites(candidate: Candidate) -> dict[str, str]:
    """The rewrites of the latest standing edit, when the exported goal is an edit."""
    if candidate.review_state != Candidate.ReviewState.EDITED:
        return {}
    edits = [v for v in effective_verdicts(candidate) if v.decision == "edit"]
    return dict(edits[-1].edited_rewrites or {}) if edits else {}


def row_consistency(candidate: Candidate) -> RowConsistency:
    """Computed once per candidate (the rows, the overlay and the filter share it)."""
    cached = candidate.__dict__.get("_row_consistency")
    if cached is not None:
        return cached
    record = candidate.consistency or {}
    edits = edited_rewrites(candidate)
    rewrites = {**(candidate.rewrites or {}), **edits}
    unresolved = [f for f in record.get("unresolved", []) if _turn_key(f) not in edits]
    left = {_turn_key(f) for f in unresolved}
    findings = []
    for finding in record.get("findings", []):
        key = _turn_key(finding)
        resolved = key in edits or (key in rewrites and key not in left)
        findings.append({**finding, "resolved": resolved})
    # What a rewrite itself brought in (absent from the original text) is listed too.
    listed = {_turn_key(f) for f in findings if not f["resolved"]}
    findings += [{**f, "resolved": False} for f in unresolved if _turn_key(f) not in listed]
    result = RowConsistency(record.get("policy"), rewrites, frozenset(edits), findings)
    candidate._row_consistency = result
    return result


def _overlay_rewrites(candidate: Candidate) -> None:
    """The candidate's own steps and final answer, with the rewritten turns in place of the
    originals (the trajectory's steps, shared with the DPO rejected side, stay as recorded)."""
    rewrites = row_consistency(candidate).rewrites
    steps = steps_of(candidate.trajectory)
    candidate._export_steps = [
        s.with_thought(rewrites[str(s.index)]) if str(s.index) in rewrites else s for s in steps
    ]
    final = candidate.trajectory.final_answer
    candidate._export_final_answer = rewrites.get("final_answer", final)


def candidate_steps(candidate: Candidate) -> list[StepRow]:
    """The steps of a candidate's row: the trajectory's, with its rewritten thoughts."""
    return candidate._export_steps


def candidate_final_answer(candidate: Candidate) -> str:
    return candidate._export_final_answer


def consistency_metadata(candidate: Candidate) -> dict[str, Any]:
    """``rewritten_steps``, ``final_answer_rewritten`` and ``consistency`` of a row's metadata."""
    state = row_consistency(candidate)
    steps = sorted(int(k) for k in state.rewrites if k.isdigit())
    return {
        "rewritten_steps": steps,
        "final_answer_rewritten": "final_answer" in state.rewrites,
        "consistency": {
            "policy": state.policy,
            "flagged": state.flagged,
            "findings": [_finding_metadata(f) for f in state.findings],
        },
    }


def _finding_metadata(finding: dict[str, Any]) -> dict[str, Any]:
    # The same keys and types in every row: the datasets library infers one schema for a file.
    span = finding.get("span") or [0, 0]
    return {
        "step": finding.get("step"),
        "turn": str(finding.get("turn", "")),
        "span": [int(span[0]), int(span[1])],
        "quote": str(finding.get("quote", "")),
        "reason": str(finding.get("reason", "")),
        "source": str(finding.get("source", "")),
        "resolved": bool(finding.get("resolved")),
    }


def consistency_counts(run: Run, options: ExportOptions) -> dict[str, int] | None:
    """For the manifest: rows (of the candidates the filters select) with rewritten turns, with
    unresolved findings (flagged), and left out by ``--consistent-only`` (excluded)."""
    if options.format == "verdicts":
        return None
    counts = {"rewritten": 0, "flagged": 0, "excluded": 0}
    # Only what the rule reads (and a person's edits): a pass over the run, not a second export.
    candidates = exported_candidates(run, options).only("consistency", "rewrites", "review_state")
    for candidate in _in_chunks(candidates, _attach_verdicts):
        state = row_consistency(candidate)
        counts["rewritten"] += bool(state.rewrites)
        if state.flagged and options.consistent_only:
            counts["excluded"] += 1
        elif state.flagged:
            counts["flagged"] += 1
    return counts
