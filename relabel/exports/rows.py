"""Which rows an export holds, streamed from the database in chunks.

Nothing here loads a whole run: every iterator uses ``.iterator(chunk_size=...)`` with the
related rows each exported row needs (run, trajectory, dataset, run item, steps, verdicts)
fetched once per chunk, so memory stays flat whatever the size of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from relabel.exports.options import ExportOptions
from relabel.models import Candidate, Run, RunItem, Step, Trajectory
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


def _steps_prefetch(lookup: str) -> Prefetch:
    # observation_full is the uncut observation: exports use the excerpt, cut again to the budget.
    steps = Step.objects.defer("observation_full", "metadata").order_by("index")
    return Prefetch(lookup, queryset=steps)


def _with_related(qs: QuerySet) -> QuerySet:
    return qs.select_related("run", "item", "trajectory", "trajectory__dataset").defer(
        "trajectory__raw", "trajectory__metadata", "attempts"
    )


def exported_candidates(run: Run, options: ExportOptions) -> QuerySet[Candidate]:
    """The approved candidates of ``run`` that pass the filters, in a stable order."""
    qs = Candidate.objects.filter(run=run).filter(approved_q())
    if options.human_verified_only:
        qs = qs.filter(human_verified_q())
    if options.min_confidence is not None:
        qs = qs.filter(confidence__gte=options.min_confidence)
    return qs.order_by("id")


def iter_candidates(qs: QuerySet[Candidate], *, with_steps: bool = True) -> Iterator[Candidate]:
    prefetches: list[Any] = [
        Prefetch("verdicts", queryset=Verdict.objects.select_related("rater").order_by("id"))
    ]
    if with_steps:
        prefetches.append(_steps_prefetch("trajectory__steps"))
    return _with_related(qs).prefetch_related(*prefetches).iterator(chunk_size=CHUNK_SIZE)


def success_items(run: Run) -> QuerySet[RunItem]:
    """The run's successful trajectories: the success-only baseline."""
    return RunItem.objects.filter(run=run, status=RunItem.Status.SUCCESS).order_by("id")


def discarded_items(run: Run) -> QuerySet[RunItem]:
    return RunItem.objects.filter(run=run, status=RunItem.Status.DISCARDED).order_by("id")


def iter_items(qs: QuerySet[RunItem], *, with_steps: bool = True) -> Iterator[RunItem]:
    qs = qs.select_related("run", "trajectory", "trajectory__dataset").defer(
        "trajectory__raw", "trajectory__metadata"
    )
    if with_steps:
        qs = qs.prefetch_related(_steps_prefetch("trajectory__steps"))
    return qs.iterator(chunk_size=CHUNK_SIZE)


def iter_trajectories(qs: QuerySet[Trajectory]) -> Iterator[Trajectory]:
    qs = qs.select_related("dataset").defer("raw", "metadata")
    return qs.prefetch_related(_steps_prefetch("steps")).iterator(chunk_size=CHUNK_SIZE)


def steps_of(trajectory: Trajectory) -> list[Step]:
    """The prefetched steps (already ordered by index)."""
    return list(trajectory.steps.all())


def effective_verdicts(candidate: Candidate) -> list[Verdict]:
    """The candidate's verdicts that still stand: undos and what they undid are left out."""
    verdicts = list(candidate.verdicts.all())
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
        "dataset": trajectory.dataset.name,
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
        "dataset": trajectory.dataset.name,
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
