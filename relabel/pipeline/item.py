"""One trajectory through the stages, and its result stored once.

``relabel_item`` is the pipeline in order: failure detection (relabel.pipeline.detect), outcome
extraction (extract), up to K relabel attempts (hindsight), the judge panel (judges), the
consistency of the whole trajectory with the chosen goal (consistency), then the gate (gate).
``process_item`` runs it on an item this worker has claimed and stores the result:
only the holder of the claim on an unfinished item writes it (a conditional UPDATE), and
Candidate is one-to-one with RunItem, so there is never a second candidate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from relabel.backends import Backend, ItemContext
from relabel.llm.client import CallLog
from relabel.models import Candidate, Run, RunItem, Step
from relabel.pipeline.claims import release_item
from relabel.pipeline.consistency import check_consistency
from relabel.pipeline.detect import Detection, detect_failure
from relabel.pipeline.extract import extract_outcome
from relabel.pipeline.gate import aggregate, gate
from relabel.pipeline.hindsight import relabel_attempts
from relabel.pipeline.judges import run_panel

logger = logging.getLogger("agenther.pipeline")


@dataclass(frozen=True)
class Processing:
    """What every item of one task shares: the run, its backend, and the exceptions that stop
    the task instead of failing one trajectory (database outages always; the task layer adds
    its own, such as Celery's soft time limit)."""

    run: Run
    backend: Backend
    interruptions: tuple[type[BaseException], ...] = ()

    @property
    def stops(self) -> tuple[type[BaseException], ...]:
        return (DatabaseError, *self.interruptions)


def process_item(work: Processing, item: RunItem, steps: list[Step]) -> str | None:
    """Runs the stages on one claimed item and stores the result; returns its status.

    A stage failing for good (an endpoint down after retries, malformed output) marks this item
    as an error with the reason; the run goes on. Database errors and the task's interruptions
    propagate (the task retries, or hands the rest on).
    """
    trajectory = item.trajectory
    log = CallLog(run_id=work.run.pk, trajectory_id=trajectory.pk)
    ctx = ItemContext(trajectory, steps, work.run.config, log)
    try:
        fields, candidate = relabel_item(work.backend, ctx)
    except work.stops:
        release_item(item.pk)  # the calls paid for are recorded already, as each returned
        raise
    except Exception as exc:
        # Recorded on the item (visible, retryable); a warning on stderr would only clutter
        # command output, `--json` above all.
        logger.info("run %s, trajectory %s: %s", work.run.pk, trajectory.pk, exc)
        fields = {"status": RunItem.Status.ERROR, "error": f"{type(exc).__name__}: {exc}"[:4000]}
        candidate = None
    return save_result(work.run, item, fields, candidate)


def save_result(
    run: Run, item: RunItem, fields: dict[str, Any], candidate: dict | None
) -> str | None:
    with transaction.atomic():
        # Only the holder of the claim on an unfinished item writes its result: a duplicate
        # delivery, or a worker whose lease expired and was taken over, writes nothing.
        held = RunItem.objects.filter(pk=item.pk, claim_token=item.claim_token)
        result = {**fields, "lease_until": None, "updated_at": timezone.now()}
        was_pending = held.pending().update(**result)
        if not was_pending and not held.unfinished().update(**result):
            return None
        if candidate is not None:
            Candidate.objects.create(item=item, run=run, trajectory=item.trajectory, **candidate)
        if was_pending:  # last: the run's row is locked only until this commits
            Run.objects.filter(pk=run.pk).update(pending_items=F("pending_items") - 1)
    return fields["status"]


def detection_fields(detection: Detection) -> dict[str, Any]:
    return {
        "is_failure": detection.is_failure,
        "failure_type": detection.failure_type,
        "severity": detection.severity,
        "weight": detection.weight,
        "recoverable": detection.recoverable,
        "detection": detection.raw,
        "error": "",
    }


def relabel_item(backend: Backend, ctx: ItemContext) -> tuple[dict[str, Any], dict | None]:
    """The stages on one trajectory: RunItem fields, and the Candidate's fields (or None)."""
    detection = detect_failure(backend, ctx)
    fields = detection_fields(detection)
    if detection.set_aside:
        reason = detection.set_aside_reason
        return {**fields, "status": RunItem.Status.SET_ASIDE, "reason": reason}, None
    if not detection.is_failure:
        reason = detection.success_reason
        return {**fields, "status": RunItem.Status.SUCCESS, "reason": reason}, None
    if detection.discarded:
        return {
            **fields,
            "status": RunItem.Status.DISCARDED,
            "reason": detection.discard_reason,
        }, None
    ctx.memo["severity"] = detection.severity
    outcome = extract_outcome(backend, ctx)
    ctx.memo["outcome"] = outcome
    chosen, attempts = relabel_attempts(backend, ctx, outcome)
    if chosen is None:
        last = attempts[-1]["refused"] if attempts else "no attempt"
        reason = f"no acceptable goal after {len(attempts)} attempts (last: {last})"
        outcome = {**outcome, "relabel_attempts": attempts}
        status = RunItem.Status.NO_CANDIDATE
        return {**fields, "outcome": outcome, "status": status, "reason": reason}, None
    candidate = judged_candidate(backend, ctx, chosen, attempts)
    fields = {**fields, "outcome": outcome, "status": RunItem.Status.CANDIDATE, "reason": ""}
    return fields, candidate


def judged_candidate(
    backend: Backend, ctx: ItemContext, chosen: dict[str, Any], attempts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chosen goal through the judge panel and the gate: the Candidate's fields."""
    verdicts = run_panel(backend, ctx, chosen["goal"])
    aggregation = aggregate(chosen["confidence"], verdicts, ctx.config["aggregation"])
    accept, reject = float(ctx.config["accept_threshold"]), float(ctx.config["reject_threshold"])
    exportable = not aggregation["vetoed_by"] and aggregation["value"] >= reject
    consistency = check_consistency(backend, ctx, chosen["goal"], verdicts, worth_a_call=exportable)
    decision, why = gate(aggregation, accept, reject, flagged=consistency.flagged)
    return {
        **consistency.fields(),
        "hindsight_goal": chosen["goal"],
        "final_goal": chosen["goal"],
        "rationale": chosen["rationale"],
        "generator_confidence": chosen["confidence"],
        "confidence": aggregation["value"],
        "aggregation": aggregation,
        "judges": verdicts,
        "attempts": attempts,
        "gate": decision,
        "gate_reason": why,
    }
