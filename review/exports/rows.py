"""Which rows an export holds, streamed from the database in chunks.

Nothing here loads a whole run: every iterator uses ``.iterator(chunk_size=...)``, joins what
each row needs (trajectory, dataset, run item) and fetches the steps and verdicts of a whole
chunk in one query each, so memory stays flat whatever the size of the run.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from relabel.models import Candidate, Run, RunItem, Step, Trajectory
from review.exports.options import ExportOptions
from review.models import Verdict

CHUNK_SIZE = 500

# Verdict decisions that say a person looked at the goal and found it good.
APPROVING_DECISIONS = [
    Verdict.Decision.ACCEPT,
    Verdict.Decision.EDIT,
    Verdict.Decision.VALID,
]
COUNTED_DECISIONS = APPROVING_DECISIONS + [Verdict.Decision.REJECT, Verdict.Decision.INVALID]


def approved_q() -> Q:
    """Candidate.is_approved as a filter: accepted/edited by a person, or auto-accepted and not
    rejected by one."""
    human_yes = Q(review_state__in=[Candidate.ReviewState.ACCEPTED, Candidate.ReviewState.EDITED])
    auto = Q(gate=Candidate.Gate.AUTO_ACCEPTED) & ~Q(review_state=Candidate.ReviewState.REJECTED)
    return human_yes | auto


def human_verified_q() -> Q:
    """A person accepted or edited it in curation, or found it valid in a blind audit (and did
    not undo that)."""
    approving = Verdict.objects.filter(
        candidate=OuterRef("pk"),
        decision__in=APPROVING_DECISIONS,
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


def _attach_steps(trajectories: list[Trajectory]) -> None:
    """One query for the steps of a chunk of trajectories (the observation excerpt only)."""
    by_trajectory: dict[int, list[StepRow]] = defaultdict(list)
    steps = Step.objects.filter(trajectory_id__in={t.pk for t in trajectories})
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
    qs = Candidate.objects.filter(run=run).filter(approved_q())
    if options.human_verified_only:
        qs = qs.filter(human_verified_q())
    if options.min_confidence is not None:
        qs = qs.filter(confidence__gte=options.min_confidence)
    return qs.order_by("id")


def iter_candidates(qs: QuerySet[Candidate], *, with_steps: bool = True) -> Iterator[Candidate]:
    qs = (
        qs.select_related("item", "trajectory")
        .annotate(dataset_name=DATASET_NAME, opening_message=OPENING_MESSAGE)
        .defer(*TRAJECTORY_DEFERRED, "attempts", "aggregation", "item__detection", "item__outcome")
    )

    def attach(chunk: list[Candidate]) -> None:
        _attach_verdicts(chunk)
        if with_steps:
            _attach_steps([c.trajectory for c in chunk])

    return _in_chunks(qs, attach)


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
    """The candidate's verdicts that still stand: undos and what they undid are left out."""
    verdicts = verdicts_of(candidate)
    undone = {v.undoes_id for v in verdicts if v.undoes_id}
    return [v for v in verdicts if v.id not in undone and v.decision in COUNTED_DECISIONS]


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    return {
        "id": verdict.id,
        "rater": verdict.rater.get_username(),
        "kind": verdict.kind,
        "decision": verdict.decision,
        "edited_goal": verdict.edited_goal or None,
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
        "verified_by": {"method": "benchmark", "raters": []},
        "failure_type": None,
        "severity": item.severity,
        "weight": success_weight(item),
        "original_goal": trajectory.goal,
        "goal_edited": False,
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
            (candidate_row(c, options) for c in iter_candidates(candidates)),
        )
    ]
    if options.include_successes:
        items = success_items(run)
        out.append((names[1], items.count(), (success_row(i, options) for i in iter_items(items))))
    return out
